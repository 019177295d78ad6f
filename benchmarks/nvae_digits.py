"""Benchmark: nvae on sklearn's digits (class accuracy, artificial-data test, ablation) and the KL detector
of class-dependent factors on a synthetic set with known factors.

Part 1 -- digits (sklearn.datasets.load_digits: 1,797 8x8 images, 10 classes; no download)
------------------------------------------------------------------------------------------
* One stratified split, 75 % training (1,347 rows) / 25 % held out (450 rows), fixed (random_state 0);
  the models see only the training rows (their own 10 % validation split for early stopping is taken
  from them).
* nvae is trained with ``archetool.fit(..., model="nvae", label="target")`` -- the code path of
  ``archetool fit --model nvae`` -- with the options printed in the results.
* (a) accuracy of q(y|x) (``pred_label`` of ``embed``) on the held-out rows.
* (b) the artificial-data test of the N-VAE paper: a logistic regression (sklearn, standardised pixels,
  max_iter 5000) is trained on n = 1,347 rows of (i) real training data, (ii) 60 % real training rows
  (a random subset) plus 40 % generated rows, (iii) 100 % generated rows; each is tested on the 450
  real held-out rows. Generated rows come from ``archetool sample`` (ancestral sampling, y ~ p(y) =
  the training class frequencies, temperature T on the prior's standard deviation).
* (c) ablation, trained the same way (same rows, split, loop, epochs, batch size, learning rate,
  hidden widths, likelihood, total latent size): a conditional VAE with one latent z ~ N(0, I) of
  size class_dim + shared_dim, encoder q(z | x, y) and a class-conditioned decoder p(x | z, y).
  Its samples are y ~ p(y), z ~ N(0, T^2 I).
* Targets: nvae (iii) >= 0.9 x (i); nvae (iii) > ablation (iii). Mean ± sd over seeds.

Part 2 -- detecting class-dependent factors (synthetic, factors made here)
--------------------------------------------------------------------------
* K = 4 classes, 500 rows each, p = 24 features:
      x = c_y + s·W_s + sum_k [y = k]·f_k·w_k + noise,    noise ~ N(0, 0.1²) per feature,
  c_y class centres ~ N(0, 1.5²); two *shared* factors s ~ N(0, I) with the same loading W_s in every
  class; three *class-exclusive* factors f_0, f_1, f_2 ~ N(0, 1), f_k varying only in class k (class 3
  has none); loadings ~ N(0, 9/p). Features are standardised by archetool as usual.
* nvae (class_dim 4, shared_dim 4: more dimensions than factors) is trained on them; the detector is
  ``kl_per_dim.csv`` of ``archetool archetypes`` (per-class mean KL of every latent dimension; a
  dimension is active in a class at >= 0.1 nats and >= 25 % of its largest per-class KL; role =
  shared when active in every class, class-dependent when active in some).
* Truth: each factor is carried by the latent dimension whose posterior mean correlates best with it
  (within the class for f_k; averaged over the classes for s). A class-exclusive factor f_k counts as
  detected when that dimension's role is class-dependent, class k is among its ``active_in`` classes
  and |r| >= 0.7; a shared factor when the role is shared and |r| >= 0.7. "spurious" counts active
  dimensions that carry no factor (best |r| < 0.3). "in z_c / z_s" reports where the model put them.

Run (2 cores):  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/nvae_digits.py
Smoke mode:     OMP_NUM_THREADS=2 .venv/bin/python benchmarks/nvae_digits.py --quick
Writes benchmarks/results/<name>.md and the figures benchmarks/figures/nvae_samples.png (samples per
class) and benchmarks/figures/nvae_kl_synthetic.png (the detector on the synthetic set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")  # the machine budget: at most 2 cores

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from _common import mean_sd, write_result  # noqa: E402

FIGURES = HERE / "figures"


# --- ablation: conditional VAE with one latent and a class-conditioned decoder ------------------
def make_cvae(n_features: int, n_classes: int, latent_dim: int, hidden, likelihood: str, kl_weight: float = 1.0):
    import torch
    import torch.nn.functional as F

    from archetool.models.base import ArchetoolModule
    from archetool.models.layers import gaussian_kl_standard, mlp

    class CVAE(ArchetoolModule):
        """q(z | x, y), z ~ N(0, I), p(x | z, y); loss = recon + kl_weight * KL (the same likelihood as nvae)."""

        kind = "cvae"
        needs = ("label",)

        def __init__(self):
            super().__init__(n_features, likelihood)
            self.n_classes, self.d = n_classes, latent_dim
            width = hidden[-1]
            self.encoder = mlp(n_features + n_classes, hidden)
            self.mu_head = torch.nn.Linear(width, latent_dim)
            self.log_var_head = torch.nn.Linear(width, latent_dim)
            self.decoder = mlp(latent_dim + n_classes, list(reversed(hidden)), n_features)

        @property
        def latent_dim(self):
            return self.d

        def _onehot(self, y):
            return F.one_hot(y.long(), self.n_classes).float()

        def loss_terms(self, batch):
            x, y = batch["x"], batch["label"]
            h = self.encoder(torch.cat([x, self._onehot(y)], 1))
            mu, log_var = self.mu_head(h), self.log_var_head(h).clamp(-10, 10)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
            recon = self.likelihood.nll(self.decoder(torch.cat([z, self._onehot(y)], 1)), x).mean()
            kl = gaussian_kl_standard(mu, log_var).sum(1).mean()
            return {"loss": recon + kl_weight * kl, "recon": recon, "kl": kl}

        @torch.no_grad()
        def sample(self, labels, temperature):
            z = temperature * torch.randn(len(labels), self.d)
            return self.likelihood.mean(self.decoder(torch.cat([z, self._onehot(labels)], 1)))

    return CVAE()


# --- part 1: digits ---------------------------------------------------------------------------
def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits(as_frame=True)
    frame = d.frame.copy()
    frame.insert(0, "id", [f"d{i:04d}" for i in range(len(frame))])
    frame["target"] = frame["target"].astype(str)
    train, test = train_test_split(frame, test_size=0.25, stratify=frame["target"], random_state=0)
    return train.reset_index(drop=True), test.reset_index(drop=True), list(d.feature_names)


def logreg_accuracy(x_train, y_train, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    clf.fit(x_train, y_train)
    return float((clf.predict(x_test) == y_test).mean())


def artificial_test(generate, train, test, features, temperature: float, seed: int) -> dict:
    """(ii) 60 % real + 40 % generated, (iii) 100 % generated; n = len(train) rows each; tested on `test`."""
    import torch

    n = len(train)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    gen_x, gen_y = generate(n, temperature)
    n_real = int(round(0.6 * n))
    real_idx = rng.choice(n, n_real, replace=False)
    mix_x = np.vstack([train[features].to_numpy()[real_idx], gen_x[: n - n_real]])
    mix_y = np.concatenate([train["target"].to_numpy()[real_idx], gen_y[: n - n_real]])
    xt, yt = test[features].to_numpy(), test["target"].to_numpy()
    return {"mix40": logreg_accuracy(mix_x, mix_y, xt, yt), "gen100": logreg_accuracy(gen_x, gen_y, xt, yt)}


def run_digits(seed: int, work: Path, args, train, test, features) -> tuple[dict, object]:
    import torch

    import archetool
    from archetool.analysis import adapter
    from archetool.training.device import resolve_device
    from archetool.training.loop import TrainConfig, train as train_loop

    train_csv, test_csv = work / "digits_train.csv", work / "digits_test.csv"
    if not train_csv.exists():
        train.to_csv(train_csv, index=False)
        test.to_csv(test_csv, index=False)
    hidden = [int(h) for h in args.hidden.split(",")]
    tic = time.perf_counter()
    model = archetool.fit(str(train_csv), model="nvae", label="target", latent_dim=args.class_dim,
                          shared_dim=args.shared_dim, hidden=hidden, epochs=args.epochs, batch_size=args.batch_size,
                          lr=args.lr, patience=args.patience, seed=seed, device="cpu", out=str(work / f"nvae_{seed}"),
                          progress_bar=False, model_options=json.loads(args.nvae_options))
    nvae_s = time.perf_counter() - tic
    emb = model.embed(str(test_csv))
    acc_q = float((emb["pred_label"].astype(str).to_numpy() == test["target"].to_numpy()).mean())
    nv = adapter("nvae")

    def nvae_generate(n, t):
        table = nv.sample(model, n, None, t, None)
        return table[features].to_numpy(np.float32), table["target"].astype(str).to_numpy()

    # ablation on the same scaled rows, same loop and settings (KL weight 1 = the standard CVAE, and
    # the KL weight nvae puts on its class latent, to show whether the weight alone explains a gap)
    prep = model.prep
    x = prep.scale_x(train[features].to_numpy(np.float32))
    y = np.array([prep.classes.index(v) for v in train["target"]], dtype=np.int64)
    prior = np.bincount(y, minlength=len(prep.classes)) / len(y)
    generators = {"nvae": nvae_generate}
    cvae_info = {}
    for beta in args.ablation_betas:
        torch.manual_seed(seed)
        cvae = make_cvae(x.shape[1], len(prep.classes), args.class_dim + args.shared_dim, hidden, prep.likelihood, beta)
        tic = time.perf_counter()
        res = train_loop(cvae, {"x": x, "label": y}, TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                                                     val_fraction=0.1, patience=args.patience, seed=seed),
                         resolve_device("cpu"))
        cvae_info[f"cvae_b{beta:g}_epochs"], cvae_info[f"cvae_b{beta:g}_s"] = len(res.history), time.perf_counter() - tic

        def cvae_generate(n, t, cvae=cvae):
            labels = torch.multinomial(torch.as_tensor(prior), n, replacement=True)
            xs = cvae.sample(labels, t).numpy()
            return prep.unscale_x(xs), np.asarray(prep.classes, dtype=object)[labels.numpy()].astype(str)

        generators[f"cvae_b{beta:g}"] = cvae_generate

    out = {"seed": seed, "q_acc": acc_q, "nvae_epochs": model.config["summary"]["epochs_run"], "nvae_s": nvae_s, **cvae_info}
    out["real"] = logreg_accuracy(train[features].to_numpy(), train["target"].to_numpy(),
                                  test[features].to_numpy(), test["target"].to_numpy())
    for t in args.temperatures:
        for name, gen in generators.items():
            r = artificial_test(gen, train, test, features, t, seed)
            out[f"{name}_mix40_T{t}"], out[f"{name}_gen100_T{t}"] = r["mix40"], r["gen100"]
    return out, model


def samples_figure(model, path: Path, per_class: int = 10, temperature: float = 1.0) -> Path:
    import torch

    from archetool.analysis import plots

    module, prep = model.module, model.prep
    K = len(prep.classes)
    labels = torch.arange(K).repeat_interleave(per_class)
    xs, _ = module.sample(len(labels), labels=labels, temperature=temperature, generator=torch.Generator().manual_seed(0))
    images = prep.unscale_x(xs.numpy()).reshape(K, per_class, 8, 8)
    FIGURES.mkdir(parents=True, exist_ok=True)
    return plots.image_grid(images, path, [f"{c}" for c in prep.classes], None,
                            f"nvae samples per class (digits, temperature {temperature}; held-out rows never seen)")


# --- part 2: synthetic factors ----------------------------------------------------------------
N_CLASSES, P, N_SHARED, EXCLUSIVE = 4, 24, 2, (0, 1, 2)


def factor_data(seed: int, n_per: int = 500) -> dict:
    rng = np.random.default_rng(1000 + seed)
    y = np.repeat(np.arange(N_CLASSES), n_per)
    centres = rng.normal(size=(N_CLASSES, P)) * 1.5
    w_shared = rng.normal(size=(N_SHARED, P)) * 3 / np.sqrt(P)
    s = rng.normal(size=(len(y), N_SHARED))
    x = centres[y] + s @ w_shared
    f = np.zeros((len(y), len(EXCLUSIVE)))
    for j, k in enumerate(EXCLUSIVE):
        w = rng.normal(size=P) * 3 / np.sqrt(P)
        f[y == k, j] = rng.normal(size=int((y == k).sum()))
        x = x + f[:, j:j + 1] * w[None]
    x = x + 0.1 * rng.normal(size=x.shape)
    return {"x": x, "y": y, "s": s, "f": f}


def abs_corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(abs(np.corrcoef(a, b)[0, 1]))


def run_factors(seed: int, work: Path, args) -> tuple[dict, pd.DataFrame]:
    import archetool
    from archetool.analysis import adapter

    data = factor_data(seed)
    frame = pd.DataFrame(data["x"], columns=[f"f{j}" for j in range(P)])
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    frame["cls"] = [f"c{k}" for k in data["y"]]
    path = work / f"factors_{seed}.csv"
    frame.to_csv(path, index=False)
    model = archetool.fit(str(path), model="nvae", label="cls", latent_dim=4, shared_dim=4,
                          hidden=[int(h) for h in args.hidden.split(",")], epochs=args.factor_epochs,
                          batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=seed, device="cpu",
                          out=str(work / f"factors_model_{seed}"), progress_bar=False,
                          model_options=json.loads(args.nvae_options))
    rows = model.training_rows
    kl, _ = adapter("nvae").kl_detector(model, rows)
    d = model.module.latent_dim
    class_dim = model.module.class_dim
    mu = rows[[f"z{j}" for j in range(d)]].to_numpy()
    y = data["y"]
    r_excl = np.array([[abs_corr(mu[y == k, j], data["f"][y == k, i]) for i, k in enumerate(EXCLUSIVE)] for j in range(d)])
    r_shared = np.array([[np.mean([abs_corr(mu[y == k, j], data["s"][y == k, i]) for k in range(N_CLASSES)])
                          for i in range(N_SHARED)] for j in range(d)])
    found_excl, found_shared, in_zc, in_zs, rs, detail = 0, 0, 0, 0, [], []
    for i, k in enumerate(EXCLUSIVE):
        j = int(r_excl[:, i].argmax())
        rs.append(r_excl[j, i])
        active_in = str(kl["active_in"].iloc[j]).split(";")
        ok = kl["role"].iloc[j] == "class-dependent" and f"c{k}" in active_in and r_excl[j, i] >= 0.7
        found_excl += int(ok)
        in_zc += int(j < class_dim)
        detail.append(f"f_{k}→z{j} |r|={r_excl[j, i]:.2f} {kl['role'].iloc[j]} [{kl['active_in'].iloc[j]}] {'✓' if ok else '✗'}")
    for i in range(N_SHARED):
        j = int(r_shared[:, i].argmax())
        rs.append(r_shared[j, i])
        ok = kl["role"].iloc[j] == "shared" and r_shared[j, i] >= 0.7
        found_shared += int(ok)
        in_zs += int(j >= class_dim)
        detail.append(f"s{i + 1}→z{j} |r|={r_shared[j, i]:.2f} {kl['role'].iloc[j]} {'✓' if ok else '✗'}")
    best = np.maximum(r_excl.max(1), r_shared.max(1))
    spurious = int(((kl["role"] != "inactive").to_numpy() & (best < 0.3)).sum())
    out = {"seed": seed, "excl_detected": found_excl, "shared_detected": found_shared,
           "excl_in_zc": in_zc, "shared_in_zs": in_zs, "spurious": spurious, "mean_abs_r": float(np.mean(rs)),
           "roles": " ".join(f"{c}:{r[:5]}" for c, r in zip(kl["column"], kl["role"])), "factors": "; ".join(detail)}
    return out, kl


def kl_figure(kl: pd.DataFrame, path: Path) -> Path:
    from archetool.analysis import plots

    plt = plots._pyplot()
    cols = [c for c in kl.columns if c.startswith("kl_c")]
    m = kl[cols].to_numpy().T  # (classes, dims)
    fig, ax = plt.subplots(figsize=(7.2, 2.9))
    im = ax.imshow(m, cmap="magma_r", aspect="auto")
    ax.set_xticks(range(len(kl)), [f"{c}\n{'z_c' if l == 'class' else 'z_s'}{d}\n{r}" for c, l, d, r in
                                   zip(kl["column"], kl["latent"], kl["dim"], kl["role"].str.replace("class-dependent", "class-dep."))],
                  fontsize=7)
    ax.set_yticks(range(len(cols)), [c[3:] + (" (f_" + c[4:] + ")" if int(c[4:]) in EXCLUSIVE else " (none)") for c in cols],
                  fontsize=8)
    for (r, c), v in np.ndenumerate(m):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6.5, color="white" if v > m.max() / 2 else "black")
    fig.colorbar(im, ax=ax, label="mean KL (nats)")
    ax.set_title("Per-class KL of each latent dimension (synthetic: shared s1, s2; class-exclusive f_0, f_1, f_2)", fontsize=8)
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    return plots.save_figure(fig, path)


# --- report -------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke mode: one seed, 20 epochs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--factor-epochs", type=int, default=150)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", default="256,128")
    ap.add_argument("--class-dim", type=int, default=8)
    ap.add_argument("--shared-dim", type=int, default=4)
    ap.add_argument("--temperatures", default="1.0,1.4")
    ap.add_argument("--ablation-betas", default="1,2", help="KL weights of the ablation CVAEs (1: the standard CVAE)")
    ap.add_argument("--nvae-options", default="{}", help='JSON of extra NVAE hyper-parameters, e.g. \'{"beta_c": 1}\'')
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny models: 1 is fastest on a shared machine)")
    ap.add_argument("--skip-factors", action="store_true")
    ap.add_argument("--skip-digits", action="store_true")
    ap.add_argument("--name", default="nvae_digits", help="results/<name>.md")
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.factor_epochs = 1, 20, 20
        args.name = args.name if args.name != "nvae_digits" else "nvae_digits_quick"
        args.no_figures = True
    args.temperatures = [float(t) for t in args.temperatures.split(",")]
    args.ablation_betas = [float(b) for b in args.ablation_betas.split(",")]

    import torch

    from archetool import __version__

    torch.set_num_threads(args.threads)
    tic = time.perf_counter()
    lines = []
    opts = (f"hidden {args.hidden}, class_dim {args.class_dim}, shared_dim {args.shared_dim}, batch {args.batch_size}, "
            f"lr {args.lr}, up to {args.epochs} epochs (patience {args.patience}), nvae options {args.nvae_options}")
    with tempfile.TemporaryDirectory(prefix="nvae-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_digits:
            train, test, features = digits_split()
            recs = []
            for seed in range(args.seeds):
                rec, model = run_digits(seed, work, args, train, test, features)
                recs.append(rec)
                print(json.dumps(rec), flush=True)
                if seed == 0 and not args.no_figures:
                    samples_figure(model, FIGURES / "nvae_samples.png")
            df = pd.DataFrame(recs)
            real = df["real"].to_numpy()
            import inspect

            from archetool.models.nvae import NVAE

            defaults = {k: p.default for k, p in inspect.signature(NVAE.__init__).parameters.items()}
            nv_opts = json.loads(args.nvae_options)
            beta_c = nv_opts.get("beta_c", defaults["beta_c"])
            separation = nv_opts.get("class_separation", defaults["class_separation"])
            lines += [f"## Digits: {len(train)} training rows, {len(test)} held-out rows, {args.seeds} seed(s), mean ± sd", "",
                      f"Options: {opts} (nvae beta_c = {beta_c}, class_separation = {separation}). Logistic regression: StandardScaler + "
                      "LogisticRegression(max_iter=5000).", "",
                      f"(a) q(y|x) accuracy on the held-out rows: **{mean_sd(df['q_acc'])}**", "",
                      f"(b)/(c) logistic regression tested on the real held-out rows, trained on n = {len(train)} rows of "
                      f"(i) real training rows: **{mean_sd(real)}**, or:", "",
                      "| generator | temperature | (ii) 60 % real + 40 % generated | (iii) 100 % generated | (iii) / (i) |",
                      "|---|---|---|---|---|"]
            names = {"nvae": "**nvae**"} | {f"cvae_b{b:g}": f"ablation: CVAE, KL weight {b:g}" for b in args.ablation_betas}
            for t in args.temperatures:
                for key, title in names.items():
                    g = df[f"{key}_gen100_T{t}"].to_numpy()
                    lines.append(f"| {title} | {t} | {mean_sd(df[f'{key}_mix40_T{t}'])} | {mean_sd(g)} | {g.mean() / real.mean():.3f} |")
            lines += ["", "Targets (means over seeds):", ""]
            for t in args.temperatures:
                g = df[f"nvae_gen100_T{t}"].mean()
                versus = "; ".join(f"vs KL weight {b:g}: {df[f'cvae_b{b:g}_gen100_T{t}'].mean():.3f} → "
                                   f"**{'met' if g > df[f'cvae_b{b:g}_gen100_T{t}'].mean() else 'NOT met'}**"
                                   for b in args.ablation_betas)
                lines.append(f"* T = {t}: nvae (iii) = {g:.3f} ≥ 0.9 × (i) = {0.9 * real.mean():.3f} → "
                             f"**{'met' if g >= 0.9 * real.mean() else 'NOT met'}**; nvae (iii) > ablation (iii): {versus}")
            lines += ["", "<details><summary>per seed</summary>", "", df.round(4).to_markdown(index=False)
                      if _has_tabulate() else df.round(4).to_string(index=False), "", "</details>", ""]
        if not args.skip_factors:
            frecs, first_kl = [], None
            for seed in range(args.seeds):
                rec, kl = run_factors(seed, work, args)
                frecs.append(rec)
                print(json.dumps(rec), flush=True)
                if seed == 0:
                    first_kl = kl
            fdf = pd.DataFrame(frecs)
            n_ex, n_sh = len(EXCLUSIVE), N_SHARED
            lines += [f"## Detecting class-dependent factors (synthetic: {n_sh} shared + {n_ex} class-exclusive factors, "
                      f"{N_CLASSES} classes x 500 rows, p = {P}; class_dim 4, shared_dim 4; up to {args.factor_epochs} epochs)", "",
                      "| seeds | class-exclusive factors detected | shared factors detected | spurious active dims | "
                      "exclusive factors placed in z_c | shared factors placed in z_s | mean best |r| |",
                      "|---|---|---|---|---|---|---|",
                      f"| {len(fdf)} | {fdf['excl_detected'].sum()}/{n_ex * len(fdf)} | {fdf['shared_detected'].sum()}/{n_sh * len(fdf)} | "
                      f"{fdf['spurious'].sum()} | {fdf['excl_in_zc'].sum()}/{n_ex * len(fdf)} | {fdf['shared_in_zs'].sum()}/{n_sh * len(fdf)} | "
                      f"{fdf['mean_abs_r'].mean():.3f} |", "",
                      "Per seed: kl_per_dim.csv `role` of each dimension (shared / class-dependent / inactive), then each "
                      "factor → the dimension that carries it, |r|, its role [active_in] and whether it counts as detected:", ""]
            lines += [f"* seed {r['seed']}: {r['roles']}<br>{r['factors']}" for r in frecs]
            lines.append("")
            if first_kl is not None and not args.no_figures:
                kl_figure(first_kl, FIGURES / "nvae_kl_synthetic.png")
                lines += ["Seed 0's per-class KL: `benchmarks/figures/nvae_kl_synthetic.png`.", ""]
    lines.append(f"Total wall time {time.perf_counter() - tic:.0f} s (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
                 f"torch threads {args.threads}), archetool {__version__}. Command: "
                 f"`OMP_NUM_THREADS=2 .venv/bin/python benchmarks/nvae_digits.py {' '.join(argv if argv is not None else sys.argv[1:])}`")
    text = "\n".join(lines) + "\n"
    write_result(args.name, text)
    print(text)
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
