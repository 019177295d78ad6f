"""Quality guards for the class models (issue 17): nvae and svqvae against logistic regression on a small
real table, the collapsed-latent warning, calibrated svqvae probabilities, and old configs keeping their
training-time behaviour. Each runs in seconds; the thresholds were checked on seeds 0, 1 and 2."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

import archetool
from archetool.analysis.nvae import collapse_warning
from archetool.models.nvae import HEAD_MIX_GRID, NVAE, fit_head_mix
from archetool.models.svqvae import SVQVAE, fit_temperature


def _wine_split(seed: int):
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    d = load_wine()
    train, test = train_test_split(np.arange(len(d.target)), test_size=0.3, stratify=d.target, random_state=seed)
    return d.data.astype(np.float32), d.target.astype(str), list(d.feature_names), train, test


def _logistic(x, y, train, test) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegressionCV(Cs=np.logspace(-4, 3, 8), cv=5, max_iter=2000).fit(scaler.transform(x[train]), y[train])
    pred = clf.predict(scaler.transform(x[test]))
    return float((pred == y[test]).mean()), float(balanced_accuracy_score(y[test], pred))


@pytest.mark.parametrize("kind", ["nvae", "svqvae"])
def test_class_models_match_logistic_regression_on_wine(kind, tmp_path):
    """Held-out accuracy and balanced accuracy within 0.06 (3 of 54 test rows) of logistic regression with C
    by inner CV, same split. Seeds 0-2 gave differences of at least -0.02 for both models."""
    from sklearn.metrics import balanced_accuracy_score

    x, y, names, train, test = _wine_split(seed=0)
    frame = pd.DataFrame(x[train], columns=names)
    frame["cultivar"] = y[train]
    model = archetool.fit(frame, model=kind, label="cultivar", epochs=60, seed=0, device="cpu", progress_bar=False,
                          out=str(tmp_path / kind))
    out = model.transform(model.prep.scale_x(x[test]))
    pred = np.asarray(model.prep.classes)[out["pred"]]
    acc, bal = float((pred == y[test]).mean()), float(balanced_accuracy_score(y[test], pred))
    lr_acc, lr_bal = _logistic(x, y, train, test)
    assert acc >= lr_acc - 0.06 and bal >= lr_bal - 0.06, (kind, acc, bal, lr_acc, lr_bal)
    probs = out["probs"]
    assert probs.shape == (len(test), 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.array_equal(probs.argmax(1), out["pred"])  # the probabilities agree with the prediction rule


def test_nvae_warns_when_the_latent_collapses(tmp_path, caplog):
    """Features that are the class alone plus faint noise leave nothing for 12 shared dimensions to carry:
    fit warns, naming the options to change."""
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 40)
    centres = {"a": rng.normal(size=6) * 3, "b": rng.normal(size=6) * 3, "c": rng.normal(size=6) * 3}
    x = np.stack([centres[c] for c in labels]) + 1e-3 * rng.normal(size=(120, 6))
    frame = pd.DataFrame(x, columns=[f"g{i}" for i in range(6)])
    frame["cls"] = labels
    with caplog.at_level(logging.WARNING, logger="archetool"):
        model = archetool.fit(frame, model="nvae", label="cls", shared_dim=12, epochs=30, device="cpu",
                              progress_bar=False, out=str(tmp_path / "m"))
    summary = model.config["summary"]
    active = summary["active_class_dims"] + summary["active_shared_dims"]
    assert 4 * active < model.module.latent_dim
    text = " ".join(r.getMessage() for r in caplog.records if "latent dimensions are active" in r.getMessage())
    assert f"only {active} of {model.module.latent_dim} latent dimensions are active" in text
    assert "--shared-dim" in text and "free_bits" in text


def test_collapse_warning_threshold():
    module = NVAE(n_features=5, n_classes=3, class_dim=2, shared_dim=6)  # 8 dimensions
    assert collapse_warning(2, module) is None  # a quarter: no warning
    assert "only 1 of 8" in collapse_warning(1, module)


def test_free_bits_and_kl_warmup():
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.arange(16) % 3
    plain = NVAE(5, 3, shared_dim=2, free_bits=0.0, kl_warmup=0)
    torch.manual_seed(1)
    free = NVAE(5, 3, shared_dim=2, free_bits=5.0, kl_warmup=0)
    free.load_state_dict(plain.state_dict())
    torch.manual_seed(2)
    a = plain.loss_terms({"x": x, "label": y})
    torch.manual_seed(2)
    b = free.loss_terms({"x": x, "label": y})
    # with 5 free nats per shared dimension (more than the KL at initialisation) the shared KL costs 2 x 5 nats
    # whatever its value, and has no gradient
    assert torch.allclose(b["loss"] - a["loss"], 2 * 5.0 - a["kl_shared"], atol=1e-4)
    warm = NVAE(5, 3, kl_warmup=20)
    assert warm.annealing_epochs(100) == 20 and warm.annealing_epochs(40) == 10
    warm.on_epoch_start(5, 100)
    assert warm.kl_scale == pytest.approx(0.25)
    warm.on_epoch_start(30, 100)
    assert warm.kl_scale == 1.0


def test_old_configs_keep_their_training_behaviour():
    """Configs saved before the new hyper-parameters existed rebuild with what they were trained with."""
    old = NVAE.from_hparams({"n_features": 4, "n_classes": 3, "class_dim": 8, "shared_dim": 4})
    assert (old.free_bits, old.kl_warmup, old.class_weight, old.linear_classifier) == (0.0, 0, None, None)
    assert old.class_dim == 8 and old.head_mix == 0.5  # q(y|x) = the plain geometric mean of the two heads
    assert NVAE(4, 3).class_dim == 2 and NVAE(4, 12).class_dim == 8  # the new default: K - 1, at most 8
    sv = SVQVAE.from_hparams({"n_features": 4, "n_classes": 3})
    assert sv.temperature is None and sv.code_init == "random" and sv.ce_weight == 0.0  # T = 1, no softmax term
    assert sv.weight_decay == 0.0 and sv.hold_fraction == 0.0 and sv.optimizer_groups() is None  # plain Adam, no hold
    out = sv.eval().embed(torch.randn(5, 4))
    assert torch.allclose(out["probs"], (-out["distances"] ** 2).softmax(1), atol=1e-5)


def test_fit_temperature_finds_the_generating_one():
    gen = torch.Generator().manual_seed(0)
    d = torch.rand(4000, 5, generator=gen) * 4
    labels = torch.multinomial((-d / 0.7).softmax(1), 1, generator=gen)[:, 0]
    assert fit_temperature(d, labels) == pytest.approx(0.7, rel=0.1)
    # every row right: the pseudo-row keeps T away from 0
    perfect = torch.full((10, 3), 4.0)
    perfect[:, 0] = 0.0
    assert fit_temperature(perfect, torch.zeros(10, dtype=torch.long)) > 0.5


def test_svqvae_codes_start_at_the_class_centroids():
    """code_init="centroids" (the default): the codes' pairwise distances start as the class centroids'
    (the centroids have K - 1 <= D principal axes, so the projection keeps them exactly, up to scale)."""
    from scipy.stats import spearmanr

    from archetool.analysis.svqvae import code_distances

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 20)
    x = rng.normal(size=(5, 30))[y] * rng.uniform(0.2, 3, size=(5, 1))[y] + 0.1 * rng.normal(size=(100, 30))
    model = SVQVAE(30, 5)
    model.init_from_data({"x": x.astype(np.float32), "label": y})
    codes = model.codes().numpy()
    assert np.abs(codes).max() == pytest.approx(1.0)  # scaled to the tanh box
    centroids = np.stack([x[y == k].mean(0) for k in range(5)])
    iu = np.triu_indices(5, 1)
    ratio = code_distances(codes)[iu] / code_distances(centroids)[iu]
    assert np.allclose(ratio, ratio[0], rtol=1e-4)
    random = SVQVAE(30, 5, code_init="random")
    before = random.codes()
    random.init_from_data({"x": x, "label": y})
    assert torch.equal(before, random.codes())
    assert spearmanr(code_distances(codes)[iu], code_distances(centroids)[iu]).statistic > 0.99


def test_clustered_heatmap_draws_its_dendrogram():
    """A new clustered heatmap gets the clustering's dendrogram at its left, leaves in the heatmap's row order."""
    from archetool.analysis.plots import heatmap_figure

    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(0, 0.1, (3, 2)), rng.normal(5, 0.1, (3, 2))])
    dist = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    fig = heatmap_figure(dist, [f"c{i}" for i in range(6)], "t", cmap="viridis_r", vmin=0.0)
    side, ax = fig.axes[:2]
    assert side.collections or side.lines  # the dendrogram's links
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert {tuple(sorted(names[:3])), tuple(sorted(names[3:]))} == {("c0", "c1", "c2"), ("c3", "c4", "c5")}


def test_class_models_batch_size_gives_small_tables_enough_steps():
    """nvae: at least 16 steps per epoch below 2,048 training rows, batches of 16 to 128 rows (svqvae: 8, as deepaa)."""
    from archetool.fitting import default_batch_size
    from archetool.models import model_class

    assert model_class("nvae").min_steps_per_epoch == 16 and model_class("svqvae").min_steps_per_epoch == 8
    size = lambda n: default_batch_size(n, 0.0, 16)  # noqa: E731 (n training rows)
    assert size(271) == 17 and size(504) == 32  # LINCS plate, pbmc
    assert size(10) == 16 and size(2048) == 128 and size(10**6) == 128
    sizes = [size(n) for n in range(1, 3000, 7)]
    assert sizes == sorted(sizes)
    assert all(-(-n // b) >= 16 for n, b in zip(range(1, 3000, 7), sizes) if 256 <= n < 2048)


def test_fit_head_mix_falls_back_on_the_linear_head_only_when_it_is_clearly_better():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (200,), generator=gen)
    good = 4.0 * torch.nn.functional.one_hot(labels, 5).double()  # right on every row
    noise = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    assert fit_head_mix(noise, good, labels) == 1.0
    assert fit_head_mix(good, noise, labels) == 0.0
    assert fit_head_mix(noise, noise.clone(), labels) == 0.5  # no difference: the untuned mix
    # a linear head no better than the trunk, only different: whatever w fits these rows best by chance, the
    # one-SE rule keeps 0.5
    other = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    assert fit_head_mix(noise, other, labels) == 0.5
    assert set(HEAD_MIX_GRID) >= {0.0, 0.5, 1.0}


def test_head_mix_weights_the_two_classifiers():
    torch.manual_seed(0)
    module = NVAE(6, 3, head_mix=0.8).eval()
    x = torch.randn(4, 6)
    _, _, trunk, linear = module._encode_heads(x)
    assert torch.allclose(module.encode(x)[2], 0.2 * trunk + 0.8 * linear)
    with pytest.raises(ValueError, match="head_mix"):
        NVAE(6, 3, head_mix=1.5)


def test_svqvae_softmax_term_is_the_cross_entropy_over_code_distances():
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.arange(8) % 3
    module = SVQVAE(5, 3, input_dropout=0.0)
    terms = module.loss_terms({"x": x, "label": y})
    logits = -((module.encode(x)[:, None] - module.codebook.weight[None]) ** 2).sum(-1)
    assert torch.allclose(terms["ce"], torch.nn.functional.cross_entropy(logits, y), atol=1e-5)
    rest = terms["recon"] + terms["codebook"] + terms["commitment"] + terms["repulsion"]
    assert torch.allclose(terms["loss"], rest + terms["ce"], atol=1e-5)
    assert "ce" not in SVQVAE(5, 3, ce_weight=0.0).loss_terms({"x": x, "label": y})
    with pytest.raises(ValueError, match="ce_weight"):
        SVQVAE(5, 3, ce_weight=-1)


def test_svqvae_small_table_settings():
    """Few rows per class (< 10 per class): decoupled weight decay on the encoder's weight matrices only, and early
    stopping held for the first half of the run; other tables keep plain Adam and the margin warm-up alone."""
    from archetool.models.svqvae import auto_small_table, few_rows_per_class
    from archetool.training.loop import TrainConfig, make_adam

    assert few_rows_per_class(301, 60) and not few_rows_per_class(700, 10) and not few_rows_per_class(600, 60)
    assert auto_small_table(301, 60) == {"weight_decay": 0.1, "hold_fraction": 0.5}
    assert auto_small_table(700, 10) == {"weight_decay": 0.0, "hold_fraction": 0.0}
    plain = SVQVAE(6, 3, hidden=(8,))
    assert plain.weight_decay == 0.0 and plain.hold_fraction == 0.0 and plain.optimizer_groups() is None
    assert type(make_adam(plain, TrainConfig())) is torch.optim.Adam
    assert plain.annealing_epochs(100) == 20  # the margin warm-up
    small = SVQVAE(6, 3, hidden=(8,), weight_decay=0.1, hold_fraction=0.5)
    assert small.annealing_epochs(100) == 50 and small.margin_epochs(100) == 20
    small.on_epoch_start(20, 100)
    assert small.margin_scale == 1.0  # the margin warm-up is unchanged by the hold
    opt = make_adam(small, TrainConfig())
    assert type(opt) is torch.optim.AdamW
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(small.encoder[0].weight), id(small.encoder[3].weight)}  # the encoder's two Linear weights
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(small.parameters()))
    # one step on a zero loss: only the decayed weights move, by lr * weight_decay of themselves
    before = {n: p.detach().clone() for n, p in small.named_parameters()}
    for p in small.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in small.named_parameters():
        expected = before[n] * (1 - 1e-3 * 0.1) if id(p) in decayed else before[n]
        assert torch.allclose(p.detach(), expected, atol=1e-7), n
    with pytest.raises(ValueError, match="weight_decay"):
        SVQVAE(6, 3, weight_decay=-1)
    with pytest.raises(ValueError, match="hold_fraction"):
        SVQVAE(6, 3, hold_fraction=1.0)


def test_svqvae_fit_resolves_the_small_table_settings(tmp_path):
    """fit stores the rule's numbers (so a saved model never depends on it); a given value wins."""
    import numpy as np
    import pandas as pd

    import archetool

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 5)), columns=[f"g{i}" for i in range(5)])
    frame["cls"] = np.repeat(list("abcdefgh"), 5)  # 5 rows per class
    m = archetool.fit(frame, model="svqvae", label="cls", out=str(tmp_path / "a"), epochs=4, device="cpu", verbose=False)
    assert m.config["hparams"]["weight_decay"] == 0.1 and m.config["hparams"]["hold_fraction"] == 0.5
    m = archetool.fit(frame, model="svqvae", label="cls", out=str(tmp_path / "b"), epochs=4, device="cpu", verbose=False,
                      model_options={"weight_decay": 0.0})
    assert m.config["hparams"]["weight_decay"] == 0.0 and m.config["hparams"]["hold_fraction"] == 0.5


def test_nvae_matches_logistic_regression_on_the_lincs_plate(tmp_path):
    """Few rows per class (60 perturbagens, 4-5 training signatures each): nvae's held-out accuracy and balanced
    accuracy within 0.04 (3 of 76 test rows) of logistic regression's (C = 10, what inner CV picks on most splits
    of this plate; here 0.342 / 0.367), split and model seed 1. Measured +0.05 / +0.04; the defaults before the
    small-table batch size and the validated head mix gave -0.07 / -0.10 here (0.276 / 0.269 in
    benchmarks/results/class_models_real_round3_before.csv)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from archetool.data.readers.gctx import GctxSource
    from conftest import SHARED_DATA

    path = SHARED_DATA / "lincs_l1000_a375_plate.gctx"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    batch = GctxSource(path).read()
    x, y = np.asarray(batch.matrix, np.float32), batch.obs["pert_iname"].astype(str).to_numpy()
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=1)
    train, test = np.sort(train), np.sort(test)
    scaler = StandardScaler().fit(x[train])
    lr = LogisticRegression(C=10.0, max_iter=2000).fit(scaler.transform(x[train]), y[train])
    lr_pred = lr.predict(scaler.transform(x[test]))
    frame = pd.DataFrame(x[train], columns=list(batch.feature_names))
    frame["pert"] = y[train]
    model = archetool.fit(frame, model="nvae", label="pert", seed=1, device="cpu", progress_bar=False, out=str(tmp_path / "m"))
    pred = np.asarray(model.prep.classes)[model.transform(model.prep.scale_x(x[test]))["pred"]]
    acc, bal = float((pred == y[test]).mean()), float(balanced_accuracy_score(y[test], pred))
    lr_acc, lr_bal = float((lr_pred == y[test]).mean()), float(balanced_accuracy_score(y[test], lr_pred))
    assert acc >= lr_acc - 0.04 and bal >= lr_bal - 0.04, (acc, bal, lr_acc, lr_bal)


def _few_rows_table(rows_per_class: int = 5, classes: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), rows_per_class)
    x = rng.normal(size=(len(labels), 6)) + 2.5 * np.eye(classes, 6)[labels]
    frame = pd.DataFrame(x, columns=[f"g{i}" for i in range(6)])
    frame["cls"] = np.asarray(list("abcdefghijklmnop"))[labels]
    return frame


@pytest.mark.parametrize("kind", ["svqvae", "nvae"])
def test_few_rows_per_class_refit_on_all_rows(kind, tmp_path):
    """Fewer than 10 rows per class: after early stopping, a fresh model trains on every row for the chosen epochs
    and is kept; the held-out figures and calibration are the first model's; --no-refit keeps the first model."""
    from archetool.model import ArchetoolModel

    frame = _few_rows_table()
    m = archetool.fit(frame, model=kind, label="cls", out=str(tmp_path / "a"), epochs=12, device="cpu", verbose=False)
    summary = m.config["summary"]
    assert summary["refit_rows"] == 40 and summary["val_rows"] == 8
    assert summary["refit_epochs"] == summary["best_epoch"] and "val_accuracy" in summary
    refit = pd.read_csv(tmp_path / "a" / "refit_history.csv")
    assert list(refit["epoch"]) == list(range(1, summary["best_epoch"] + 1)) and "val_loss" not in refit
    rows = pd.read_parquet(tmp_path / "a" / "training_rows.parquet")
    assert set(rows["split"]) == {"train"}  # every row trained the kept model
    calibration = {"svqvae": "temperature", "nvae": "head_mix"}[kind]
    assert getattr(m.module, calibration) == summary.get(calibration, getattr(m.module, calibration))
    saved = ArchetoolModel.load(tmp_path / "a")
    assert getattr(saved.module, calibration) == getattr(m.module, calibration)
    shown = repr(saved)
    assert f"kept: a refit on all 40 rows for {summary['best_epoch']} epochs" in shown
    assert "held-out scores (of the model before the refit): " in shown

    plain = archetool.fit(frame, model=kind, label="cls", out=str(tmp_path / "b"), epochs=12, device="cpu",
                          verbose=False, refit=False)
    assert "refit_rows" not in plain.config["summary"] and not (tmp_path / "b" / "refit_history.csv").exists()
    assert (pd.read_parquet(tmp_path / "b" / "training_rows.parquet")["split"] == "val").sum() == 8
    # same selection run, so the same held-out figures; the kept weights differ
    assert plain.config["summary"]["val_accuracy"] == summary["val_accuracy"]
    assert any(not torch.equal(a, b) for a, b in zip(plain.module.state_dict().values(), m.module.state_dict().values())
               if a.dtype.is_floating_point)


def test_refit_rule_and_explicit_refit(tmp_path):
    """The default refits class models with few rows per class only; --refit applies to any model."""
    from archetool.fitting import FitOptions, wants_refit

    class Data:
        def __init__(self, n, classes):
            self.ids = np.arange(n)
            self.label = np.arange(n) % classes if classes else None

    assert wants_refit(FitOptions(data=None, model="svqvae"), Data(301, 60))
    assert wants_refit(FitOptions(data=None, model="nvae"), Data(700, 10))  # nvae: below 2,000 rows
    assert not wants_refit(FitOptions(data=None, model="svqvae"), Data(700, 10))
    assert not wants_refit(FitOptions(data=None, model="nvae"), Data(4000, 10))
    assert not wants_refit(FitOptions(data=None, model="deepaa"), Data(40, 0))
    assert not wants_refit(FitOptions(data=None, model="svqvae", refit=False), Data(301, 60))
    frame = _few_rows_table().drop(columns="cls")
    m = archetool.fit(frame, model="deepaa", k=3, out=str(tmp_path / "d"), epochs=6, device="cpu", verbose=False,
                      refit=True)
    assert m.config["summary"]["refit_rows"] == 40 and (tmp_path / "d" / "refit_history.csv").exists()


def test_refit_interrupted_then_resumed_gives_the_uninterrupted_model(tmp_path, monkeypatch):
    """Ctrl-C in the refit keeps its checkpoint; --resume reads the finished first model back and continues the
    refit, ending with the weights of a run that was never interrupted."""
    from archetool.fitting import FitInterrupted
    from archetool.progress import EpochReporter

    frame = _few_rows_table()
    kwargs = dict(model="svqvae", label="cls", epochs=10, device="cpu", verbose=False)
    whole = archetool.fit(frame, out=str(tmp_path / "whole"), **kwargs)
    real_call = EpochReporter.__call__

    def interrupt(self, record):
        if record.get("refit") and record["epoch"] == 2:
            raise KeyboardInterrupt
        return real_call(self, record)

    monkeypatch.setattr(EpochReporter, "__call__", interrupt)
    with pytest.raises(FitInterrupted):
        archetool.fit(frame, out=str(tmp_path / "cut"), **kwargs)
    assert (tmp_path / "cut" / "checkpoint-refit.pt").exists() and not (tmp_path / "cut" / "weights.pt").exists()
    monkeypatch.setattr(EpochReporter, "__call__", real_call)
    resumed = archetool.fit(frame, out=str(tmp_path / "cut"), resume=True, **kwargs)
    for (name, a), b in zip(whole.module.state_dict().items(), resumed.module.state_dict().values()):
        assert torch.allclose(a.float(), b.float()), name
    assert resumed.config["summary"]["refit_epochs"] == whole.config["summary"]["refit_epochs"]


def test_refit_without_validation_rows_says_there_is_nothing_to_refit(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="archetool"):
        m = archetool.fit(_few_rows_table(), model="svqvae", label="cls", out=str(tmp_path / "m"), epochs=3,
                          device="cpu", val_fraction=0.0, refit=True)
    assert "refit_rows" not in m.config["summary"] and not (tmp_path / "m" / "refit_history.csv").exists()
    assert "no validation rows were held out, so the model already trained on every row" in caplog.text


def test_default_refit_needs_validation_rows(tmp_path):
    m = archetool.fit(_few_rows_table(), model="nvae", label="cls", out=str(tmp_path / "m"), epochs=3, device="cpu",
                      val_fraction=0.0, verbose=False)
    assert "refit_rows" not in m.config["summary"] and not (tmp_path / "m" / "refit_history.csv").exists()


def test_default_patience_is_longer_for_class_models_on_small_tables(tmp_path):
    from archetool.fitting import DEFAULT_PATIENCE, SMALL_TABLE_PATIENCE, FitOptions, default_patience

    class Data:
        def __init__(self, n):
            self.ids = np.arange(n)

    assert default_patience(FitOptions(data=None, model="nvae"), Data(1999)) == SMALL_TABLE_PATIENCE == 50
    assert default_patience(FitOptions(data=None, model="svqvae"), Data(1999)) == 50
    assert default_patience(FitOptions(data=None, model="svqvae"), Data(2000)) == DEFAULT_PATIENCE == 15
    assert default_patience(FitOptions(data=None, model="deepaa"), Data(100)) == 15
    frame = _few_rows_table()
    m = archetool.fit(frame, model="svqvae", label="cls", out=str(tmp_path / "a"), epochs=3, device="cpu", verbose=False)
    assert m.config["train"]["patience"] == 50 and m.config["options"]["patience"] is None
    m = archetool.fit(frame, model="svqvae", label="cls", out=str(tmp_path / "b"), epochs=3, device="cpu", verbose=False,
                      patience=7)
    assert m.config["train"]["patience"] == 7


def test_nvae_keeps_shared_dimensions_open_on_wine(tmp_path):
    """Guard (issue 17 round 5): on this wine split (the benchmark's seed 7) early stopping after 15 epochs without
    improvement stopped nvae at epoch 29 with no active shared dimension; the small-table patience trains it to
    3 of 4 active."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    data = load_wine()
    train, _ = train_test_split(np.arange(len(data.target)), test_size=0.2, stratify=data.target, random_state=7)
    frame = pd.DataFrame(data.data[np.sort(train)], columns=data.feature_names)
    frame["cultivar"] = data.target[np.sort(train)].astype(str)
    m = archetool.fit(frame, model="nvae", label="cultivar", out=str(tmp_path / "m"), seed=7, device="cpu", verbose=False)
    assert m.config["summary"]["active_shared_dims"] >= 2, m.config["summary"]
