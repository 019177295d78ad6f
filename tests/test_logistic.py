"""archetool.training.logistic: the convex fit of nvae's linear read-out (issue 17) against scikit-learn, its
optimality conditions, the stratified folds and the choice of penalty; and the read-out a fitted nvae keeps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import archetool
from archetool.training.logistic import L2_GRID, choose_l2, fit_logistic, stratified_folds


def _blobs(n_per_class=40, p=6, k=3, spread=1.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, p, generator=g, dtype=torch.float64) * spread
    y = torch.arange(k).repeat_interleave(n_per_class)
    return centres[y] + torch.randn(len(y), p, generator=g, dtype=torch.float64), y


@pytest.mark.parametrize("l2", [1e-3, 0.1])
def test_fit_matches_scikit_learn(l2):
    """Same objective as LogisticRegression(C = 1 / (l2 n)): the same coefficients and probabilities."""
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs()
    w, b = fit_logistic(x, y, 3, l2)
    sk = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-10, max_iter=10000).fit(x.numpy(), y.numpy())
    probs = torch.softmax(x @ w.T + b, 1).numpy()
    assert np.abs(probs - sk.predict_proba(x.numpy())).max() < 1e-3
    # softmax is unchanged by a constant added to every class: compare centred coefficients
    assert np.abs((w - w.mean(0)).numpy() - (sk.coef_ - sk.coef_.mean(0))).max() < 1e-2


def test_fit_is_a_stationary_point():
    x, y = _blobs(seed=3)
    w, b = fit_logistic(x, y, 3, 0.05)
    w.requires_grad_(True)
    b.requires_grad_(True)
    loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * 0.05 * (w * w).sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-4 and b.grad.abs().max() < 1e-4


def test_stronger_penalty_shrinks_the_weights():
    x, y = _blobs(seed=4)
    norms = [float(fit_logistic(x, y, 3, l2)[0].norm()) for l2 in (1e-3, 1e-2, 1e-1, 1.0)]
    assert norms == sorted(norms, reverse=True)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 30), min_size=1, max_size=6), n_folds=st.integers(2, 5), seed=st.integers(0, 99))
def test_stratified_folds_spread_every_class_evenly(counts, n_folds, seed):
    y = torch.tensor(np.repeat(np.arange(len(counts)), counts))
    folds = stratified_folds(y, n_folds, seed)
    assert folds.shape == y.shape and int(folds.min()) >= 0 and int(folds.max()) < n_folds
    for c in range(len(counts)):
        per_fold = torch.bincount(folds[y == c], minlength=n_folds)
        assert int(per_fold.max() - per_fold.min()) <= 1  # each class dealt round the folds
    sizes = torch.bincount(folds, minlength=n_folds)
    assert int(sizes.max() - sizes.min()) <= 1  # and the folds are as equal as the classes allow


def test_choose_l2_prefers_a_strong_penalty_for_noise_and_a_weak_one_for_clean_classes():
    g = torch.Generator().manual_seed(0)
    noise_x = torch.randn(120, 30, generator=g, dtype=torch.float64)
    noise_y = torch.arange(3).repeat(40)
    l2_noise, losses = choose_l2(noise_x, noise_y, 3)
    clean_x, clean_y = _blobs(spread=4.0)
    l2_clean, _ = choose_l2(clean_x, clean_y, 3)
    assert l2_noise in L2_GRID and l2_clean in L2_GRID
    assert l2_noise >= 1.0 and l2_clean <= 1e-2
    finite = [v for v in losses if not math.isnan(v)]
    assert min(finite) == pytest.approx(losses[sorted(L2_GRID, reverse=True).index(l2_noise)])


def test_choose_l2_on_held_out_rows_and_with_a_one_row_class():
    x, y = _blobs(seed=1)
    xv, yv = _blobs(n_per_class=10, seed=1)
    l2, losses = choose_l2(x, y, 3, held_out=(xv, yv))
    assert l2 in L2_GRID and not math.isnan(losses[0])
    lone = torch.cat([y[:-1], torch.tensor([3])])  # class 3 has one row: no stratified fold can hold it out
    l2, losses = choose_l2(x, lone, 4)
    assert l2 == sorted(L2_GRID, reverse=True)[len(L2_GRID) // 2] and all(math.isnan(v) for v in losses)


@pytest.mark.parametrize("how", ["convex", "joint", "auto"])
def test_fitted_nvae_keeps_its_linear_read_out(how, tmp_path, caplog):
    """"convex": the linear read-out is the penalised logistic regression of every training row (the fit refits on
    all 120 rows) at the penalty config.json records, saved with the model; "joint" keeps the trained weights;
    "auto" records its choice, which the refit keeps."""
    x, y = _blobs(n_per_class=40, p=6, seed=2)
    frame = pd.DataFrame(x.numpy(), columns=[f"f{j}" for j in range(6)])
    frame["cls"] = np.array(["a", "b", "c"])[y.numpy()]
    with caplog.at_level("INFO", logger="archetool"):
        model = archetool.fit(frame, model="nvae", label="cls", epochs=4, seed=0, device="cpu", progress_bar=False,
                              out=str(tmp_path / how), model_options={"linear_head_fit": how})
    summary = model.config["summary"]
    head = model.module.linear_classifier
    if how == "joint":
        assert "linear_head_l2" not in summary
        return
    if how == "auto":
        assert summary["linear_head_fit"] in ("convex", "joint") and summary["head_mix"] is not None
        assert model.module.linear_head_fit == summary["linear_head_fit"] == model.config["hparams"]["linear_head_fit"]
        if summary["linear_head_fit"] == "joint":
            return
    assert summary["refit_rows"] == 120 and summary["linear_head_l2"] in L2_GRID
    if how == "convex":  # cross-validated once, on the first model's rows; the refit reuses the penalty
        fits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("linear read-out: logistic")]
        assert len(fits) == 2 and "by cross-validation" in fits[0] and "by the model before the refit" in fits[1], fits
    xs = torch.from_numpy(np.asarray(model.prep.scale_x(x.numpy()), dtype=np.float64))
    labels = torch.from_numpy(np.searchsorted(np.asarray(model.prep.classes), frame["cls"].to_numpy()))
    w, b = fit_logistic(xs, labels, 3, summary["linear_head_l2"])
    assert torch.allclose(head.weight.double(), w, atol=1e-4) and torch.allclose(head.bias.double(), b, atol=1e-4)
    reloaded = archetool.load(str(tmp_path / how))
    assert reloaded.module.linear_head_fit == "convex" and torch.equal(reloaded.module.linear_classifier.weight, head.weight)


def _adapter_case(train_labels_shuffled: bool, seed=5):
    from types import SimpleNamespace

    from archetool.analysis import adapter
    from archetool.models.nvae import NVAE

    x, y = _blobs(n_per_class=50, p=6, spread=4.0, seed=seed)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    train, val = np.arange(0, 120), np.arange(120, 150)
    labels = y.numpy().copy()
    if train_labels_shuffled:  # the training rows say nothing: the convex read-out can learn nothing
        labels[train] = np.random.default_rng(seed).permutation(labels[train])
    torch.manual_seed(0)
    module = NVAE(6, 3)
    truth = fit_logistic(x, y, 3, 1e-3)  # a read-out that knows the classes, standing in for the trained one
    with torch.no_grad():
        module.linear_classifier.weight.copy_(truth[0])
        module.linear_classifier.bias.copy_(truth[1])
        if not train_labels_shuffled:
            module.linear_classifier.weight.zero_()  # now the trained read-out is the one that knows nothing
    out = adapter("nvae").after_training(module, SimpleNamespace(x=x.float().numpy(), label=labels), train, val)
    return module, out, truth


def test_auto_keeps_the_read_out_that_predicts_the_validation_rows_better():
    module, out, _ = _adapter_case(train_labels_shuffled=False)
    assert out["linear_head_fit"] == module.linear_head_fit == "convex" and module.head_mix == out["head_mix"]
    assert module.linear_classifier.weight.abs().sum() > 0  # the convex weights were written
    module, out, truth = _adapter_case(train_labels_shuffled=True)
    assert out["linear_head_fit"] == module.linear_head_fit == "joint"
    assert torch.allclose(module.linear_classifier.weight.double(), truth[0], atol=1e-5)  # left as trained


def test_auto_without_validation_rows_keeps_the_trained_read_out():
    from types import SimpleNamespace

    from archetool.analysis import adapter
    from archetool.models.nvae import NVAE

    module = NVAE(6, 3)
    before = module.linear_classifier.weight.detach().clone()
    x, y = _blobs(seed=6)
    out = adapter("nvae").after_training(module, SimpleNamespace(x=x.float().numpy(), label=y.numpy()), np.arange(len(y)),
                                         np.arange(0))
    assert out == {"linear_head_fit": "joint"} and torch.equal(module.linear_classifier.weight, before)
    with pytest.raises(ValueError, match="linear_head_fit"):
        NVAE(6, 3, linear_head_fit="sgd")


def test_large_tables_choose_the_penalty_on_the_validation_rows(monkeypatch):
    """From CONVEX_HEAD_CV_BELOW training rows up, one fit per penalty scored on the validation rows."""
    from types import SimpleNamespace

    import archetool.analysis.nvae as nvae_analysis
    from archetool.analysis import adapter
    from archetool.models.nvae import NVAE

    monkeypatch.setattr(nvae_analysis, "CONVEX_HEAD_CV_BELOW", 50)
    calls = []
    import archetool.training.logistic as logistic

    real = logistic.choose_l2
    monkeypatch.setattr(logistic, "choose_l2", lambda *a, **k: calls.append(k.get("held_out")) or real(*a, **k))
    x, y = _blobs(seed=8)
    data = SimpleNamespace(x=x.float().numpy(), label=y.numpy())
    out = adapter("nvae").after_training(NVAE(6, 3, linear_head_fit="convex"), data, np.arange(100), np.arange(100, 120))
    assert out["linear_head_l2"] in L2_GRID and calls[-1] is not None and len(calls[-1][1]) == 20
    adapter("nvae").after_training(NVAE(6, 3, linear_head_fit="convex"), data, np.arange(40), np.arange(100, 120))
    assert calls[-1] is None  # below the threshold: cross-validation on the training rows
