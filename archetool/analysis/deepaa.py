"""deepaa analyses: embedding columns, archetypes + exemplars + pictures, samples, interpolation, k sweep."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from archetool.analysis.base import ModelAnalysis, id_column, latent_matrix, line_between
from archetool.errors import ArchetoolError

log = logging.getLogger("archetool")


def archetype_names(k: int) -> list[str]:
    return [f"a{j}" for j in range(k)]


class DeepAAAnalysis(ModelAnalysis):
    code_kind = "an archetype (a0..)"

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

    def summary(self, model, data, val_index) -> dict:
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
    def write_archetypes(self, model, rows: pd.DataFrame, out_dir: Path, n_exemplars: int = 5) -> list[Path]:
        from archetool.analysis import plots
        from archetool.io_tables import write_table

        module, prep = model.module, model.prep
        k = module.n_archetypes
        names = archetype_names(k)
        Z = self.codes(model)
        table = self.points_table(model, pd.DataFrame({"archetype": names}), Z)
        written = [write_table(table, out_dir / "archetypes.csv")]

        weights = rows[names].to_numpy()
        latent = latent_matrix(rows, module.latent_dim)
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
                for side in prep.side_names:
                    if side in rows.columns:
                        rec[side] = rows[side].iloc[i]
                ex.append(rec)
        exemplars = pd.DataFrame(ex)
        written.append(write_table(exemplars, out_dir / "exemplars.csv"))

        colour_name = next((s for s in prep.side_names if s in rows.columns), None)
        categorical = False
        if colour_name is None and prep.label_column and prep.label_column in rows.columns:
            colour_name, categorical = prep.label_column, True
        if colour_name is None and prep.side_names:
            colour_name = f"pred_{prep.side_names[0]}"
        colour = rows[colour_name].to_numpy() if colour_name else None
        labels = [f"{n}" + (f"\n{colour_name}≈{table[f'pred_{prep.side_names[0]}'].iloc[j]:.3g}" if prep.side_names else "")
                  for j, n in enumerate(names)]
        written.append(plots.simplex_plot(weights, colour, colour_name, out_dir / "simplex.png", labels,
                                          f"deepaa: {len(rows)} samples in the {k}-archetype simplex", categorical))
        if "smiles" in exemplars.columns:
            per_row = n_exemplars
            legends = []
            for rec in ex:
                extra = f" {prep.side_names[0]}={rec[prep.side_names[0]]:.3g}" if prep.side_names and prep.side_names[0] in rec else ""
                legends.append(f"{rec['archetype']} #{rec['rank']} {rec['id']}{extra}")
            written.append(plots.molecule_grid(exemplars["smiles"].tolist(), legends, out_dir / "exemplars.png", per_row))
        return written

    # --- samples and interpolation --------------------------------------------------------------
    def sample(self, model, n: int, label: str | None, temperature: float, rows: pd.DataFrame | None) -> pd.DataFrame:
        if label is not None:
            raise ArchetoolError("--label applies to class-conditioned models (nvae, svqvae); deepaa samples from the Dirichlet prior")
        weights, latent = (v.cpu().numpy() for v in model.module.sample_latent(n, temperature))
        front = pd.DataFrame({"sample": np.arange(n)} | {f"a{j}": weights[:, j] for j in range(weights.shape[1])})
        return self.points_table(model, front, latent, rows, n_nearest=3)

    def interpolate(self, model, start: str, end: str, steps: int, rows: pd.DataFrame | None) -> pd.DataFrame:
        t, latent = line_between(self.endpoint(model, start, rows), self.endpoint(model, end, rows), steps)
        weights = self.weights_of(model, latent)
        front = pd.DataFrame({"step": np.arange(steps), "t": t} | {f"a{j}": weights[:, j] for j in range(weights.shape[1])})
        return self.points_table(model, front, latent, rows)

    def grid(self, model, steps: int, rows: pd.DataFrame | None) -> pd.DataFrame:
        """Decode every point of a barycentric grid over the simplex (weights in multiples of 1/steps)."""
        from archetool.models.simplex import barycentric_grid

        weights = barycentric_grid(model.module.n_archetypes, steps).numpy()
        latent = weights @ self.codes(model)
        front = pd.DataFrame({"point": np.arange(len(weights))} | {f"a{j}": weights[:, j] for j in range(weights.shape[1])})
        return self.points_table(model, front, latent, rows)


def sweep_k(options, ks: list[int], out_dir: Path) -> pd.DataFrame:
    """Fit deepaa for each k (models in ``out_dir/k{k}``); table of held-out errors and an elbow PNG."""
    from archetool.lock import directory_lock

    if any(k < 2 for k in ks):
        raise ArchetoolError(f"--ks {','.join(map(str, ks))}: every k must be at least 2")

    with directory_lock(out_dir, "sweep"):  # each k's fit locks its own k<k> directory too
        return _sweep_k(options, ks, out_dir)


def _sweep_k(options, ks: list[int], out_dir: Path) -> pd.DataFrame:
    from archetool.analysis import plots
    from archetool.fitting import fit
    from archetool.io_tables import write_table

    records = []
    for k in ks:
        log.info("sweep: fitting k=%d", k)
        try:
            model = fit(replace(options, k=k, out=str(out_dir / f"k{k}"), resume=False))
        except KeyboardInterrupt as err:
            err.resumable = False  # FitInterrupted: the sweep refits every k
            raise
        best = next((h for h in model.history if h["epoch"] == model.config["summary"]["best_epoch"]), model.history[-1])
        rec = {"k": k, "val_recon_mse": best.get("val_recon_mse", np.nan), "val_loss": best.get("val_loss", np.nan)}
        if "val_side_mse" in best:
            rec["val_side_mse"] = best["val_side_mse"]
        rec.update({key: v for key, v in model.config["summary"].items() if key.startswith(("val_r2_", "val_rmse_"))})
        records.append(rec)
    table = pd.DataFrame(records)
    write_table(table, out_dir / "k_sweep.csv")
    cols = [c for c in ("val_side_mse", "val_recon_mse") if c in table.columns]
    plots.elbow_plot(table, out_dir / "k_sweep.png", cols)
    return table
