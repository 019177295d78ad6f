"""End-to-end CLI runs of svqvae (tables, .smi, .h5ad, .gctx, --labels side tables, the real LINCS plate),
the written files' contents, and every bad-input path of the svqvae issue."""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pandas as pd
import pytest

from conftest import FAST_FIT, SHARED_DATA, run_cli
from test_bad_input import assert_clean_error

REAL_GCTX = SHARED_DATA / "lincs_l1000_a375_plate.gctx"
FEATURES = [f"f{i}" for i in range(8)]


def class_table(n_per=40, p=8, seed=0) -> pd.DataFrame:
    """3 well-separated classes A, B, C in p dims (+ an id column)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(3, p)) * 3
    y = np.repeat(np.arange(3), n_per)
    frame = pd.DataFrame(means[y] + rng.normal(size=(len(y), p)), columns=[f"f{i}" for i in range(p)])
    frame.insert(0, "id", [f"s{i:03d}" for i in range(len(y))])
    frame["cls"] = np.array(["A", "B", "C"])[y]
    return frame


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svq")
    data = tmp / "table.csv"
    class_table().to_csv(data, index=False)
    out = tmp / "model"
    result = run_cli("fit", data, "--model", "svqvae", "--label", "cls", "--latent-dim", "4", "--out", out,
                     "--seed", "1", "--epochs", "30", "--batch-size", "32", "--hidden", "32,16", "--no-progress")
    assert result.exit_code == 0, result.output
    return data, out


def codes_of(out) -> np.ndarray:
    import torch

    return torch.load(out / "weights.pt", weights_only=True)["codebook.weight"].numpy()


def test_fit_config_and_honest_held_out_accuracy(table_model):
    data, out = table_model
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "svqvae" and config["hparams"]["n_classes"] == 3 and config["hparams"]["code_dim"] == 4
    assert config["hparams"]["recon_weight"] == pytest.approx(1 / 8) and config["hparams"]["repulsion"] == "hinge"
    json.dumps(config["hparams"])  # JSON-able, stored resolved
    summary = config["summary"]
    rows = pd.read_parquet(out / "training_rows.parquet")
    val = rows[rows["split"] == "val"]
    # the reported accuracy is measured on the held-out rows only, and matches them exactly
    assert summary["val_rows"] == len(val) == 12 and summary["train_rows"] == 108
    assert summary["val_accuracy"] == pytest.approx((val["pred_label"] == val["cls"]).mean())
    assert summary["val_accuracy"] >= 0.9 and 0 < summary["val_majority_baseline"] < 0.5
    assert list(rows.columns[:3]) == ["id", "split", "z0"] and {"pred_label", "pred_distance", "cls"} <= set(rows.columns)
    history = pd.read_csv(out / "history.csv")
    assert {"train_recon", "train_repulsion", "val_accuracy"} <= set(history.columns)


def test_embed_columns_prediction_and_distance(table_model, tmp_path):
    data, out = table_model
    result = run_cli("embed", out, data)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(StringIO(result.stdout))
    assert list(table.columns) == ["id", "z0", "z1", "z2", "z3", "pred_label", "pred_distance"]
    assert len(table) == 120 and set(table["pred_label"]) <= {"A", "B", "C"}
    z = table[["z0", "z1", "z2", "z3"]].to_numpy()
    assert np.abs(z).max() <= 1.0  # z_e = tanh(...)
    dist = np.linalg.norm(z[:, None, :] - codes_of(out)[None], axis=2)
    np.testing.assert_allclose(table["pred_distance"], dist.min(1), rtol=1e-4, atol=1e-5)
    assert (np.array(["A", "B", "C"])[dist.argmin(1)] == table["pred_label"]).all()
    truth = class_table()["cls"]
    assert (table["pred_label"] == truth).mean() > 0.9
    target = tmp_path / "e.parquet"
    assert run_cli("embed", out, data, "--out", target, "--chunk-rows", "50").exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(target).drop(columns="pred_distance"), table.drop(columns="pred_distance"),
                                  check_dtype=False, atol=1e-5)


def test_archetypes_codes_matrices_heatmaps_exemplars(table_model, tmp_path):
    data, out = table_model
    result = run_cli("archetypes", out, "--out", tmp_path / "a", "--n-exemplars", "4")
    assert result.exit_code == 0, result.output
    codes = codes_of(out)
    arch = pd.read_csv(tmp_path / "a" / "archetypes.csv")
    assert list(arch.columns) == ["cls", "n_samples", "val_accuracy", "z0", "z1", "z2", "z3"] + FEATURES
    assert list(arch["cls"]) == ["A", "B", "C"] and list(arch["n_samples"]) == [40, 40, 40]
    np.testing.assert_allclose(arch[["z0", "z1", "z2", "z3"]].to_numpy(), codes, rtol=1e-5, atol=1e-6)
    # decoded prototypes are in original units: near the class means
    means = class_table().groupby("cls")[FEATURES].mean().to_numpy()
    proto = arch[FEATURES].to_numpy()
    assert (np.linalg.norm(proto[:, None] - means[None], axis=2).argmin(1) == [0, 1, 2]).all()

    dist = pd.read_csv(tmp_path / "a" / "code_distances.csv", index_col=0)
    corr = pd.read_csv(tmp_path / "a" / "code_correlations.csv", index_col=0)
    for m in (dist, corr):
        assert m.index.name == "cls" and list(m.index) == ["A", "B", "C"] and list(m.columns) == ["A", "B", "C"]
        np.testing.assert_allclose(m.to_numpy(), m.to_numpy().T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dist.to_numpy(), np.linalg.norm(codes[:, None] - codes[None], axis=2), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(corr.to_numpy(), np.corrcoef(codes), atol=1e-5)
    assert np.diag(dist.to_numpy()).max() == 0 and np.allclose(np.diag(corr.to_numpy()), 1)
    proto = pd.read_csv(tmp_path / "a" / "prototype_correlations.csv", index_col=0)
    import torch

    from archetool.model import ArchetoolModel

    module = ArchetoolModel.load(out).module
    with torch.no_grad():
        decoded = module.decode(torch.from_numpy(codes)).numpy()  # model space (standardised features)
    np.testing.assert_allclose(proto.to_numpy(), np.corrcoef(decoded), atol=1e-5)
    for png in ("code_correlations.png", "code_distances.png", "prototype_correlations.png"):
        assert (tmp_path / "a" / png).stat().st_size > 5000

    ex = pd.read_csv(tmp_path / "a" / "exemplars.csv")
    assert list(ex.columns) == ["cls", "rank", "id", "distance", "sample_label", "pred_label"]
    assert len(ex) == 12 and list(ex.groupby("cls")["rank"].apply(list)) == [[1, 2, 3, 4]] * 3
    assert ex.groupby("cls")["distance"].apply(lambda d: d.is_monotonic_increasing).all()
    emb = pd.read_csv(StringIO(run_cli("embed", out, data).stdout)).set_index("id")
    z = emb.loc[ex["id"], ["z0", "z1", "z2", "z3"]].to_numpy()
    target = codes[pd.Series(ex["cls"]).map({"A": 0, "B": 1, "C": 2}).to_numpy()]
    np.testing.assert_allclose(ex["distance"], np.linalg.norm(z - target, axis=1), rtol=1e-4, atol=1e-5)
    # no row of the data is nearer to a code than its listed exemplars
    all_d = np.linalg.norm(emb[["z0", "z1", "z2", "z3"]].to_numpy()[:, None] - codes[None], axis=2)
    np.testing.assert_allclose(ex.groupby("cls")["distance"].min().to_numpy(), all_d.min(0), rtol=1e-4, atol=1e-5)
    assert (ex["sample_label"] == ex["cls"]).mean() > 0.9  # nearest rows are of the code's own class


def test_interpolate_between_classes_and_sample_with_temperature(table_model, tmp_path):
    data, out = table_model
    arch = pd.read_csv(StringIO(_archetypes(out, tmp_path)))
    target = tmp_path / "line.csv"
    result = run_cli("interpolate", out, "--start", "A", "--end", "C", "--steps", "5", "--out", target)
    assert result.exit_code == 0, result.output
    line = pd.read_csv(target)
    assert list(line.columns) == ["step", "t", "cls", "code_distance"] + FEATURES and len(line) == 5
    assert line["cls"].iloc[0] == "A" and line["cls"].iloc[-1] == "C"
    np.testing.assert_allclose(line[["t"]].to_numpy().ravel(), np.linspace(0, 1, 5), atol=1e-6)
    np.testing.assert_allclose(line.iloc[0][FEATURES].astype(float), arch.iloc[0][FEATURES].astype(float), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(line.iloc[-1][FEATURES].astype(float), arch.iloc[2][FEATURES].astype(float), rtol=1e-4, atol=1e-4)
    assert line["code_distance"].iloc[0] == pytest.approx(0, abs=1e-5)
    # a sample id is an endpoint too
    assert run_cli("interpolate", out, "--start", "B", "--end", "s000", "--steps", "3").exit_code == 0

    cold = pd.read_csv(StringIO(run_cli("sample", out, "--n", "4", "--label", "B", "--temperature", "0").stdout))
    assert list(cold.columns) == ["sample", "cls", "nearest_code", "code_distance"] + FEATURES
    assert (cold["cls"] == "B").all() and (cold["nearest_code"] == "B").all()
    np.testing.assert_allclose(cold[FEATURES].to_numpy(), np.repeat(arch.iloc[[1]][FEATURES].to_numpy(), 4, 0), rtol=1e-4, atol=1e-4)
    warm = pd.read_csv(StringIO(run_cli("sample", out, "--n", "50", "--label", "B", "--temperature", "1", "--seed", "2").stdout))
    hot = pd.read_csv(StringIO(run_cli("sample", out, "--n", "50", "--label", "B", "--temperature", "3", "--seed", "2").stdout))
    assert 0 < warm["code_distance"].mean() < hot["code_distance"].mean()
    again = pd.read_csv(StringIO(run_cli("sample", out, "--n", "50", "--label", "B", "--temperature", "1", "--seed", "2").stdout))
    pd.testing.assert_frame_equal(warm, again)
    mixed = pd.read_csv(StringIO(run_cli("sample", out, "--n", "60", "--seed", "0").stdout))
    assert set(mixed["cls"]) == {"A", "B", "C"}  # classes drawn by training frequency
    assert_clean_error(run_cli("sample", out, "--label", "Z"), "--label 'Z' is not a class", "A, B, C")
    assert_clean_error(run_cli("interpolate", out, "--start", "A", "--end", "nowhere"), "endpoint 'nowhere'", "A, B, C")


def _archetypes(out, tmp_path) -> str:
    run_cli("archetypes", out, "--out", tmp_path / "codes")
    return (tmp_path / "codes" / "archetypes.csv").read_text()


# ------------------------------------------------------------------------------------ other inputs


def test_h5ad_obs_key_label_and_smi_label_column(tmp_path, h5ad_file, smi_file):
    out = tmp_path / "cells"
    result = run_cli("fit", h5ad_file, "--model", "svqvae", "--label", "cell_type", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["hparams"]["n_classes"] == 3
    target = tmp_path / "emb.h5ad"
    assert run_cli("embed", out, h5ad_file, "--out", target).exit_code == 0
    import anndata as ad

    adata = ad.read_h5ad(target)
    assert adata.obsm["X_svqvae"].shape == (90, 16)
    assert set(adata.obs["svqvae_pred_label"]) <= {"T", "B", "NK"}

    mols = tmp_path / "mols.smi"
    lines = smi_file.read_text().splitlines()
    mols.write_text("\n".join([lines[0].replace("heat_capacity", "family")] +
                              [" ".join(l.split()[:2] + ["ring" if ("1" in l.split()[0]) else "chain"]) for l in lines[1:]]) + "\n")
    out = tmp_path / "mols"
    result = run_cli("fit", mols, "--model", "svqvae", "--label", "family", "--n-bits", "128", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    assert run_cli("archetypes", out, "--out", tmp_path / "ma", "--n-exemplars", "2").exit_code == 0
    ex = pd.read_csv(tmp_path / "ma" / "exemplars.csv")
    assert list(ex.columns[:4]) == ["family", "rank", "id", "smiles"] and ex["smiles"].notna().all()
    assert (tmp_path / "ma" / "exemplars.png").is_file()
    s = pd.read_csv(StringIO(run_cli("sample", out, "--n", "3", "--label", "ring").stdout))
    assert "nearest_smiles_1" in s.columns and (s["family"] == "ring").all()


def lincs_like(n_per=30, genes=40, seed=0):
    rng = np.random.default_rng(seed)
    names = np.array(["DMSO", "vemurafenib", "trametinib", "neratinib"])
    y = np.repeat(np.arange(4), n_per)
    centres = rng.normal(size=(4, genes)) * 2
    x = (centres[y] + rng.normal(size=(len(y), genes))).astype(np.float32)
    sig = [f"PLATE1:{i:03d}" for i in range(len(y))]
    return x, [f"{200000 + g}_at" for g in range(genes)], sig, names[y]


def test_gctx_label_field_and_labels_side_table(tmp_path):
    from archetool.data.readers.gctx import write_gctx

    x, genes, sig, names = lincs_like()
    path = tmp_path / "plate.gctx"
    write_gctx(path, iter([x[:70], x[70:]]), genes, sig, {"pert_iname": names, "pert_dose": np.full(len(sig), 10.0)})
    out = tmp_path / "g"
    result = run_cli("fit", path, "--model", "svqvae", "--label", "pert_iname", "--out", out, "--epochs", "25",
                     "--batch-size", "32", "--hidden", "32,16", "--no-progress")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["summary"]["val_accuracy"] > 0.8
    prep = json.loads((out / "preprocessing.json").read_text())
    assert prep["classes"] == sorted(set(names)) and prep["featurizer"]["feature_names"] == genes
    emb = pd.read_csv(StringIO(run_cli("embed", out, path, "--chunk-rows", "33").stdout))
    assert emb.columns[0] == "id" and list(emb["id"]) == sig  # the gctx column ids
    assert (emb["pred_label"] == names).mean() > 0.8
    assert run_cli("archetypes", out, "--out", tmp_path / "ga").exit_code == 0
    arch = pd.read_csv(tmp_path / "ga" / "archetypes.csv")
    assert arch.columns[0] == "pert_iname" and genes[0] in arch.columns and len(arch) == 4

    # --labels FILE: a side table (signature id, class) joined by id, for a .gctx without the field
    bare = tmp_path / "bare.gctx"
    write_gctx(bare, x, genes, sig)
    side = tmp_path / "labels.csv"
    pd.DataFrame({"sig_id": sig[::-1], "moa": [f"moa_{n}" for n in names[::-1]]}).to_csv(side, index=False)
    out2 = tmp_path / "g2"
    result = run_cli("fit", bare, "--model", "svqvae", "--labels", side, "--out", out2, *FAST_FIT)
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out2 / "training_rows.parquet").set_index("id")
    assert json.loads((out2 / "preprocessing.json").read_text())["label_column"] == "moa"
    assert list(rows.loc[sig, "moa"]) == [f"moa_{n}" for n in names]  # joined by id, not by position


@pytest.mark.skipif(not REAL_GCTX.exists(), reason="shared LINCS plate absent")
def test_real_lincs_plate_end_to_end(tmp_path):
    out = tmp_path / "plate"
    result = run_cli("fit", REAL_GCTX, "--model", "svqvae", "--label", "pert_iname", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["hparams"]["n_classes"] == 60 and config["hparams"]["n_features"] == 978
    assert config["summary"]["val_rows"] >= 60 and 0 <= config["summary"]["val_accuracy"] <= 1
    target = tmp_path / "emb.parquet"
    assert run_cli("embed", out, REAL_GCTX, "--out", target).exit_code == 0
    emb = pd.read_parquet(target)
    assert len(emb) == 377 and emb["id"].iloc[0] == "LJP005_A375_24H_X1_B19:A03" and emb["pred_label"].notna().all()
    assert run_cli("archetypes", out, "--out", tmp_path / "a", "--n-exemplars", "2").exit_code == 0
    arch = pd.read_csv(tmp_path / "a" / "archetypes.csv")
    assert len(arch) == 60 and "DMSO" in set(arch["pert_iname"]) and "200814_at" in arch.columns
    corr = pd.read_csv(tmp_path / "a" / "code_correlations.csv", index_col=0)
    assert corr.shape == (60, 60)
    assert (tmp_path / "a" / "code_correlations.png").stat().st_size > 20_000
    line = pd.read_csv(StringIO(run_cli("interpolate", out, "--start", "DMSO", "--end", "vemurafenib", "--steps", "3").stdout))
    assert list(line["pert_iname"])[0] == "DMSO" and "200814_at" in line.columns


# ------------------------------------------------------------------------------------- bad input


def write(tmp_path, frame, name="d.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_svqvae_needs_a_label_and_no_side(table_csv):
    assert_clean_error(run_cli("fit", table_csv, "--model", "svqvae"), "--model svqvae needs --label COL")
    assert_clean_error(run_cli("fit", table_csv, "--model", "svqvae", "--label", "cls", "--side", "y"), "--side y", "drop --side")
    assert_clean_error(run_cli("fit", table_csv, "--model", "svqvae", "--label", "cls", "--set", "gamma=2"),
                       "--set gamma", "not an svqvae hyper-parameter", "margin")
    assert_clean_error(run_cli("fit", table_csv, "--model", "svqvae", "--label", "cls", "--set", "repulsion=soft", *FAST_FIT),
                       "--model svqvae", "unknown repulsion 'soft'")


def test_label_column_missing(table_csv):
    assert_clean_error(run_cli("fit", table_csv, "--model", "svqvae", "--label", "klass"),
                       "table.csv", "label column 'klass' not found", "id, f0", "--label")


def test_single_class(tmp_path):
    frame = class_table()
    frame["cls"] = "A"
    assert_clean_error(run_cli("fit", write(tmp_path, frame), "--model", "svqvae", "--label", "cls"),
                       "d.csv", "single class ('A')", "at least 2 classes")


def test_tiny_class_warns_or_refuses_with_strict_classes(tmp_path):
    frame = class_table()
    frame.loc[5, "cls"] = "lonely"
    path = write(tmp_path, frame)
    assert_clean_error(run_cli("fit", path, "--model", "svqvae", "--label", "cls", "--strict-classes"),
                       "1 classes of 'cls' have fewer than 2 samples", "'lonely' (1)", "--strict-classes")
    result = run_cli("fit", path, "--model", "svqvae", "--label", "cls", "--out", tmp_path / "m", *FAST_FIT)
    assert result.exit_code == 0, result.output
    assert "'lonely' (1)" in result.stderr and "carrying on" in result.stderr
    rows = pd.read_parquet(tmp_path / "m" / "training_rows.parquet")
    assert rows.loc[rows["cls"] == "lonely", "split"].tolist() == ["train"]  # never in validation
    assert json.loads((tmp_path / "m" / "config.json").read_text())["hparams"]["n_classes"] == 4


def test_missing_labels_counted_and_dropped_only_with_flag(tmp_path):
    frame = class_table()
    frame.loc[[2, 50, 51], "cls"] = np.nan
    path = write(tmp_path, frame)
    assert_clean_error(run_cli("fit", path, "--model", "svqvae", "--label", "cls"),
                       "3 missing labels", "data row 3", "--drop-missing")
    result = run_cli("fit", path, "--model", "svqvae", "--label", "cls", "--drop-missing", "--out", tmp_path / "m", *FAST_FIT)
    assert result.exit_code == 0, result.output
    assert "dropping 3 rows" in result.stderr
    rows = pd.read_parquet(tmp_path / "m" / "training_rows.parquet")
    assert len(rows) == 117 and "s002" not in set(rows["id"]) and rows["cls"].notna().all()


def test_malformed_gctx(tmp_path):
    import h5py

    not_hdf5 = tmp_path / "text.gctx"
    not_hdf5.write_text("this is not HDF5\n")
    assert_clean_error(run_cli("fit", not_hdf5, "--model", "svqvae", "--label", "pert_iname"),
                       "text.gctx", "not a valid .gctx (HDF5) file")
    hollow = tmp_path / "hollow.gctx"
    with h5py.File(hollow, "w") as f:
        f.create_dataset("0/DATA/0/matrix", data=np.zeros((3, 4), np.float32))
        f.create_dataset("0/META/ROW/id", data=np.array([b"g1", b"g2", b"g3", b"g4"]))
    assert_clean_error(run_cli("fit", hollow, "--model", "svqvae", "--label", "pert_iname"),
                       "hollow.gctx", "dataset 0/META/COL/id is missing")
    x, genes, sig, names = lincs_like(n_per=5)
    from archetool.data.readers.gctx import write_gctx

    no_field = tmp_path / "nofield.gctx"
    write_gctx(no_field, x, genes, sig, {"pert_dose": np.ones(len(sig))})
    assert_clean_error(run_cli("fit", no_field, "--model", "svqvae", "--label", "pert_iname"),
                       "nofield.gctx", "label column 'pert_iname' not found", "pert_dose")


def test_embed_data_with_unseen_labels_is_allowed_and_predicted(table_model, tmp_path):
    data, out = table_model
    frame = class_table(seed=0)
    frame.loc[:9, "cls"] = "never_seen"
    frame.loc[10:, "cls"] = np.nan
    new = write(tmp_path, frame, "new.csv")
    result = run_cli("embed", out, new)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(StringIO(result.stdout))
    assert len(table) == 120 and set(table["pred_label"]) <= {"A", "B", "C"}
    result = run_cli("archetypes", out, "--data", new, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    ex = pd.read_csv(tmp_path / "a" / "exemplars.csv")
    assert set(ex["cls"]) == {"A", "B", "C"}


def test_cli_refit_flags(tmp_path):
    """Few rows per class: fit refits on all rows by default (refit_history.csv, every row 'train', the log says
    so); --no-refit keeps the held-out split; --refit forces it on a table with many rows per class."""
    few = class_table(n_per=6)
    data = tmp_path / "few.csv"
    few.to_csv(data, index=False)
    result = run_cli("fit", data, "--model", "svqvae", "--label", "cls", "--out", tmp_path / "a", *FAST_FIT)
    assert result.exit_code == 0, result.output
    assert "refit on all 18 rows" in result.output
    assert (tmp_path / "a" / "refit_history.csv").exists()
    assert set(pd.read_parquet(tmp_path / "a" / "training_rows.parquet")["split"]) == {"train"}
    result = run_cli("fit", data, "--model", "svqvae", "--label", "cls", "--out", tmp_path / "b", "--no-refit", *FAST_FIT)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "b" / "refit_history.csv").exists()
    assert (pd.read_parquet(tmp_path / "b" / "training_rows.parquet")["split"] == "val").sum() == 3
    many = tmp_path / "many.csv"
    class_table(n_per=20).to_csv(many, index=False)
    result = run_cli("fit", many, "--model", "svqvae", "--label", "cls", "--out", tmp_path / "c", "--refit", *FAST_FIT)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "c" / "config.json").read_text())["summary"]
    assert summary["refit_rows"] == 60 and summary["refit_epochs"] == summary["best_epoch"]
