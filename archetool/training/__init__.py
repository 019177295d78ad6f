"""The single training loop shared by all models, device choice, checkpoints and DDP set-up."""
