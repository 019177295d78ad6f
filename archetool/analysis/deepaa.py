"""deepaa analyses: embedding columns, archetypes + exemplars + pictures, samples, interpolation, k sweep."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from archetool.analysis.base import ModelAnalysis, id_column, latent_matrix, line_between
from archetool.errors import ArchetoolError, preview

log = logging.getLogger("archetool")


def archetype_names(k: int) -> list[str]:
    return [f"a{j}" for j in range(k)]


#: deepaa's default sampling temperature for models that generate molecules, by the decoder's alphabet. SELFIES
#: (issue 18, decoder stage, posterior prior; benchmarks/results/molecule_generation_round3.md): against 1.0, 0.7
#: lowers the FCD to MOSES test (5k molecules: 23.5 -> 19.7) and raises Pearson(pred_logp, RDKit logP) of the decoded
#: molecules (MOSES 0.39 -> 0.46, NCI 0.72 -> 0.80), with uniqueness 1.0 (MOSES) and 0.96 (NCI). SMILES: its language
#: model is best at 1.0 (50k MOSES: FCD 0.42 against 1.06 at 0.8 and 1.73 at 0.7; the strings a lower temperature
#: would avoid are mostly no molecule and are drawn again; benchmarks/results/molecule_decoder_lm.md).
MOLECULE_TEMPERATURE = {"selfies": 0.7, "smiles": 1.0}


class DeepAAAnalysis(ModelAnalysis):
    code_kind = "an archetype (a0..)"
    #: the decoder reads the side values and decoded features predicted at the latent point besides the point
    #: (sequence_decoder.READS; measured in benchmarks/results/molecule_generation_round3.md). mix 0.5 (issue 18,
    #: round 7): half the decoder's training rows sit part of the way toward another row's point, so the simplex
    #: between training molecules (which interpolate and --grid cross) decodes to molecules of the data's size.
    #: 50k MOSES, each fit's main model kept and its decoder retrained (benchmarks/results/
    #: molecule_generation_moses_50k_mix05.md, _50k_quiet_mix05.md): archetype-pair lines 52 -> 60 and 52 -> 58 of 60
    #: greedy decodes in the data's 5-95 % heavy-atom range, grid 17 -> 20 and 17 -> 19 of 20, first-draw validity
    #: 0.764 -> 0.834 and 0.802 -> 0.846, FCD 0.523 -> 0.503 and 0.632 -> 0.539, Pearson(pred_logp, RDKit logP)
    #: 0.909 -> 0.873 and 0.869 (target >= 0.7); mix 0.25 gave 55 of 60.
    decoder_defaults = {"read": "decoded", "mix": 0.5}

    def default_temperature(self, model) -> float:
        """:data:`MOLECULE_TEMPERATURE` of the decoder's alphabet for a model with a sequence decoder, else 1.0."""
        from archetool.analysis.generation import has_decoder

        return MOLECULE_TEMPERATURE[model.prep.sequence.get("kind", "selfies")] if has_decoder(model) else 1.0

    def check_options(self, options) -> None:
        if options.k < 2:
            raise ArchetoolError(f"--k {options.k}: deep archetypal analysis needs at least 2 archetypes (k >= 2)")
        if options.latent_dim is not None and options.latent_dim != options.k - 1:
            raise ArchetoolError(f"--latent-dim {options.latent_dim}: deepaa's latent dimension is k - 1 = {options.k - 1}; drop --latent-dim or change --k")

    def hparams(self, options, prep, data) -> dict:
        hp = dict(n_features=data.x.shape[1], n_archetypes=options.k, n_side=len(prep.side_names), likelihood=prep.likelihood)
        if options.hidden:
            hp["hidden"] = list(options.hidden)
        hp.update(options.model_options)
        return hp

    def embedding_columns(self, model, outputs) -> dict:
        cols = {f"a{j}": outputs["weights"][:, j] for j in range(outputs["weights"].shape[1])}
        side = model.prep.unscale_side(outputs["side"]) if model.prep.side_names else np.zeros((len(outputs["z"]), 0))
        cols.update({f"pred_{name}": side[:, j] for j, name in enumerate(model.prep.side_names)})
        return cols

    def fit_summary(self, model, data) -> dict:
        return {"posterior_sd": posterior_sd(model.module, data.x, model.device)}

    def held_out_summary(self, model, data, val_index) -> dict:
        out = {}
        if data.side is None or len(val_index) == 0:
            return out
        pred = model.transform(data.x[val_index])["side"]
        truth = data.side[val_index]
        for j, name in enumerate(model.prep.side_names):
            resid = ((pred[:, j] - truth[:, j]) ** 2).sum()
            total = ((truth[:, j] - truth[:, j].mean()) ** 2).sum()
            out[f"val_r2_{name}"] = float(1 - resid / total) if total > 0 else float("nan")
            out[f"val_rmse_{name}"] = float(np.sqrt(((pred[:, j] - truth[:, j]) ** 2).mean()) * model.prep.side_std[j])
        return out

    # --- decoding -----------------------------------------------------------------------------
    def codes(self, model) -> np.ndarray:
        """The archetypes' latent points (k, k - 1): the simplex vertices."""
        return model.module.Z.cpu().numpy()

    def code_names(self, model) -> list[str]:
        return archetype_names(model.module.n_archetypes)

    def decode_table(self, model, latent: np.ndarray) -> pd.DataFrame:
        """Latent points (m, d) -> predicted side values ``pred_<side>`` and decoded features (original units)."""
        module = model.module
        with torch.no_grad():
            t = torch.from_numpy(np.asarray(latent, np.float32)).to(model.device)
            x = module.decode(t).cpu().numpy()
            side = module.predict_side(t).cpu().numpy()
        table = model.decode_features(x)
        preds = {f"pred_{n}": model.prep.unscale_side(side)[:, j] for j, n in enumerate(model.prep.side_names)}
        return pd.concat([pd.DataFrame(preds), table], axis=1)

    def weights_of(self, model, latent: np.ndarray) -> np.ndarray:
        """Barycentric coordinates of latent points w.r.t. the simplex vertices (rows sum to 1)."""
        Z = self.codes(model)
        k = Z.shape[0]
        lhs = np.vstack([Z.T, np.ones((1, k))])  # (d+1, k), square and invertible for a simplex
        rhs = np.vstack([np.asarray(latent).T, np.ones((1, len(latent)))])
        weights = np.linalg.solve(lhs, rhs).T
        weights[np.abs(weights) < 1e-7] = 0.0  # round-off, not signal
        return weights

    # --- archetypes ---------------------------------------------------------------------------
    def archetypes_table(self, model, rows: pd.DataFrame | None) -> pd.DataFrame:
        """archetypes.csv: one row per archetype a0..: predicted side values and decoded features."""
        return self.points_table(model, pd.DataFrame({"archetype": archetype_names(model.module.n_archetypes)}),
                                 self.codes(model), molecules="smiles", distinct=True)

    def exemplars(self, model, rows: pd.DataFrame, n_exemplars: int) -> pd.DataFrame:
        """exemplars.csv: the ``n_exemplars`` rows with the largest weight on each archetype (archetype, rank,
        id, smiles, weight, latent distance to the vertex, side values)."""
        names = archetype_names(model.module.n_archetypes)
        Z = self.codes(model)
        weights = rows[names].to_numpy()
        latent = latent_matrix(rows, model.module.latent_dim)
        ids = rows[id_column(model)].astype(str).to_numpy()
        ex = []
        for j, name in enumerate(names):
            order = np.argsort(-weights[:, j], kind="stable")[:n_exemplars]
            for rank, i in enumerate(order, start=1):
                rec = {"archetype": name, "rank": rank, "id": ids[i]}
                if "smiles" in rows.columns:
                    rec["smiles"] = rows["smiles"].iloc[i]
                rec["weight"] = float(weights[i, j])
                rec["distance"] = float(np.linalg.norm(latent[i] - Z[j]))
                for side in model.prep.side_names:
                    if side in rows.columns:
                        rec[side] = rows[side].iloc[i]
                ex.append(rec)
        return pd.DataFrame(ex)

    def exemplar_molecules(self, model, rows: pd.DataFrame, n_exemplars: int) -> tuple[list[str], list[str]]:
        """SMILES and legends ('a0 #1 <id> <side>=<value>') of the exemplars; empty without molecules."""
        ex = self.exemplars(model, rows, n_exemplars)
        if "smiles" not in ex.columns:
            return [], []
        side = model.prep.side_names[0] if model.prep.side_names and model.prep.side_names[0] in ex.columns else None
        legends = [f"{r['archetype']} #{r['rank']} {r['id']}" + (f" {side}={r[side]:.3g}" if side else "")
                   for _, r in ex.iterrows()]
        return ex["smiles"].tolist(), legends

    def simplex_inputs(self, model, rows: pd.DataFrame, color: str | None = None) -> tuple:
        """The arguments of ``plots.simplex_figure`` for ``rows``: (weights, colour values, colour name, corner
        labels, title, categorical). Colour: ``color``, else the first side column, else the label column,
        else the predicted side value."""
        prep = model.prep
        k = model.module.n_archetypes
        names = archetype_names(k)
        weights = rows[names].to_numpy()
        categorical = False
        if color is not None:
            if color not in rows.columns:
                raise ArchetoolError(f"color={color!r} is not a column of the rows ({preview(rows.columns)}) nor of the "
                                     "data; pass data= holding it")
            colour_name = color
            categorical = not pd.api.types.is_numeric_dtype(rows[color])
        else:
            colour_name = next((s for s in prep.side_names if s in rows.columns), None)
            if colour_name is None and prep.label_column and prep.label_column in rows.columns:
                colour_name, categorical = prep.label_column, True
            if colour_name is None and prep.side_names:
                colour_name = f"pred_{prep.side_names[0]}"
        colour = rows[colour_name].to_numpy() if colour_name else None
        labels = list(names)
        if prep.side_names:
            pred = self.decode_table(model, self.codes(model))[f"pred_{prep.side_names[0]}"]
            labels = [f"{n}\n{prep.side_names[0]}≈{pred.iloc[j]:.3g}" for j, n in enumerate(names)]
        title = f"deepaa: {len(rows)} samples in the {k}-archetype simplex"
        return weights, colour, colour_name, labels, title, categorical

    def write_archetypes(self, model, rows: pd.DataFrame, out_dir: Path, n_exemplars: int = 5) -> list[Path]:
        from archetool.analysis import plots
        from archetool.io_tables import write_table

        table = self.archetypes_table(model, rows)
        written = [write_table(table, out_dir / "archetypes.csv")]
        if "smiles" in table.columns:
            from archetool.analysis.generation import write_generated_picture

            written.append(write_generated_picture(model, self, table["archetype"].tolist(), table["smiles"].tolist(), out_dir / "generated.png"))
        written.append(write_table(self.exemplars(model, rows, n_exemplars), out_dir / "exemplars.csv"))
        weights, colour, colour_name, labels, title, categorical = self.simplex_inputs(model, rows)
        written.append(plots.simplex_plot(weights, colour, colour_name, out_dir / "simplex.png", labels, title, categorical))
        smiles, legends = self.exemplar_molecules(model, rows, n_exemplars)
        if smiles:
            written.append(plots.molecule_grid(smiles, legends, out_dir / "exemplars.png", n_exemplars))
        return written

    # --- samples and interpolation --------------------------------------------------------------
    def noise_scale(self, model) -> float:
        """sd of the Gaussian noise (per unit of temperature) added to latent points built from mixture weights:
        the training rows' median posterior sd (fit summary "posterior_sd"), so that prior=posterior samples
        the aggregate posterior, where the sequence decoder was trained (on MOSES 0.01 against a prior_scale of 0.25:
        the prior's noise is as wide as the data's spread, sd 0.3, and put samples where the decoder never was);
        at most prior_scale (an under-trained encoder's sd can be wider); models saved without it: prior_scale."""
        value = (model.config.get("summary") or {}).get("posterior_sd")
        scale = float(model.module.prior_scale)
        return min(float(value), scale) if value is not None else scale

    def sample(self, model, n: int, label: str | None = None, temperature: float = 1.0, rows: pd.DataFrame | None = None,
               molecules: str | None = "full", archetype: str | None = None, spread: float = 0.2,
               weights: list[float] | None = None, prior: str = "posterior") -> pd.DataFrame:
        """n latent points: from the prior; near one ``archetype`` (weights (1 - spread)·e_I + spread·u,
        u ~ Dir(1)); or at the simplex point ``weights``; each plus temperature·:meth:`noise_scale`·N(0, I). With a
        sequence decoder the molecules are sampled at ``temperature`` too (0: greedy, no noise).

        ``prior``: "posterior" (default) draws the weights of random ``rows`` (the training rows: the aggregate
        posterior, where the decoders were trained; most rows lie on a face of the simplex, with a zero weight);
        "dirichlet" draws them from Dir(alpha·1), which puts weight on every archetype. Without rows: Dirichlet."""
        if label is not None:
            raise ArchetoolError("--label applies to class-conditioned models (nvae, svqvae); deepaa samples from the "
                                 "Dirichlet prior, near an archetype (--archetype aI) or at a point (--weights w0,w1,...)")
        module = model.module
        k = module.n_archetypes
        names = archetype_names(k)
        if archetype is not None and weights is not None:
            raise ArchetoolError("--archetype and --weights both choose where to sample; give one of them")
        if archetype is not None:
            if str(archetype) not in names:
                raise ArchetoolError(f"--archetype {archetype}: this model has k={k} archetypes, {names[0]}..{names[-1]}")
            if not 0.0 <= float(spread) <= 1.0:
                raise ArchetoolError(f"--spread {spread}: must be between 0 (at the archetype) and 1 (anywhere in the simplex)")
            u = torch.distributions.Dirichlet(torch.ones(k)).sample((n,)).numpy()
            a = float(spread) * u
            a[:, names.index(str(archetype))] += 1.0 - float(spread)
        elif weights is not None:
            a = np.tile(check_weights(weights, k), (n, 1))
        else:
            a = None
        if prior not in ("posterior", "dirichlet"):
            raise ArchetoolError(f"--prior {prior}: choose posterior (the training rows' weights) or dirichlet")
        names_present = rows is not None and all(c in rows.columns for c in names)
        if a is None and prior == "posterior" and names_present:
            a = rows[names].to_numpy(np.float64)[torch.randint(len(rows), (n,)).numpy()]
        if a is None:
            a, latent = (v.cpu().numpy() for v in module.sample_latent(n, temperature))
        else:
            noise = float(temperature) * self.noise_scale(model) * torch.randn(n, module.latent_dim).numpy()
            latent = (a @ self.codes(model) + noise).astype(np.float32)
        front = pd.DataFrame({"sample": np.arange(n)} | {f"a{j}": a[:, j] for j in range(k)})
        return self.points_table(model, front, latent, rows, n_nearest=3, molecules=molecules, temperature=temperature)

    def target_sample(self, model, n: int, target: dict[str, float], temperature: float = 1.0,
                      rows: pd.DataFrame | None = None, pool: int = 8192, candidates: int = 4) -> pd.DataFrame:
        """Targeted design (DESIGN §5): n points of the simplex whose predicted side values are nearest
        ``target`` ({side: value}), decoded, each decoded molecule (else decoded feature row) embedded again, and
        the rows ranked by the distance of that re-prediction to the target.

        Candidates: max(pool, 16·n) weights, half the ``rows``' own (the aggregate posterior) and half
        Dir(1), each point plus temperature·:meth:`noise_scale`·N(0, I) noise; the max(n, 64) nearest by predicted
        value are kept and ``candidates``·n drawn from them (with replacement; the molecules still differ, as the decoder
        samples), decoded and re-predicted; the n whose re-prediction is nearest the target are returned, distinct molecules
        before repeats (a repeat only where fewer than n differ). A target outside the values predicted over the
        candidates is one error line naming that range. Columns: sample (rank), [smiles, novel, most similar
        training molecule], pred_<side> (at the latent point), repred_<side> (of the decoded molecule),
        distance (see :func:`generation.target_distance`), a0.."""
        from archetool.analysis import generation

        module = model.module
        k = module.n_archetypes
        names = archetype_names(k)
        m = max(int(pool), 16 * n)
        a = torch.distributions.Dirichlet(torch.ones(k)).sample((m,)).numpy().astype(np.float64)
        if rows is not None and all(c in rows.columns for c in names):
            half = m // 2
            a[:half] = rows[names].to_numpy(np.float64)[torch.randint(len(rows), (half,)).numpy()]
        noise = float(temperature) * self.noise_scale(model) * torch.randn(m, module.latent_dim).numpy()
        latent = (a @ self.codes(model) + noise).astype(np.float32)
        pred = self.decode_table(model, latent)[[f"pred_{s}" for s in model.prep.side_names]].to_numpy()
        generation.check_reachable(model, pred, target, f"{m} points of the simplex and of the training rows")
        near = np.argsort(generation.target_distance(model, pred, target), kind="stable")[: max(n, 64)]
        pick = near[torch.randint(len(near), (max(1, int(candidates)) * n,)).numpy()]
        a, latent, pred = a[pick], latent[pick], pred[pick]
        parts, ref = [], None
        if generation.has_decoder(model):
            smiles = generation.generate_smiles(model, latent, temperature=temperature)
            ref = generation.Reference.of(model, rows)
            parts.append(generation.molecule_columns(smiles, ref, full=True))
            repred = generation.repredict(model, smiles).to_numpy()
        else:
            with torch.no_grad():
                t = torch.from_numpy(latent).to(model.device)
                side = module.embed(module.decode(t))["side"].cpu().numpy()
            repred = model.prep.unscale_side(side)
            smiles = None
        sides = model.prep.side_names
        values = pd.DataFrame({f"pred_{s}": pred[:, j] for j, s in enumerate(sides)}
                              | {f"repred_{s}": repred[:, j] for j, s in enumerate(sides)})
        values["distance"] = generation.target_distance(model, repred, target)
        weights = pd.DataFrame({f"a{j}": a[:, j] for j in range(k)})
        table = pd.concat(parts + [values, weights], axis=1)
        if smiles is None:
            with torch.no_grad():
                x = module.decode(torch.from_numpy(latent).to(model.device)).cpu().numpy()
            table = pd.concat([table, model.decode_features(x)], axis=1)
        table = table.sort_values("distance", kind="stable", na_position="last")
        if smiles is not None:  # distinct molecules first: a repeat of a better-ranked one only where too few differ
            repeat = table["smiles"].duplicated().to_numpy()
            table = pd.concat([table[~repeat], table[repeat]]).head(n)
            table = table.sort_values("distance", kind="stable", na_position="last")
        table = table.head(n).reset_index(drop=True)
        table.insert(0, "sample", np.arange(len(table)))
        smiles = table["smiles"].tolist() if smiles is not None else None
        if smiles is not None:
            table.attrs["generation"] = generation.generation_metrics(smiles, ref)
            log.info("targeted design: distance of the re-predicted values to the target: best %.3g, median %.3g",
                     table["distance"].min(), table["distance"].median())
        return table

    def interpolate(self, model, start: str, end: str, steps: int, rows: pd.DataFrame | None,
                    distinct: bool = True) -> pd.DataFrame:
        t, latent = line_between(self.endpoint(model, start, rows), self.endpoint(model, end, rows), steps)
        weights = self.weights_of(model, latent)
        front = pd.DataFrame({"step": np.arange(steps), "t": t} | {f"a{j}": weights[:, j] for j in range(weights.shape[1])})
        return self.points_table(model, front, latent, rows, molecules="smiles", distinct=distinct)

    def grid(self, model, steps: int, rows: pd.DataFrame | None, distinct: bool = True) -> pd.DataFrame:
        """Decode every point of a barycentric grid over the simplex (weights in multiples of 1/steps)."""
        from archetool.models.simplex import barycentric_grid

        weights = barycentric_grid(model.module.n_archetypes, steps).numpy()
        latent = weights @ self.codes(model)
        front = pd.DataFrame({"point": np.arange(len(weights))} | {f"a{j}": weights[:, j] for j in range(weights.shape[1])})
        return self.points_table(model, front, latent, rows, molecules="smiles", distinct=distinct)


def posterior_sd(module, x: np.ndarray, device, batch_size: int = 4096) -> float:
    """Median over rows and latent dimensions of the encoder's posterior sd sigma(x), x (n, p) in model space."""
    from archetool.models.base import map_rows

    module.eval()
    sigma = map_rows(lambda chunk: {"sigma": module.encode(chunk)["sigma"]}, x, device, batch_size).get("sigma")
    return round(float(np.median(sigma)), 6) if sigma is not None else float(module.prior_scale)


def check_weights(weights, k: int) -> np.ndarray:
    """``--weights`` as a point of the k-archetype simplex (k,): k numbers >= 0 that sum to 1 (within 1e-3)."""
    a = np.asarray([float(w) for w in weights], dtype=np.float64)
    if len(a) != k:
        raise ArchetoolError(f"--weights has {len(a)} values but the model has k={k} archetypes; give {k} weights that sum to 1")
    if not np.isfinite(a).all() or (a < 0).any():
        bad = next(w for w in a if not (np.isfinite(w) and w >= 0))
        raise ArchetoolError(f"--weights {bad:g}: weights must be >= 0 (a point of the simplex)")
    if abs(a.sum() - 1.0) > 1e-3:
        raise ArchetoolError(f"--weights sum to {a.sum():.4g}; they must sum to 1 (a point of the simplex)")
    return (a / a.sum()).astype(np.float32)


def sweep_k(options, ks: list[int], out_dir: Path, seeds: int = 3) -> pd.DataFrame:
    """Fit deepaa for each k with ``seeds`` seeds (options.seed, +1, ...; models in ``out_dir/k{k}`` for the
    first seed, ``out_dir/k{k}-s{seed}`` for the others).

    Writes k_sweep.csv -- one row per (k, seed) with its held-out errors, then one row per k with
    ``seed`` "mean" and one with "sd" (sample standard deviation over the seeds) -- and k_sweep.png (mean with
    +-1 sd error bars, each seed a dot), so seed noise is not read as an elbow. Returns the table.
    """
    from archetool.lock import directory_lock

    if any(k < 2 for k in ks):
        raise ArchetoolError(f"--k {','.join(map(str, ks))}: every k must be at least 2")
    if seeds < 1:
        raise ArchetoolError(f"--sweep-seeds {seeds}: needs at least 1 seed")
    with directory_lock(out_dir, "sweep"):  # each k's fit locks its own k<k> directory too
        if not options.overwrite and ((out_dir / "k_sweep.csv").exists() or any(out_dir.glob("k*/config.json"))):
            raise ArchetoolError(f"{out_dir}: already holds a k sweep; pass --overwrite to replace it, or give another --out")
        return _sweep_k(replace(options, overwrite=True), ks, out_dir, seeds)  # the sweep owns its k<k> directories


def _sweep_k(options, ks: list[int], out_dir: Path, seeds: int) -> pd.DataFrame:
    from archetool.analysis import plots
    from archetool.fitting import fit
    from archetool.io_tables import write_table

    records, tic, total = [], time.perf_counter(), len(ks) * seeds
    for k in ks:
        for s in range(seeds):
            seed = options.seed + s
            done, elapsed = len(records), time.perf_counter() - tic
            eta = f", about {elapsed / done * (total - done):.0f}s left" if done else ""
            log.info("sweep: fitting k=%d, seed %d (%d of %d; %.0fs so far%s)", k, seed, done + 1, total, elapsed, eta)
            out = out_dir / (f"k{k}" if s == 0 else f"k{k}-s{seed}")
            try:
                model = fit(replace(options, k=k, seed=seed, out=str(out), resume=False))
            except KeyboardInterrupt as err:
                err.resumable = False  # FitInterrupted: the sweep refits every k
                raise
            best = next((h for h in model.history if h["epoch"] == model.config["summary"]["best_epoch"]), model.history[-1])
            rec = {"k": k, "seed": seed, "val_recon_mse": best.get("val_recon_mse", np.nan), "val_loss": best.get("val_loss", np.nan)}
            if "val_side_mse" in best:
                rec["val_side_mse"] = best["val_side_mse"]
            rec.update({key: v for key, v in model.config["summary"].items() if key.startswith(("val_r2_", "val_rmse_"))})
            records.append(rec)
    per_seed = pd.DataFrame(records)
    table = pd.concat([per_seed.astype({"seed": object}), sweep_summary(per_seed)], ignore_index=True)
    write_table(table, out_dir / "k_sweep.csv")
    cols = [c for c in ("val_side_mse", "val_recon_mse") if c in per_seed.columns]
    plots.elbow_plot(per_seed, out_dir / "k_sweep.png", cols)
    return table


def sweep_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per k, a "mean" row and an "sd" row (sample sd; NaN with one seed) of every metric column."""
    metrics = [c for c in per_seed.columns if c not in ("k", "seed")]
    grouped = per_seed.groupby("k", sort=True)[metrics]
    mean, sd = grouped.mean().reset_index(), grouped.std(ddof=1).reset_index()
    mean.insert(1, "seed", "mean")
    sd.insert(1, "seed", "sd")
    return pd.concat([mean, sd]).sort_values("k", kind="stable").reset_index(drop=True)
