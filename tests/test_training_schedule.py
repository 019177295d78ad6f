"""The shared loop's learning-rate schedule (cosine decay to a fraction of --lr)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from archetool.training.loop import TrainConfig, train


@given(st.integers(1, 300), st.floats(0.0, 1.0))
def test_cosine_schedule_runs_from_lr_to_its_final_fraction_without_rising(epochs, fraction):
    config = TrainConfig(epochs=epochs, lr=2e-3, final_lr_fraction=fraction)
    rates = [config.lr_at(e) for e in range(epochs)]
    assert rates[0] == pytest.approx(2e-3)
    if epochs > 1:
        assert rates[-1] == pytest.approx(2e-3 * fraction, abs=1e-12)
    assert all(b <= a + 1e-15 for a, b in zip(rates, rates[1:]))


def test_constant_by_default():
    config = TrainConfig(epochs=10, lr=1e-3)
    assert all(config.lr_at(e) == pytest.approx(1e-3) for e in range(10))


def record_learning_rates(monkeypatch) -> list[float]:
    """The learning rate of every optimizer step taken from now on (Adam's step is wrapped)."""
    seen = []
    real_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    return seen


def test_the_loop_applies_the_schedule_to_the_optimiser(monkeypatch):
    from archetool.models.deepaa import DeepAA

    seen = record_learning_rates(monkeypatch)
    module = DeepAA(n_features=4, n_archetypes=3, hidden=[8])
    arrays = {"x": torch.randn(40, 4).numpy()}
    config = TrainConfig(epochs=3, batch_size=40, val_fraction=0.0, patience=0, final_lr_fraction=0.1)
    train(module, arrays, config, torch.device("cpu"))
    assert seen == pytest.approx([config.lr_at(e) for e in range(3)])


def test_default_batch_size_gives_small_tables_enough_steps_an_epoch():
    """Issue 17: with batches of 128, wine's 160 training rows made 2 steps an epoch and deepaa's late schedules had
    ~60 steps; the default batch is lowered (not below 16) to reach the model's min_steps_per_epoch, and left at 128
    wherever 128 already gives that many steps (so larger data trains as before)."""
    from archetool.fitting import default_batch_size
    from archetool.models.deepaa import DeepAA
    from archetool.models.nvae import NVAE

    assert DeepAA.min_steps_per_epoch == 8 and NVAE.min_steps_per_epoch == 16
    assert default_batch_size(178, 0.1, 8) == 20  # wine: 160 training rows -> 8 steps
    assert default_batch_size(1000, 0.1, 8) == 128  # 900 rows: already 8 steps (the README's 1,000 molecules)
    assert default_batch_size(3000, 0.1, 8) == 128 and default_batch_size(178, 0.1, 1) == 128
    assert default_batch_size(40, 0.1, 8) == 16  # never below 16 rows


def test_stop_epoch_runs_the_schedules_first_epochs_and_keeps_the_last_weights(monkeypatch):
    """A refit's config: the first stop_epoch epochs at the full schedule's learning rates, the last weights kept
    (not the best by training loss)."""
    from archetool.models.deepaa import DeepAA

    seen = record_learning_rates(monkeypatch)
    torch.manual_seed(0)
    module = DeepAA(n_features=4, n_archetypes=3, hidden=[8])
    arrays = {"x": torch.randn(40, 4).numpy()}
    config = TrainConfig(epochs=10, batch_size=40, val_fraction=0.0, patience=0, final_lr_fraction=0.1, stop_epoch=4)
    result = train(module, arrays, config, torch.device("cpu"))
    assert seen == pytest.approx([config.lr_at(e) for e in range(4)])
    assert len(result.history) == 4 and result.best_epoch == 4
    after = {k: v.clone() for k, v in module.state_dict().items()}
    config_more = TrainConfig(epochs=10, batch_size=40, val_fraction=0.0, patience=0, final_lr_fraction=0.1, stop_epoch=5)
    torch.manual_seed(0)
    module5 = DeepAA(n_features=4, n_archetypes=3, hidden=[8])
    train(module5, arrays, config_more, torch.device("cpu"))
    assert any(not torch.equal(after[k], v) for k, v in module5.state_dict().items())  # one more step moved them
