"""Retrain only the decoder stage of a fitted deepaa molecule model, with other decoder settings (issue 18).

The main model stays as it is (same archetypes, same latent points, same side head); a fresh sequence decoder
with the given settings trains in the decoder stage exactly as ``fit`` trains it (same split, epochs, learning
rate and early stopping), and the result is saved as a new model directory (a copy of MODEL with the new decoder).
So decoder settings can be compared on one main model, without the variance of refitting it; evaluate the copy
with ``molecule_generation.py --model NEW`` or ``molecule_temperature_scan.py NEW``.

Usage (repository root):
  python benchmarks/molecule_decoder_retrain.py MODEL NEW --data TRAIN_FILE [KEY=VALUE ...]
e.g. ``... /tmp/molgen-moses-XXXX/deepaa /tmp/mix05 --data /tmp/molgen-moses-XXXX/train.csv mix=0.5`` (the keys:
SequenceDecoder settings such as mix, read, hidden_dim, word_dropout). TRAIN_FILE is the file MODEL was fitted on
(its features come from the feature cache when ``fit`` cached them; set ARCHETOOL_CACHE_DIR as for that fit).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from dataclasses import fields
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("new")
    parser.add_argument("settings", nargs="*", help="decoder settings KEY=VALUE")
    parser.add_argument("--data", required=True, help="the file MODEL was fitted on")
    args = parser.parse_intermixed_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    import archetool
    from archetool.data.prepare import load_training_data
    from archetool.fitting import FitOptions, _train_decoder
    from archetool.training.device import resolve_device
    from archetool.training.distributed import init_distributed
    from archetool.training.loop import TrainConfig

    settings = {}
    for item in args.settings:
        key, value = item.split("=", 1)
        settings[key] = value if key == "read" else float(value)
    source, new = Path(args.model), Path(args.new)
    model = archetool.load(source)
    opts = model.config["options"]
    data, prep = load_training_data(args.data, side=opts.get("side"), decoder=model.prep.sequence.get("kind", "selfies"),
                                    featurizer_options=dict(jobs=1, progress=False))
    if prep.sequence["symbols"] != model.prep.sequence["symbols"]:
        raise SystemExit(f"{args.data}: its token vocabulary differs from {source}'s; give the file the model was fitted on")
    module = model.module
    decoder_settings = {k: v for k, v in module.sequence_decoder.settings().items() if k != "condition_dim"}
    torch.manual_seed(int(model.config.get("seed", 0)))
    module.attach_sequence_decoder(**{**decoder_settings, **settings})
    train = model.config["train"]
    config = TrainConfig(**{f.name: train[f.name] for f in fields(TrainConfig) if f.name in train})
    options = FitOptions(data=args.data, epochs=opts.get("epochs"), decoder_epochs=opts.get("decoder_epochs"),
                         patience=opts.get("patience"), decoder_lr=opts.get("decoder_lr", FitOptions.decoder_lr))
    device = resolve_device("cpu")
    tic = time.perf_counter()
    result = _train_decoder(options, module, data, config, device, init_distributed(device))
    print(f"decoder stage: {len(result.history)} epochs, best {result.best_epoch}, validation tokens "
          f"{result.best_val:.4f}, {time.perf_counter() - tic:.0f} s")
    module.eval()
    if new.exists():
        shutil.rmtree(new)
    shutil.copytree(source, new)
    model.config["hparams"] = module.full_hparams()
    model.config.setdefault("summary", {}).update(decoder_epochs_run=len(result.history), decoder_best_epoch=result.best_epoch,
                                                   decoder_val_tokens=round(float(result.best_val), 4))
    model.config["decoder_retrained"] = {"from": str(source), "settings": settings}
    model.save(new)
    print(f"saved {new}")


if __name__ == "__main__":
    main()
