"""nvae analyses: embedding columns, class codes + prototypes + exemplars, the per-dimension KL detector of
class-dependent factors, shared-factor traversals, ancestral samples and interpolation (DESIGN §1.2, §5).

Latent layout of every nvae table: ``z0 .. z{c-1}`` is the class latent z_c (c = class_dim), then
``z{c} .. z{c+s-1}`` the shared latent z_s (s = shared_dim).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from archetool.analysis.base import exemplar_legends, ModelAnalysis, check_class_model_options, id_column, latent_matrix, line_between
from archetool.errors import ArchetoolError, preview
from archetool.models.nvae import fit_head_mix

log = logging.getLogger("archetool")

#: a latent dimension is "active" in a class when its mean KL there is at least this many nats ...
ACTIVE_KL = 0.1
#: ... and at least this fraction of the dimension's largest per-class KL
ACTIVE_FRACTION = 0.25
#: values of a shared dimension in a traversal (in prior standard deviations)
TRAVERSAL_VALUES = np.linspace(-2.5, 2.5, 7)
#: decoded samples per class in prototypes.png
PICTURE_SAMPLES = 6
#: the convex linear read-out's penalty is cross-validated below this many training rows, else chosen on the
#: validation rows (one fit per penalty instead of five)
CONVEX_HEAD_CV_BELOW = 2000
#: ... and fitted on at most this many training rows (a seeded random subset; float64 copy of the inputs)
CONVEX_HEAD_MAX_ROWS = 20000


def image_side(model) -> int | None:
    """Side length when the features form a square grey-scale image (a table of s*s >= 16 numeric
    features, e.g. the 8x8 digits), else None."""
    p = len(model.prep.feature_names)
    side = math.isqrt(p)
    if model.prep.source_kind != "table" or model.prep.featurizer.get("name") == "morgan":
        return None
    return side if side * side == p and side >= 4 else None


def detector_table(sums: np.ndarray, counts: np.ndarray, classes: list[str], class_dim: int) -> pd.DataFrame:
    """The per-dimension KL table from per-class KL sums (K, d) and row counts (K,).

    One row per latent dimension: ``latent`` (class | shared), ``dim`` (index within that latent),
    ``column`` (z-column of the embedding), ``kl`` (mean over all rows), ``kl_max`` (largest per-class
    mean), ``n_classes_active`` and ``active_in`` (classes whose mean KL is >= ACTIVE_KL nats and >=
    ACTIVE_FRACTION of ``kl_max``), ``role`` (inactive: active in no class; shared: active in every class
    that has rows; class-dependent: active in some classes only), then ``kl_<class>`` per class.
    """
    sums = np.asarray(sums, np.float64)
    counts = np.asarray(counts, np.float64)
    d = sums.shape[1]
    present = counts > 0
    per_class = np.where(present[:, None], sums / np.maximum(counts, 1)[:, None], np.nan)
    overall = sums.sum(0) / max(counts.sum(), 1.0)
    kl_max = np.nanmax(per_class[present], axis=0) if present.any() else np.zeros(d)
    recs = []
    for j in range(d):
        col = per_class[:, j]
        active = present & (col >= ACTIVE_KL) & (col >= ACTIVE_FRACTION * kl_max[j])
        n_active = int(active.sum())
        if n_active == 0:
            role = "inactive"
        elif n_active == int(present.sum()):
            role = "shared"
        else:
            role = "class-dependent"
        names = [c for c, a in zip(classes, active) if a]
        recs.append({
            "latent": "class" if j < class_dim else "shared",
            "dim": j if j < class_dim else j - class_dim,
            "column": f"z{j}",
            "kl": float(overall[j]),
            "kl_max": float(kl_max[j]),
            "n_classes_active": n_active,
            "active_in": "all" if role == "shared" else ";".join(names),
            "role": role,
        })
    table = pd.DataFrame(recs)
    per = pd.DataFrame(per_class.T, columns=[f"kl_{c}" for c in classes])
    return pd.concat([table, per], axis=1)


def collapse_warning(n_active: int, module) -> str | None:
    """The warning ``fit`` logs when fewer than a quarter of nvae's latent dimensions are active (any role
    but "inactive" in :func:`detector_table`), naming what to change; None otherwise."""
    d = module.latent_dim
    if 4 * n_active >= d:
        return None
    shared = module.shared_dim
    return (f"nvae: only {n_active} of {d} latent dimensions are active (mean KL >= {ACTIVE_KL} nats in some class); "
            f"the others carry nothing beyond the label. Use a smaller latent (--latent-dim, now {module.class_dim}; "
            f"--shared-dim, now {shared}), more --epochs or a longer --patience (early stopping may end the fit before "
            f"the shared dimensions open), or keep them open with "
            f"--set free_bits=0.5 (now {module.free_bits:g}) and --set kl_warmup=20 (now {module.kl_warmup})")


def _choose_read_out(module, val, weight: torch.Tensor, bias: torch.Tensor) -> tuple[str, float, dict]:
    """("joint" or "convex", its head_mix, {read-out: q(y|x)'s mean log loss}) on the validation rows val = (x (n, p)
    float64, labels (n,)): the trained linear read-out against the convex one (weight (K, p), bias (K,)), each mixed
    with the trunk at its own head_mix (:func:`fit_head_mix`; a head_mix set by the user is kept). Ties keep the trained one."""
    import torch.nn.functional as F

    x, labels = val
    was_training = module.training
    module.eval()
    with torch.no_grad():
        _, _, trunk, trained = module._encode_heads(x.to(module.linear_classifier.weight.dtype))
    module.train(was_training)
    trunk, losses, mixes = trunk.double(), {}, {}
    for name, linear in (("joint", trained.double()), ("convex", x @ weight.T + bias)):
        mixes[name] = fit_head_mix(trunk, linear, labels) if module.head_mix is None else module.head_mix
        losses[name] = float(F.cross_entropy((1 - mixes[name]) * trunk + mixes[name] * linear, labels))
    choice = "convex" if losses["convex"] < losses["joint"] else "joint"
    return choice, mixes[choice], losses


class NVAEAnalysis(ModelAnalysis):
    # --- fit --------------------------------------------------------------------------------------
    def check_options(self, options) -> None:
        from archetool.models.nvae import NVAE

        check_class_model_options(options, "nvae", NVAE, "is conditioned on the --label classes")
        if options.latent_dim is not None and options.latent_dim < 1:
            raise ArchetoolError(f"--latent-dim {options.latent_dim}: the nvae class latent needs at least 1 dimension")
        if options.shared_dim is not None and options.shared_dim < 0:
            raise ArchetoolError(f"--shared-dim {options.shared_dim}: the nvae shared latent size must be 0 or more")
        for key in ("beta_c", "class_separation"):
            value = options.model_options.get(key)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
                raise ArchetoolError(f"--set {key}={value}: must be a positive number")

    def hparams(self, options, prep, data) -> dict:
        counts = np.bincount(data.label, minlength=len(prep.classes)) if data.label is not None else None
        hp = dict(n_features=int(data.x.shape[1]), n_classes=len(prep.classes), likelihood=prep.likelihood)
        if options.latent_dim is not None:
            hp["class_dim"] = int(options.latent_dim)
        if options.shared_dim is not None:
            hp["shared_dim"] = int(options.shared_dim)
        if options.hidden:
            hp["hidden"] = list(options.hidden)
        if counts is not None:  # p(y): the training frequencies of the classes
            hp["class_prior"] = [float(c) / float(counts.sum()) for c in counts]
        hp.update(options.model_options)
        return hp

    calibration = ("head_mix", "linear_head_fit")

    def fit_summary(self, model, data) -> dict:
        """Active latent dimensions (warns when few are); records the per-class KL of every latent dimension on
        all rows in the module (``kl_record``) so ``archetypes`` can report the detector without the data."""
        module = model.module
        sums, counts = self._kl_sums_arrays(model, data.x, data.label)
        module.kl_record.copy_(torch.from_numpy(sums / np.maximum(counts, 1)[:, None]).to(module.kl_record))
        module.kl_record_counts.copy_(torch.from_numpy(counts).to(module.kl_record_counts))
        table = detector_table(sums, counts, [str(c) for c in model.prep.classes], module.class_dim)
        out = {"n_classes": len(model.prep.classes),
               "active_class_dims": int(((table["latent"] == "class") & (table["role"] != "inactive")).sum()),
               "active_shared_dims": int(((table["latent"] == "shared") & (table["role"] != "inactive")).sum())}
        warning = collapse_warning(out["active_class_dims"] + out["active_shared_dims"], module)
        if warning:
            log.warning("%s", warning)
        return out

    def after_training(self, module, data, train_index, val_index, chosen: dict | None = None) -> dict:
        """The linear read-out's weights (``linear_head_fit``, NVAE docstring). "convex" replaces the trained ones
        with an L2-penalised logistic regression on the training rows, fitted to convergence, its penalty
        cross-validated on those rows (chosen on the validation rows from CONVEX_HEAD_CV_BELOW training rows up; at
        most CONVEX_HEAD_MAX_ROWS rows, a seeded random subset). "auto" fits it too, then keeps whichever read-out,
        the convex or the trained one, gives q(y|x) the lower log loss on the validation rows, each at its own
        ``head_mix`` (:func:`fit_head_mix`), and records the choice; without validation rows it keeps the trained one.
        A refit (``chosen``: the first model's figures) reuses the first model's penalty."""
        from archetool.training.logistic import choose_l2, fit_logistic

        head = module.linear_classifier
        if head is None or module.linear_head_fit == "joint":
            return {}
        if module.linear_head_fit == "auto" and not len(val_index):
            module.linear_head_fit = "joint"
            return {"linear_head_fit": "joint"}
        tic = time.perf_counter()
        rows = np.asarray(train_index)
        if len(rows) > CONVEX_HEAD_MAX_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(rows, CONVEX_HEAD_MAX_ROWS, replace=False))
        device = head.weight.device

        def tensors(index):
            return (torch.from_numpy(np.ascontiguousarray(data.x[index], dtype=np.float64)).to(device),
                    torch.from_numpy(np.asarray(data.label[index], dtype=np.int64)).to(device))

        x, y = tensors(rows)
        val = tensors(np.asarray(val_index)) if len(val_index) else None
        by_val = len(rows) >= CONVEX_HEAD_CV_BELOW and val is not None
        if chosen and chosen.get("linear_head_l2") is not None:
            l2, how = float(chosen["linear_head_l2"]), "the model before the refit"
        else:
            l2, _ = choose_l2(x, y, module.n_classes, held_out=val if by_val else None)
            how = "the validation rows" if by_val else "cross-validation"
        weight, bias = fit_logistic(x, y, module.n_classes, l2)
        out = {"linear_head_l2": l2}
        if module.linear_head_fit == "auto":
            choice, mix, losses = _choose_read_out(module, val, weight, bias)
            module.linear_head_fit, module.head_mix = choice, mix
            out.update({"linear_head_fit": choice, "head_mix": mix})
            log.info("linear read-out: q(y|x)'s validation log loss %.4g with the trained one, %.4g with a convex one "
                     "(L2 %g per row, by %s; %.1fs): keeping the %s one (head_mix %g)", losses["joint"], losses["convex"], l2,
                     how, time.perf_counter() - tic, "trained" if choice == "joint" else "convex", mix)
            if choice == "joint":
                return out
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        if "linear_head_fit" not in out:  # ("auto" said it above)
            log.info("linear read-out: logistic regression with L2 penalty %g per row (by %s) fitted on %d rows (%.1fs)", l2,
                     how, len(rows), time.perf_counter() - tic)
        return out

    def held_out_summary(self, model, data, val_index) -> dict:
        """Held-out q(y|x) accuracy; picks ``head_mix`` (the read-outs' weights) on the validation rows."""
        module, out = model.module, {}
        if len(val_index) == 0:
            log.warning("no validation rows were held out (--val-fraction 0 or too few rows): no held-out accuracy is reported")
            return out
        if module.linear_classifier is not None and module.head_mix is None:
            with torch.no_grad():
                xv = torch.from_numpy(np.ascontiguousarray(data.x[val_index], dtype=np.float32)).to(model.device)
                _, _, trunk, linear = module._encode_heads(xv)
            module.head_mix = fit_head_mix(trunk, linear, torch.from_numpy(np.asarray(data.label[val_index])).to(trunk.device))
            out["head_mix"] = module.head_mix
        pred = model.transform(data.x[val_index])["pred"]
        truth = data.label[val_index]
        hit = pred == truth
        out["val_accuracy"] = float(hit.mean())
        out["val_balanced_accuracy"] = float(np.mean([hit[truth == c].mean() for c in np.unique(truth)]))
        return out

    def _kl_sums_arrays(self, model, x: np.ndarray, labels: np.ndarray, batch: int = 4096):
        module = model.module
        d = module.latent_dim
        sums, counts = np.zeros((module.n_classes, d)), np.zeros(module.n_classes)
        with torch.no_grad():
            for start in range(0, len(x), batch):
                xb = torch.from_numpy(np.ascontiguousarray(x[start:start + batch], dtype=np.float32)).to(model.device)
                yb = torch.from_numpy(np.asarray(labels[start:start + batch], dtype=np.int64)).to(model.device)
                s, c = module.kl_per_class(xb, yb)
                sums += s.double().cpu().numpy()
                counts += c.double().cpu().numpy()
        return sums, counts

    # --- embedding ----------------------------------------------------------------------------
    def embedding_columns(self, model, outputs) -> dict:
        classes = np.asarray(model.prep.classes, dtype=object)
        return {"pred_label": classes[np.asarray(outputs["pred"], dtype=np.int64)],
                "pred_prob": np.asarray(outputs["prob"], dtype=np.float32)}

    # --- helpers ------------------------------------------------------------------------------
    def codes(self, model) -> np.ndarray:
        """Global class codes (K, d): z_c = the class mean m_y, z_s = 0."""
        module = model.module
        means = module.class_means().cpu().numpy()
        return np.concatenate([means, np.zeros((len(means), module.shared_dim), np.float32)], axis=1)

    def decode_latent(self, model, latent: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Latent points (m, d) [+ class ids (m,)] -> decoded features (m, p) in model space."""
        module = model.module
        with torch.no_grad():
            t = torch.from_numpy(np.asarray(latent, np.float32)).to(model.device)
            lab = None if labels is None else torch.from_numpy(np.asarray(labels, np.int64)).to(model.device)
            x = module.decode(t[:, :module.class_dim], t[:, module.class_dim:], lab)
        return x.cpu().numpy()

    def decode_table(self, model, latent: np.ndarray, labels: np.ndarray | None = None) -> pd.DataFrame:
        """Latent points (m, d) [+ class ids (m,)] -> decoded features in original units under the input's names."""
        return model.decode_features(self.decode_latent(model, latent, labels))

    def nearest_class(self, model, latent: np.ndarray) -> np.ndarray:
        """Class id whose mean is nearest to each point's class latent (the decoder's choice)."""
        means = model.module.class_means().cpu().numpy()
        zc = np.asarray(latent, np.float32)[:, :means.shape[1]]
        return ((zc[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)

    def row_classes(self, model, rows: pd.DataFrame) -> tuple[np.ndarray, str]:
        """Class id per row (-1: unknown) from the rows' label column, else from pred_label; and the source.

        Warns once about unknown classes or a missing label column (the per-class results, exemplars and
        kl_per_dim.csv, then leave those rows out or use the predicted classes)."""
        label = self.label_column(model)
        lookup = {c: i for i, c in enumerate(self.classes(model))}
        if label in rows.columns:
            values = rows[label]
            ids = np.array([lookup.get(str(v), -1) if pd.notna(v) else -1 for v in values], dtype=np.int64)
            if (ids >= 0).any():
                if (ids < 0).any():
                    unknown = sorted({str(v) for v, i in zip(values, ids) if i < 0})
                    log.warning("%d rows have a %r class the model does not know (%s); exemplars and kl_per_dim.csv "
                                "leave them out", int((ids < 0).sum()), label, preview(unknown, 5))
                return ids, label
            log.warning("no row has a %r class the model knows; exemplars and kl_per_dim.csv use the predicted "
                        "classes (pred_label)", label)
        else:
            log.warning("the rows have no %r column; exemplars and kl_per_dim.csv use the predicted classes (pred_label)", label)
        return np.array([lookup.get(str(v), -1) for v in rows["pred_label"]], dtype=np.int64), "pred_label"

    # --- the detector -------------------------------------------------------------------------
    def kl_detector(self, model, rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        """Per-dimension KL table (see :func:`detector_table`) and a note on where the labels came from.

        With ``--data`` (``rows.attrs["data"]``) the data are streamed through the encoder and the KL is
        measured against the rows' own labels (the predicted class where the label column is absent);
        otherwise the record made on the training rows at the end of ``fit`` is used.
        """
        module = model.module
        classes = self.classes(model)
        source = rows.attrs.get("data")
        if source is None:
            counts = module.kl_record_counts.cpu().numpy().astype(np.float64)
            if counts.sum() == 0:
                raise ArchetoolError(f"{model.directory}: the model holds no KL record of its training rows; pass --data DATA")
            sums = module.kl_record.cpu().numpy().astype(np.float64) * counts[:, None]
            return detector_table(sums, counts, classes, module.class_dim), "training rows, their labels"
        from archetool.data.prepare import iter_inference_chunks

        label = self.label_column(model)
        lookup = {c: i for i, c in enumerate(classes)}
        d = module.latent_dim
        true_sums, true_counts = np.zeros((len(classes), d)), np.zeros(len(classes))
        pred_sums, pred_counts = np.zeros((len(classes), d)), np.zeros(len(classes))
        for chunk in iter_inference_chunks(source, model.prep):
            pred = model.transform(chunk.x)["pred"].astype(np.int64)
            s, c = self._kl_sums_arrays(model, chunk.x, pred)
            pred_sums += s
            pred_counts += c
            if label in chunk.obs.columns:
                y = np.array([lookup.get(str(v), -1) if pd.notna(v) else -1 for v in chunk.obs[label]], dtype=np.int64)
                keep = y >= 0
                if keep.any():
                    s, c = self._kl_sums_arrays(model, chunk.x[keep], y[keep])
                    true_sums += s
                    true_counts += c
        used_pred = true_counts.sum() == 0
        sums, counts = (pred_sums, pred_counts) if used_pred else (true_sums, true_counts)
        from archetool.data.readers.memory import describe

        name = source if isinstance(source, str) else describe(source)
        note = f"{name}, " + ("predicted classes" if used_pred else f"labels from {label!r}")
        return detector_table(sums, counts, classes, module.class_dim), note

    @staticmethod
    def kl_bar_values(kl: pd.DataFrame) -> tuple[dict, dict]:
        """The detector table as bar groups (class latent, shared latent): (KL values, z-column names)."""
        bars, ticks = {}, {}
        for part, name in (("class", "class latent z_c"), ("shared", "shared latent z_s")):
            sel = kl["latent"] == part
            if sel.any():
                bars[name], ticks[name] = kl.loc[sel, "kl"].to_numpy(), kl.loc[sel, "column"].tolist()
        return bars, ticks

    def exemplar_molecules(self, model, rows: pd.DataFrame, n_exemplars: int) -> tuple[list[str], list[str]]:
        """SMILES and legends of each class's exemplars (empty when the rows hold no molecules)."""
        row_cls, source = self.row_classes(model, rows)
        ex = self.exemplars(model, rows, self.codes(model), row_cls, source, n_exemplars)
        return exemplar_legends(ex, self.label_column(model))

    # --- archetypes = class codes -------------------------------------------------------------
    def archetypes_table(self, model, rows: pd.DataFrame | None, row_cls: np.ndarray | None = None) -> pd.DataFrame:
        """archetypes.csv: one row per class: samples in ``rows`` and held-out accuracy, the code (m_y, 0)
        and the decoded prototype. ``row_cls``: the rows' classes if already known (:meth:`row_classes`)."""
        module, prep = model.module, model.prep
        label = self.label_column(model)
        classes = self.classes(model)
        K, d = len(classes), module.latent_dim
        codes = self.codes(model)
        features = set(prep.feature_names)

        # class codes and decoded prototypes
        zcols = [f"z{j}" for j in range(d)]
        if features & set(zcols) or label in features:
            zcols = [f"code_z{j}" for j in range(d)]
        table = pd.DataFrame({label: classes})
        if rows is not None:
            if row_cls is None:
                row_cls, _ = self.row_classes(model, rows)
            table["n_samples"] = np.bincount(row_cls[row_cls >= 0], minlength=K)
            if label in rows.columns and "split" in rows.columns:
                val = (rows["split"] == "val").to_numpy() & (row_cls >= 0)
                hits = rows["pred_label"].astype(str).to_numpy() == rows[label].astype(str).to_numpy()
                table["val_accuracy"] = [float(hits[val & (row_cls == k)].mean()) if (val & (row_cls == k)).any()
                                         else np.nan for k in range(K)]
        return self.points_table(model, pd.concat([table, pd.DataFrame(codes, columns=zcols)], axis=1), codes,
                                 labels=np.arange(K), molecules="smiles", distinct=True)

    def write_archetypes(self, model, rows: pd.DataFrame, out_dir: Path, n_exemplars: int = 5) -> list[Path]:
        from archetool.analysis import plots
        from archetool.io_tables import write_table

        module, prep = model.module, model.prep
        label = self.label_column(model)
        classes = self.classes(model)
        K = len(classes)
        codes = self.codes(model)
        class_ids = np.arange(K)
        row_cls, source = self.row_classes(model, rows)
        table = self.archetypes_table(model, rows, row_cls)
        written = [write_table(table, out_dir / "archetypes.csv")]
        if "smiles" in table.columns:
            from archetool.analysis.generation import write_generated_picture

            written.append(write_generated_picture(model, self, classes, table["smiles"].tolist(), out_dir / "generated.png"))

        # exemplars: rows of each class nearest its code (m_y, 0)
        ex = self.exemplars(model, rows, codes, row_cls, source, n_exemplars)
        written.append(write_table(ex, out_dir / "exemplars.csv"))
        smiles, legends = exemplar_legends(ex, label)
        if smiles:
            written.append(plots.molecule_grid(smiles, legends, out_dir / "exemplars.png", max(1, min(n_exemplars, len(ex)))))

        # the detector of class-dependent factors
        kl, note = self.kl_detector(model, rows)
        written.append(write_table(kl, out_dir / "kl_per_dim.csv"))
        bars, ticks = self.kl_bar_values(kl)
        written.append(plots.bar_chart(bars, out_dir / "kl_per_dim.png",
                                       f"nvae: mean KL per latent dimension ({note})", "KL (nats)", tick_labels=ticks))
        log.info("kl_per_dim: %s", ", ".join(f"{r.column}({r.latent})={r.kl:.2f} {r.role}" for r in kl.itertuples()))

        # shared-factor traversals for every class, and pictures when the features form an image
        side = image_side(model)
        if module.shared_dim:
            trav = self.traversals(model, TRAVERSAL_VALUES)
            if side is None:
                written.append(write_table(trav, out_dir / "traversals.csv"))
            else:
                feats = trav[prep.feature_names].to_numpy(np.float32)
                n_val = len(TRAVERSAL_VALUES)
                for j in range(module.shared_dim):
                    col = f"z{module.class_dim + j}"
                    block = feats[(trav["dimension"] == col).to_numpy()].reshape(K, n_val, side, side)
                    written.append(plots.image_grid(
                        block, out_dir / f"traversal_{col}.png", classes, [f"{v:+.1f}" for v in TRAVERSAL_VALUES],
                        f"nvae: shared dimension {col} (z_s{j}, KL {kl['kl'].iloc[module.class_dim + j]:.2f}) for every class"))
        if side is not None:
            prototypes = self.decode_latent(model, codes, class_ids)
            gen = torch.Generator().manual_seed(0)
            with torch.no_grad():
                lab = torch.arange(K).repeat_interleave(PICTURE_SAMPLES).to(model.device)
                xs, _ = module.sample(len(lab), labels=lab, generator=gen)
            feats = np.concatenate([prototypes[:, None, :], xs.cpu().numpy().reshape(K, PICTURE_SAMPLES, -1)], axis=1)
            images = prep.unscale_x(feats.reshape(-1, feats.shape[-1])).reshape(K, PICTURE_SAMPLES + 1, side, side)
            written.append(plots.image_grid(images, out_dir / "prototypes.png", classes,
                                            ["prototype"] + [f"sample {i + 1}" for i in range(PICTURE_SAMPLES)],
                                            "nvae: class prototypes (z_c = m_y, z_s = 0) and samples (temperature 1)"))
        return written

    def exemplars(self, model, rows, codes, row_cls, source: str, n: int) -> pd.DataFrame:
        """The ``n`` rows of each class (by ``source``: the label column, else pred_label) nearest its code."""
        label = self.label_column(model)
        z = latent_matrix(rows, codes.shape[1])
        ids = rows[id_column(model)].astype(str).to_numpy()
        recs = []
        for k, cls in enumerate(self.classes(model)):
            members = np.flatnonzero(row_cls == k)
            if len(members) == 0:
                continue
            dist = np.linalg.norm(z[members] - codes[k], axis=1)
            order = members[np.argsort(dist, kind="stable")[:n]]
            for rank, i in enumerate(order, start=1):
                rec = {label: cls, "rank": rank, "id": ids[i]}
                if "smiles" in rows.columns:
                    rec["smiles"] = rows["smiles"].iloc[i]
                rec["distance"] = float(np.linalg.norm(z[i] - codes[k]))
                rec["pred_label"] = rows["pred_label"].iloc[i]
                rec["pred_prob"] = float(rows["pred_prob"].iloc[i])
                rec["class_from"] = source
                recs.append(rec)
        cols = [label, "rank", "id"] + (["smiles"] if "smiles" in rows.columns else []) + ["distance", "pred_label", "pred_prob", "class_from"]
        return pd.DataFrame(recs, columns=cols)

    def traversals(self, model, values: np.ndarray) -> pd.DataFrame:
        """Each shared dimension moved over ``values`` with z_c = m_y for every class (the rest of z_s at 0):
        columns dimension (z-column), label column, step, value, then the decoded features."""
        module = model.module
        classes = self.classes(model)
        label = self.label_column(model)
        parts = []
        for j in range(module.shared_dim):
            with torch.no_grad():
                x = module.traverse_shared(j, torch.as_tensor(values, dtype=torch.float32)).cpu().numpy()  # (K, m, p)
            K, m, p = x.shape
            front = pd.DataFrame({"dimension": f"z{module.class_dim + j}", label: np.repeat(classes, m),
                                  "step": np.tile(np.arange(m), K), "value": np.tile(values, K)})
            parts.append(pd.concat([front, model.decode_features(x.reshape(K * m, p))], axis=1))
        return pd.concat(parts, ignore_index=True)

    # --- samples and interpolation --------------------------------------------------------------
    def sample(self, model, n: int, label: str | None = None, temperature: float = 1.0, rows: pd.DataFrame | None = None,
               molecules: str | None = "full") -> pd.DataFrame:
        """Ancestral samples: y ~ p(y) (the training class frequencies) or the --label class,
        z_c ~ N(m_y, T^2 I), z_s ~ N(0, T^2 I), decoded. Molecules get their 3 nearest real molecules
        (latent distance to the rows' embeddings)."""
        module = model.module
        classes = self.classes(model)
        labels = None
        if label is not None:
            k = self.class_index(model, label)
            if k is None:
                raise ArchetoolError(f"--label {label!r} is not a class of this model; classes are: {preview(classes, 10)}")
            labels = torch.full((n,), k, dtype=torch.long)
        if not math.isfinite(temperature) or temperature < 0:
            raise ArchetoolError(f"--temperature {temperature}: must be a finite number >= 0")
        with torch.no_grad():
            z, lab = module.sample_latent(n, labels, float(temperature))
        latent, cls = z.cpu().numpy(), lab.cpu().numpy()
        front = pd.DataFrame({"sample": np.arange(n), self.label_column(model): np.asarray(classes, dtype=object)[cls]})
        return self.points_table(model, front, latent, rows, n_nearest=3, labels=cls, molecules=molecules,
                                 temperature=temperature)

    def interpolate(self, model, start: str, end: str, steps: int, rows: pd.DataFrame | None,
                    distinct: bool = True) -> pd.DataFrame:
        """Straight line in latent space between two classes (their codes) or sample embeddings; each point's
        class (the nearest class mean in z_c, which the decoder uses) goes in the label column."""
        t, latent = line_between(self.endpoint(model, start, rows), self.endpoint(model, end, rows), steps)
        cls = self.nearest_class(model, latent)
        front = pd.DataFrame({"step": np.arange(steps), "t": t,
                              self.label_column(model): np.asarray(self.classes(model), dtype=object)[cls]})
        return self.points_table(model, front, latent, rows, labels=cls, molecules="smiles", distinct=distinct)
