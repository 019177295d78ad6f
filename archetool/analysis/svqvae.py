"""svqvae analyses: embedding columns, class codes + distances/correlations + heatmaps + exemplars,
class-conditioned samples and interpolation between classes (DESIGN §1.3, §5)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from archetool.analysis.base import exemplar_legends, ModelAnalysis, check_class_model_options, id_column, latent_matrix, line_between
from archetool.errors import ArchetoolError, preview
from archetool.models.svqvae import fit_temperature

log = logging.getLogger("archetool")

#: noise scale of ``sample`` when no embedded rows are available to measure the class spread
DEFAULT_SPREAD = 0.1


def code_correlations(codes: np.ndarray) -> np.ndarray:
    """Pearson correlation between the rows of a matrix (class codes across code dimensions, or
    prototypes across features): (K, D) -> (K, K).

    A code with no spread (constant over its dimensions) correlates 0 with the others and 1 with itself.
    """
    c = codes - codes.mean(1, keepdims=True)
    norm = np.linalg.norm(c, axis=1)
    safe = np.where(norm > 1e-12, norm, 1.0)
    corr = (c / safe[:, None]) @ (c / safe[:, None]).T
    corr[norm <= 1e-12, :] = 0.0
    corr[:, norm <= 1e-12] = 0.0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


def code_distances(codes: np.ndarray) -> np.ndarray:
    """Euclidean distances between class codes: (K, D) -> (K, K), zero diagonal."""
    diff = codes[:, None, :] - codes[None, :, :]
    dist = np.sqrt((diff.astype(np.float64) ** 2).sum(-1))
    np.fill_diagonal(dist, 0.0)
    return dist


def centroid_agreement(codes: np.ndarray, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Do the codes mean something? Spearman rho between the K(K-1)/2 pairwise distances of the class codes
    (K, D) and those of the class centroids of x (n, p) with labels (n,) in 0..K-1 (classes without rows are
    left out); returns (rho, the centroid distances (K, K))."""
    from scipy.stats import spearmanr

    k = codes.shape[0]
    present = np.bincount(labels, minlength=k) > 0
    centroids = np.stack([x[labels == c].mean(0) if present[c] else np.zeros(x.shape[1]) for c in range(k)])
    cent = code_distances(centroids)
    iu = np.triu_indices(int(present.sum()), 1)
    keep = np.flatnonzero(present)
    rho = spearmanr(code_distances(codes[keep])[iu], cent[np.ix_(keep, keep)][iu]).statistic
    return float(rho), cent


class SVQVAEAnalysis(ModelAnalysis):
    #: svqvae's own loss terms are per-feature means (~0.1-1): a lighter token term keeps them in charge of
    #: early stopping
    decoder_defaults = {"token_weight": 0.1}

    # --- fit --------------------------------------------------------------------------------------
    def check_options(self, options) -> None:
        from archetool.models.svqvae import SVQVAE

        check_class_model_options(options, "svqvae", SVQVAE, "learns one code per --label class")
        if options.latent_dim is not None and options.latent_dim < 1:
            raise ArchetoolError(f"--latent-dim {options.latent_dim}: the svqvae code size must be at least 1")
        try:  # check the values now, before the data are read (a tiny stand-in model)
            SVQVAE(2, 2, **{k: v for k, v in options.model_options.items() if k not in ("code_dim", "hidden")})
        except (TypeError, ValueError) as err:
            raise ArchetoolError(f"--model svqvae: {err}") from None

    def hparams(self, options, prep, data) -> dict:
        hp = dict(n_features=int(data.x.shape[1]), n_classes=len(prep.classes), likelihood=prep.likelihood)
        if options.latent_dim is not None:
            hp["code_dim"] = int(options.latent_dim)
        if options.hidden:
            hp["hidden"] = list(options.hidden)
        from archetool.models.svqvae import SVQVAE, auto_small_table

        # weight decay and early-stopping hold from the rows per class (both 0 unless the table has few rows per class)
        n_rows = len(data.label) if data.label is not None else len(data.x)
        hp.update(auto_small_table(n_rows, len(prep.classes)))
        hp.update({k: v for k, v in options.model_options.items() if v is not None or k not in ("weight_decay", "hold_fraction")})

        try:  # store the resolved values (code_dim, recon_weight), so a saved model never depends on defaults
            return SVQVAE(**hp).hparams()
        except (TypeError, ValueError) as err:
            raise ArchetoolError(f"--model svqvae: {err}") from None

    calibration = ("temperature",)

    def fit_summary(self, model, data) -> dict:
        return {"n_classes": len(model.prep.classes)}

    def held_out_summary(self, model, data, val_index) -> dict:
        """Nearest-code accuracy on the held-out validation rows only (never on training rows); sets the
        module's probability temperature from the validation rows (the training rows when there are none)."""
        out = {}
        if data.label is not None and len(data.label):
            rows = val_index if len(val_index) else np.arange(len(data.label))
            distances = torch.from_numpy(model.transform(data.x[rows])["distances"]).double()
            model.module.temperature = fit_temperature(distances ** 2, torch.from_numpy(data.label[rows]))
            out["temperature"] = model.module.temperature
        if data.label is None or len(val_index) == 0:
            log.warning("no validation rows were held out (--val-fraction 0 or too few rows): "
                        "no held-out accuracy is reported")
            return out
        pred = model.transform(data.x[val_index])["pred"]
        truth = data.label[val_index]
        hit = pred == truth
        out["val_accuracy"] = float(hit.mean())
        recalls = [hit[truth == c].mean() for c in np.unique(truth)]
        out["val_balanced_accuracy"] = float(np.mean(recalls))
        majority = np.bincount(data.label, minlength=len(model.prep.classes)).argmax()
        out["val_majority_baseline"] = float((truth == majority).mean())
        return out

    # --- embedding ----------------------------------------------------------------------------
    def embedding_columns(self, model, outputs) -> dict:
        classes = np.asarray(model.prep.classes, dtype=object)
        return {"pred_label": classes[np.asarray(outputs["pred"], dtype=np.int64)],
                "pred_distance": np.asarray(outputs["distance"], dtype=np.float32)}

    # --- helpers ------------------------------------------------------------------------------
    def codes(self, model) -> np.ndarray:
        """The class codes (K, D)."""
        return model.module.codes().cpu().numpy()

    def decode_table(self, model, latent: np.ndarray) -> pd.DataFrame:
        """Latent points (m, D) -> decoded features in original units under the input's feature names."""
        with torch.no_grad():
            t = torch.from_numpy(np.asarray(latent, np.float32)).to(model.device)
            x = model.module.decode(t).cpu().numpy()
        return model.decode_features(x)

    def _nearest_code(self, model, latent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class names (m,), Euclidean distances (m,)) of the nearest code to each latent point."""
        dist = code_distances_to(latent, self.codes(model))
        idx = dist.argmin(1)
        return np.asarray(model.prep.classes, dtype=object)[idx], dist[np.arange(len(idx)), idx]

    def class_spread(self, model, rows: pd.DataFrame | None) -> np.ndarray:
        """Per-class, per-dimension standard deviation of the embeddings around their class code: (K, D).

        Measured on ``rows`` whose label is known (classes with < 2 such rows get the pooled spread);
        ``DEFAULT_SPREAD`` everywhere when nothing can be measured.
        """
        codes = self.codes(model)
        K, D = codes.shape
        label = self.label_column(model)
        spread = np.full((K, D), np.nan)
        if rows is not None and label in rows.columns:
            z = latent_matrix(rows, D)
            idx = np.array([self.class_index(model, v) if pd.notna(v) else None for v in rows[label]], dtype=object)
            known = np.array([i is not None for i in idx])
            if known.any():
                cls = idx[known].astype(np.int64)
                resid = z[known] - codes[cls]
                pooled = np.sqrt((resid ** 2).mean(0))
                for k in range(K):
                    r = resid[cls == k]
                    spread[k] = np.sqrt((r ** 2).mean(0)) if len(r) >= 2 else pooled
        return np.where(np.isfinite(spread), spread, DEFAULT_SPREAD)

    # --- archetypes = class codes -------------------------------------------------------------
    def archetypes_table(self, model, rows: pd.DataFrame | None) -> pd.DataFrame:
        """archetypes.csv: one row per class: samples in ``rows`` and held-out accuracy, the code
        and the decoded prototype."""
        label = self.label_column(model)
        classes = self.classes(model)
        codes = self.codes(model)
        D = codes.shape[1]
        features = set(model.prep.feature_names)
        zcols = [f"z{j}" for j in range(D)]
        if features & set(zcols) or label in features:
            zcols = [f"code_z{j}" for j in range(D)]
        table = pd.DataFrame({label: classes})
        if rows is not None and label in rows.columns:
            counts = rows[label].astype(str).value_counts()
            table["n_samples"] = [int(counts.get(c, 0)) for c in classes]
            if "split" in rows.columns:
                val = rows[rows["split"] == "val"]
                hits = val["pred_label"].astype(str).to_numpy() == val[label].astype(str).to_numpy()
                truth = val[label].astype(str).to_numpy()
                table["val_accuracy"] = [float(hits[truth == c].mean()) if (truth == c).any() else np.nan for c in classes]
        return self.points_table(model, pd.concat([table, pd.DataFrame(codes, columns=zcols)], axis=1), codes,
                                 molecules="smiles", distinct=True)

    def write_archetypes(self, model, rows: pd.DataFrame, out_dir: Path, n_exemplars: int = 5) -> list[Path]:
        from archetool.analysis import plots
        from archetool.io_tables import write_table

        label = self.label_column(model)
        classes = self.classes(model)
        codes = self.codes(model)
        K = codes.shape[0]
        table = self.archetypes_table(model, rows)
        written = [write_table(table, out_dir / "archetypes.csv")]
        if "smiles" in table.columns:
            from archetool.analysis.generation import write_generated_picture

            written.append(write_generated_picture(model, self, classes, table["smiles"].tolist(), out_dir / "generated.png"))

        dist, corr = code_distances(codes), code_correlations(codes)
        dist_frame = pd.DataFrame(dist, columns=classes)
        dist_frame.insert(0, label, classes)
        corr_frame = pd.DataFrame(corr, columns=classes)
        corr_frame.insert(0, label, classes)
        written.append(write_table(dist_frame, out_dir / "code_distances.csv"))
        written.append(write_table(corr_frame, out_dir / "code_correlations.csv"))
        # the decoded prototypes' correlation over the (standardised) features: which classes' profiles
        # look alike, as the decoder learned them from the data
        with torch.no_grad():
            proto = model.module.decode(torch.from_numpy(codes).to(model.device)).cpu().numpy()
        proto_corr = code_correlations(proto)
        proto_frame = pd.DataFrame(proto_corr, columns=classes)
        proto_frame.insert(0, label, classes)
        written.append(write_table(proto_frame, out_dir / "prototype_correlations.csv"))

        ex = self.exemplars(model, rows, codes, n_exemplars)
        written.append(write_table(ex, out_dir / "exemplars.csv"))

        written.append(plots.heatmap(corr, classes, out_dir / "code_correlations.png",
                                     f"svqvae: correlation of the {K} class codes ({label}), clustered",
                                     cmap="RdBu_r", cluster=True, vmin=-1.0, vmax=1.0))
        written.append(plots.heatmap(proto_corr, classes, out_dir / "prototype_correlations.png",
                                     f"svqvae: correlation of the {K} decoded class prototypes ({label}), clustered",
                                     cmap="RdBu_r", cluster=True, vmin=-1.0, vmax=1.0))
        written.append(plots.heatmap(dist, classes, out_dir / "code_distances.png",
                                     f"svqvae: distance between the {K} class codes ({label}), clustered",
                                     cmap="viridis_r", cluster=True, vmin=0.0))
        smiles, legends = exemplar_legends(ex, label)
        if smiles:
            written.append(plots.molecule_grid(smiles, legends, out_dir / "exemplars.png", min(n_exemplars, len(rows))))
        return written

    def exemplar_molecules(self, model, rows: pd.DataFrame, n_exemplars: int) -> tuple[list[str], list[str]]:
        """SMILES and legends of the molecules nearest each class code (empty when the rows hold none)."""
        return exemplar_legends(self.exemplars(model, rows, self.codes(model), n_exemplars), self.label_column(model))

    def exemplars(self, model, rows: pd.DataFrame, codes: np.ndarray, n: int) -> pd.DataFrame:
        """The ``n`` real rows nearest each class code (any label), with their own label and prediction."""
        label = self.label_column(model)
        classes = self.classes(model)
        z = latent_matrix(rows, codes.shape[1])
        dist = code_distances_to(codes, z)  # (K, n_rows)
        m = min(n, z.shape[0])
        order = np.argsort(dist, axis=1, kind="stable")[:, :m]
        ids = rows[id_column(model)].astype(str).to_numpy()
        recs = []
        for k, cls in enumerate(classes):
            for rank, i in enumerate(order[k], start=1):
                rec = {label: cls, "rank": rank, "id": ids[i]}
                if "smiles" in rows.columns:
                    rec["smiles"] = rows["smiles"].iloc[i]
                rec["distance"] = float(dist[k, i])
                if label in rows.columns:
                    rec["sample_label"] = rows[label].iloc[i]
                if "pred_label" in rows.columns:
                    rec["pred_label"] = rows["pred_label"].iloc[i]
                recs.append(rec)
        cols = [label, "rank", "id"] + (["smiles"] if "smiles" in rows.columns else []) + ["distance"]
        cols += [c for c in ("sample_label", "pred_label") if recs and c in recs[0]]
        return pd.DataFrame(recs, columns=cols)

    # --- samples and interpolation --------------------------------------------------------------
    def sample(self, model, n: int, label: str | None = None, temperature: float = 1.0, rows: pd.DataFrame | None = None,
               molecules: str | None = "full") -> pd.DataFrame:
        """Decode class codes plus Gaussian noise: z = e_y + temperature * s_y * eps (s_y: the class's
        measured spread of embeddings around its code). Without --label, classes are drawn in
        proportion to their training frequency (uniformly when unknown)."""
        classes = self.classes(model)
        codes = self.codes(model)
        K, D = codes.shape
        col = self.label_column(model)
        if label is not None:
            k = self.class_index(model, label)
            if k is None:
                raise ArchetoolError(f"--label {label!r} is not a class of this model; classes are: {preview(classes, 10)}")
            cls = np.full(n, k, dtype=np.int64)
        else:
            weights = np.ones(K)
            if rows is not None and col in rows.columns:
                counts = rows[col].astype(str).value_counts()
                w = np.array([counts.get(c, 0) for c in classes], dtype=float)
                if w.sum() > 0:
                    weights = w
            cls = torch.multinomial(torch.as_tensor(weights / weights.sum()), n, replacement=True).numpy()
        spread = self.class_spread(model, rows)
        eps = torch.randn(n, D).numpy()
        latent = codes[cls] + float(temperature) * spread[cls] * eps
        front = pd.DataFrame({"sample": np.arange(n), col: np.asarray(classes, dtype=object)[cls]})
        nearest_cls, nearest_d = self._nearest_code(model, latent)
        front["nearest_code"] = nearest_cls
        front["code_distance"] = nearest_d
        return self.points_table(model, front, latent, rows, n_nearest=3, molecules=molecules, temperature=temperature)

    def interpolate(self, model, start: str, end: str, steps: int, rows: pd.DataFrame | None,
                    distinct: bool = True) -> pd.DataFrame:
        """Straight line in code space between two classes (or sample embeddings); each point's nearest
        class is written in the label column, then the decoded features."""
        t, latent = line_between(self.endpoint(model, start, rows), self.endpoint(model, end, rows), steps)
        nearest_cls, nearest_d = self._nearest_code(model, latent)
        front = pd.DataFrame({"step": np.arange(steps), "t": t, self.label_column(model): nearest_cls,
                              "code_distance": nearest_d})
        return self.points_table(model, front, latent, rows, molecules="smiles", distinct=distinct)


def code_distances_to(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a (m, D) and b (n, D): (m, n)."""
    return torch.cdist(torch.from_numpy(np.asarray(a, np.float32)), torch.from_numpy(np.asarray(b, np.float32))).numpy()
