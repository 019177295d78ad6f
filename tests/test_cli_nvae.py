"""End-to-end CLI runs of nvae (fit, embed, archetypes, sample, interpolate) and its bad-input cases;
the written files' contents are checked."""

import json
from io import StringIO

import numpy as np
import pandas as pd
import pytest

from conftest import FAST_FIT, MOLECULES, make_table, run_cli
from test_bad_input import assert_clean_error

CLASS_DIM, SHARED_DIM = 3, 2
D = CLASS_DIM + SHARED_DIM


def _fit(data, out, *extra):
    result = run_cli("fit", data, "--model", "nvae", "--label", "cls", "--latent-dim", CLASS_DIM,
                     "--shared-dim", SHARED_DIM, "--out", out, "--seed", "1", *FAST_FIT, *extra)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """16 numeric features (a 4x4 'image'), classes A/B/C in column cls."""
    tmp = tmp_path_factory.mktemp("nv_img")
    data = tmp / "table16.csv"
    make_table(n=150, p=16).drop(columns=["y"]).to_csv(data, index=False)
    return data, _fit(data, tmp / "model")


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    """8 numeric features (not a square image) plus a numeric column y that is just another feature."""
    tmp = tmp_path_factory.mktemp("nv_tab")
    data = tmp / "table8.csv"
    make_table(n=120, p=8).to_csv(data, index=False)
    return data, _fit(data, tmp / "model")


@pytest.fixture(scope="module")
def image_archetypes(image_model, tmp_path_factory):
    """``archetypes`` of the image model (training rows), run once: (the CLI result, its directory)."""
    data, out = image_model
    arch_dir = tmp_path_factory.mktemp("nv_arch") / "arch"
    result = run_cli("archetypes", out, "--out", arch_dir, "--n-exemplars", "4")
    assert result.exit_code == 0, result.output
    return result, arch_dir


def _features(table, p=16):
    return table[[f"f{i}" for i in range(p)]].to_numpy(float)


def test_fit_writes_model_config_history_and_kl_record(image_model):
    import torch

    data, out = image_model
    config = json.loads((out / "config.json").read_text())
    hp = config["hparams"]
    assert config["model"] == "nvae" and hp["class_dim"] == CLASS_DIM and hp["shared_dim"] == SHARED_DIM
    assert hp["n_classes"] == 3 and hp["n_features"] == 16
    counts = make_table(n=150, p=16)["cls"].value_counts()
    np.testing.assert_allclose(hp["class_prior"], [counts[c] / 150 for c in "ABC"])  # p(y) = training frequencies
    summary = config["summary"]
    assert 0 <= summary["val_accuracy"] <= 1 and summary["n_classes"] == 3
    assert 0 <= summary["active_class_dims"] <= CLASS_DIM and 0 <= summary["active_shared_dims"] <= SHARED_DIM
    history = pd.read_csv(out / "history.csv")
    assert {"train_loss", "train_kl_class", "train_kl_shared", "train_classifier", "val_accuracy", "val_recon_mse"} <= set(history.columns)
    state = torch.load(out / "weights.pt", weights_only=True)
    assert state["kl_record"].shape == (3, D) and float(state["kl_record_counts"].sum()) == 150
    assert (state["kl_record"] >= 0).all()
    info = run_cli("info", out, "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["label"] == "cls"


def test_embed_writes_z_pred_label_and_probability(image_model, tmp_path):
    data, out = image_model
    result = run_cli("embed", out, data)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(StringIO(result.stdout))
    assert list(table.columns) == ["id"] + [f"z{j}" for j in range(D)] + ["pred_label", "pred_prob"]
    assert len(table) == 150 and table["id"].iloc[0] == "s000"
    assert set(table["pred_label"]) <= {"A", "B", "C"}
    assert ((table["pred_prob"] >= 1 / 3 - 1e-6) & (table["pred_prob"] <= 1)).all()  # argmax of 3 probabilities
    rows = pd.read_parquet(out / "training_rows.parquet")  # fit and embed agree
    np.testing.assert_allclose(rows[[f"z{j}" for j in range(D)]], table[[f"z{j}" for j in range(D)]], atol=1e-5)
    assert list(rows["pred_label"]) == list(table["pred_label"])
    target = tmp_path / "emb.parquet"
    assert run_cli("embed", out, data, "--out", target).exit_code == 0
    assert list(pd.read_parquet(target).columns) == list(table.columns)


def test_archetypes_codes_prototypes_exemplars_and_pictures(image_model, image_archetypes, tmp_path):
    import torch

    data, out = image_model
    result, arch_dir = image_archetypes
    arch = pd.read_csv(arch_dir / "archetypes.csv")
    zcols = [f"z{j}" for j in range(D)]
    assert list(arch.columns) == ["cls", "n_samples", "val_accuracy"] + zcols + [f"f{i}" for i in range(16)]
    assert list(arch["cls"]) == ["A", "B", "C"] and arch["n_samples"].sum() == 150
    state = torch.load(out / "weights.pt", weights_only=True)
    np.testing.assert_allclose(arch[zcols[:CLASS_DIM]], state["_class_means"].numpy(), atol=1e-5)  # codes: (m_y, 0)
    assert (arch[zcols[CLASS_DIM:]] == 0).all().all()

    ex = pd.read_csv(arch_dir / "exemplars.csv")
    assert list(ex.columns) == ["cls", "rank", "id", "distance", "pred_label", "pred_prob", "class_from"]
    assert len(ex) == 12 and list(ex.groupby("cls")["rank"].apply(list)) == [[1, 2, 3, 4]] * 3
    assert ex.groupby("cls")["distance"].apply(lambda d: d.is_monotonic_increasing).all()
    truth = make_table(n=150, p=16).set_index("id")["cls"]
    assert (truth.loc[ex["id"]].to_numpy() == ex["cls"].to_numpy()).all()  # exemplars are real members of the class
    assert (ex["class_from"] == "cls").all()

    kl = pd.read_csv(arch_dir / "kl_per_dim.csv")
    assert list(kl.columns[:8]) == ["latent", "dim", "column", "kl", "kl_max", "n_classes_active", "active_in", "role"]
    assert list(kl.columns[8:]) == ["kl_A", "kl_B", "kl_C"]
    assert list(kl["latent"]) == ["class"] * CLASS_DIM + ["shared"] * SHARED_DIM
    assert list(kl["column"]) == zcols and list(kl["dim"]) == [0, 1, 2, 0, 1]
    assert (kl[["kl", "kl_A", "kl_B", "kl_C"]] >= 0).all().all()
    weights = np.array([(truth == c).sum() for c in "ABC"]) / 150
    np.testing.assert_allclose(kl[["kl_A", "kl_B", "kl_C"]].to_numpy() @ weights, kl["kl"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(kl[["kl_A", "kl_B", "kl_C"]].max(1), kl["kl_max"], rtol=1e-6)
    assert set(kl["role"]) <= {"inactive", "shared", "class-dependent"}
    assert ((kl["role"] == "shared") == (kl["n_classes_active"] == 3)).all()

    for name in ("kl_per_dim.png", "prototypes.png", "traversal_z3.png", "traversal_z4.png"):
        assert (arch_dir / name).stat().st_size > 3000, name
    assert not (arch_dir / "traversals.csv").exists()  # an image: pictures instead of the table
    assert "kl_per_dim:" in result.stderr

    # the same analysis on --data (streamed, labels from the file) matches the record made at fit time
    again = run_cli("archetypes", out, "--data", data, "--out", tmp_path / "arch2")
    assert again.exit_code == 0, again.output
    kl2 = pd.read_csv(tmp_path / "arch2" / "kl_per_dim.csv")
    np.testing.assert_allclose(kl2[["kl", "kl_A", "kl_B", "kl_C"]], kl[["kl", "kl_A", "kl_B", "kl_C"]], rtol=1e-4, atol=1e-6)


def test_archetypes_on_data_without_labels_uses_predictions(image_model, tmp_path):
    data, out = image_model
    unlabelled = tmp_path / "nolabel.csv"
    pd.read_csv(data).drop(columns=["cls"]).to_csv(unlabelled, index=False)
    result = run_cli("archetypes", out, "--data", unlabelled, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "no 'cls' column" in result.stderr and "predicted classes" in result.stderr
    ex = pd.read_csv(tmp_path / "a" / "exemplars.csv")
    assert (ex["class_from"] == "pred_label").all() and (ex["cls"] == ex["pred_label"]).all()
    assert len(pd.read_csv(tmp_path / "a" / "kl_per_dim.csv")) == D


def test_sample_by_label_prior_and_temperature(image_model, image_archetypes, tmp_path):
    data, out = image_model
    protos = pd.read_csv(image_archetypes[1] / "archetypes.csv").set_index("cls")

    s = tmp_path / "s.csv"
    result = run_cli("sample", out, "--n", "12", "--label", "B", "--out", s, "--seed", "3")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(s)
    assert list(table.columns) == ["sample", "cls"] + [f"f{i}" for i in range(16)]
    assert len(table) == 12 and (table["cls"] == "B").all()
    assert _features(table).std(0).mean() > 0  # samples differ
    again = tmp_path / "s2.csv"
    run_cli("sample", out, "--n", "12", "--label", "B", "--out", again, "--seed", "3")
    pd.testing.assert_frame_equal(table, pd.read_csv(again))  # seeded

    # temperature 0: every draw is the class prototype of archetypes.csv
    zero = pd.read_csv(StringIO(run_cli("sample", out, "--n", "3", "--label", "C", "--temperature", "0").stdout))
    np.testing.assert_allclose(_features(zero), np.repeat(_features(protos.loc[["C"]]), 3, axis=0), rtol=1e-4, atol=1e-4)
    spreads = []
    for t in ("0.5", "1.5"):
        tab = pd.read_csv(StringIO(run_cli("sample", out, "--n", "200", "--label", "A", "--temperature", t).stdout))
        spreads.append(_features(tab).std(0).mean())
    assert spreads[0] < spreads[1]

    # no --label: classes drawn from p(y) (the training frequencies)
    prior = pd.read_csv(StringIO(run_cli("sample", out, "--n", "600").stdout))["cls"].value_counts(normalize=True)
    freq = make_table(n=150, p=16)["cls"].value_counts(normalize=True)
    for c in "ABC":
        assert abs(prior.get(c, 0) - freq[c]) < 0.08


def test_interpolate_between_classes_and_samples(image_model, image_archetypes, tmp_path):
    data, out = image_model
    protos = pd.read_csv(image_archetypes[1] / "archetypes.csv").set_index("cls")
    target = tmp_path / "line.csv"
    result = run_cli("interpolate", out, "--start", "A", "--end", "C", "--steps", "5", "--out", target)
    assert result.exit_code == 0, result.output
    line = pd.read_csv(target)
    assert list(line.columns) == ["step", "t", "cls"] + [f"f{i}" for i in range(16)]
    assert list(line["t"]) == [0, 0.25, 0.5, 0.75, 1.0] and line["cls"].iloc[0] == "A" and line["cls"].iloc[-1] == "C"
    np.testing.assert_allclose(_features(line.iloc[[0, -1]]), _features(protos.loc[["A", "C"]]), rtol=1e-4, atol=1e-4)
    # a class to a sample id of the training rows
    result = run_cli("interpolate", out, "--start", "B", "--end", "s010", "--steps", "3")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(StringIO(result.stdout))) == 3


def test_plain_table_writes_traversals_table(plain_model, tmp_path):
    data, out = plain_model
    result = run_cli("archetypes", out, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    trav = pd.read_csv(tmp_path / "a" / "traversals.csv")
    features = [f"f{i}" for i in range(8)] + ["y"]  # y is a feature here (not a --side column)
    assert list(trav.columns) == ["dimension", "cls", "step", "value"] + features
    assert len(trav) == SHARED_DIM * 3 * 7 and set(trav["dimension"]) == {"z3", "z4"}
    protos = pd.read_csv(tmp_path / "a" / "archetypes.csv").set_index("cls")
    middle = trav[trav["value"] == 0].set_index(["dimension", "cls"])  # value 0: the class prototype
    for dim in ("z3", "z4"):
        np.testing.assert_allclose(middle.loc[dim].loc[["A", "B", "C"], features].to_numpy(float),
                                   protos.loc[["A", "B", "C"], features].to_numpy(float), rtol=1e-4, atol=1e-4)
    assert not list((tmp_path / "a").glob("traversal_*.png")) and not (tmp_path / "a" / "prototypes.png").exists()
    assert (tmp_path / "a" / "kl_per_dim.png").is_file()


def test_h5ad_in_and_out(tmp_path, h5ad_file):
    import anndata as ad

    out = tmp_path / "m"
    result = run_cli("fit", h5ad_file, "--model", "nvae", "--label", "cell_type", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    target = tmp_path / "emb.h5ad"
    assert run_cli("embed", out, h5ad_file, "--out", target).exit_code == 0
    adata = ad.read_h5ad(target)
    assert adata.obsm["X_nvae"].shape == (90, 2 + 4)  # default class_dim K - 1 = 2 (issue 17; was 8) + shared_dim 4
    assert set(adata.obs["nvae_pred_label"]) <= {"T", "B", "NK"} and "nvae_pred_prob" in adata.obs
    s = run_cli("sample", out, "--n", "4", "--label", "NK")
    assert s.exit_code == 0 and list(pd.read_csv(StringIO(s.stdout))["cell_type"]) == ["NK"] * 4


def test_molecules_samples_get_nearest_real_molecules(tmp_path):
    path = tmp_path / "mols.smi"
    lines = ["smiles id kind"] + [f"{s} m{i} {'ring' if ('1' in s) else 'chain'}" for i, (s, _) in enumerate(MOLECULES)]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "mm"
    result = run_cli("fit", path, "--model", "nvae", "--label", "kind", "--n-bits", "128", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    s = tmp_path / "s.csv"
    assert run_cli("sample", out, "--n", "5", "--label", "ring", "--out", s).exit_code == 0
    table = pd.read_csv(s)
    # the generated molecule comes first (sequence decoder, on by default for molecules), then the class as before
    assert list(table.columns[:3]) == ["sample", "smiles", "novel"] and (table["kind"] == "ring").all()
    for r in (1, 2, 3):
        assert {f"nearest_id_{r}", f"nearest_smiles_{r}", f"nearest_distance_{r}"} <= set(table.columns)
    assert set(table["nearest_smiles_1"]) <= {smi for smi, _ in MOLECULES}
    assert table.filter(like="morgan_").to_numpy().max() <= 1.0  # bit probabilities
    assert run_cli("archetypes", out, "--out", tmp_path / "a", "--n-exemplars", "2").exit_code == 0
    ex = pd.read_csv(tmp_path / "a" / "exemplars.csv")
    assert "smiles" in ex.columns and ex["smiles"].notna().all() and set(ex["kind"]) == {"ring", "chain"}
    assert (tmp_path / "a" / "exemplars.png").stat().st_size > 5000
    assert not (tmp_path / "a" / "prototypes.png").exists()  # fingerprints are not an image


# --- bad input: one clear line, non-zero exit code ----------------------------------------------


def test_fit_without_label(table_csv):
    assert_clean_error(run_cli("fit", table_csv, "--model", "nvae", *FAST_FIT), "--model nvae needs --label")


def test_fit_label_column_missing_single_class_or_missing_values(tmp_path, table_csv):
    assert_clean_error(run_cli("fit", table_csv, "--model", "nvae", "--label", "nope", *FAST_FIT),
                       "label column 'nope' not found", "cls")
    one = tmp_path / "one.csv"
    make_table().assign(cls="A").to_csv(one, index=False)
    assert_clean_error(run_cli("fit", one, "--model", "nvae", "--label", "cls", *FAST_FIT), "single class")
    gaps = tmp_path / "gaps.csv"
    frame = make_table()
    frame.loc[[3, 7], "cls"] = None
    frame.to_csv(gaps, index=False)
    assert_clean_error(run_cli("fit", gaps, "--model", "nvae", "--label", "cls", *FAST_FIT), "2 missing labels", "--drop-missing")


def test_fit_bad_sizes_side_and_settings(table_csv):
    nv = ("fit", table_csv, "--model", "nvae", "--label", "cls", *FAST_FIT)
    assert_clean_error(run_cli(*nv, "--latent-dim", "0"), "--latent-dim 0", "at least 1")
    assert_clean_error(run_cli(*nv, "--shared-dim", "-1"), "--shared-dim -1")
    assert_clean_error(run_cli(*nv, "--side", "y"), "--side y", "drop --side")
    assert_clean_error(run_cli(*nv, "--set", "foo=1"), "--set foo", "beta_c")
    assert_clean_error(run_cli(*nv, "--set", "beta_c=-1"), "--set beta_c=-1", "positive")
    assert_clean_error(run_cli(*nv, "--set", "class_separation=abc"), "class_separation", "positive")


def test_sample_and_interpolate_unknown_class(image_model):
    data, out = image_model
    assert_clean_error(run_cli("sample", out, "--label", "Z"), "--label 'Z' is not a class", "A, B, C")
    assert_clean_error(run_cli("interpolate", out, "--start", "A", "--end", "zzz"), "endpoint 'zzz'", "A, B, C")
    assert_clean_error(run_cli("interpolate", out, "--grid", "3"), "--grid applies to deepaa")
