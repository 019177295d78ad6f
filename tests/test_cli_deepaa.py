"""End-to-end CLI runs of deepaa on every kind of input; the written files' contents are checked."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import FAST_FIT, run_cli


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    from conftest import make_table

    tmp = tmp_path_factory.mktemp("tm")
    data = tmp / "table.csv"
    make_table(n=150).to_csv(data, index=False)
    out = tmp / "model"
    result = run_cli("fit", data, "--side", "y", "--k", "3", "--out", out, "--seed", "1", *FAST_FIT)
    assert result.exit_code == 0, result.output
    return data, out


def test_fit_writes_a_complete_model_directory(table_model):
    data, out = table_model
    for name in ("config.json", "weights.pt", "preprocessing.json", "history.csv", "training_rows.parquet", "checkpoint.pt"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "deepaa" and config["seed"] == 1 and config["hparams"]["n_archetypes"] == 3
    assert config["archetool_version"] and config["summary"]["val_rows"] == 15
    assert "val_r2_y" in config["summary"]
    prep = json.loads((out / "preprocessing.json").read_text())
    assert prep["featurizer"]["feature_names"] == [f"f{i}" for i in range(8)] and prep["side_names"] == ["y"]
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4] and {"train_loss", "val_loss", "beta"} <= set(history.columns)
    import torch

    state = torch.load(out / "weights.pt", weights_only=True)
    assert state["Z"].shape == (3, 2)


def test_embed_columns_and_formats(table_model, tmp_path):
    data, out = table_model
    result = run_cli("embed", out, data)
    assert result.exit_code == 0
    from io import StringIO

    table = pd.read_csv(StringIO(result.stdout))
    assert list(table.columns) == ["id", "z0", "z1", "a0", "a1", "a2", "pred_y"]
    assert len(table) == 150 and table["id"].iloc[0] == "s000"
    np.testing.assert_allclose(table[["a0", "a1", "a2"]].sum(1), 1.0, atol=1e-5)
    for ext in (".parquet", ".tsv", ".npy", ".csv"):
        target = tmp_path / f"emb{ext}"
        assert run_cli("embed", out, data, "--out", target, "--chunk-rows", "40").exit_code == 0
        if ext == ".npy":
            arr = np.load(target)
            assert arr.shape == (150, 6)
            np.testing.assert_allclose(arr[:, 0], table["z0"], rtol=1e-4, atol=1e-5)
        else:
            got = pd.read_parquet(target) if ext == ".parquet" else pd.read_csv(target, sep="\t" if ext == ".tsv" else ",")
            assert list(got.columns) == list(table.columns) and len(got) == 150
            np.testing.assert_allclose(got["pred_y"], table["pred_y"], rtol=1e-4)


def test_archetypes_interpolate_sample_info(table_model, tmp_path):
    data, out = table_model
    result = run_cli("archetypes", out, "--out", tmp_path / "arch", "--n-exemplars", "3")
    assert result.exit_code == 0, result.output
    arch = pd.read_csv(tmp_path / "arch" / "archetypes.csv")
    assert list(arch.columns) == ["archetype", "pred_y"] + [f"f{i}" for i in range(8)]
    assert list(arch["archetype"]) == ["a0", "a1", "a2"]
    ex = pd.read_csv(tmp_path / "arch" / "exemplars.csv")
    assert list(ex.columns[:6]) == ["archetype", "rank", "id", "weight", "distance", "y"]
    assert len(ex) == 9 and ex.groupby("archetype")["weight"].apply(lambda w: w.is_monotonic_decreasing).all()
    assert (tmp_path / "arch" / "simplex.png").stat().st_size > 5000

    target = tmp_path / "line.csv"
    assert run_cli("interpolate", out, "--start", "a0", "--end", "s010", "--steps", "5", "--out", target).exit_code == 0
    line = pd.read_csv(target)
    assert len(line) == 5 and list(line.columns[:5]) == ["step", "t", "a0", "a1", "a2"]
    assert line.loc[0, "a0"] == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(line[["a0", "a1", "a2"]].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(line.iloc[0][[f"f{i}" for i in range(8)]].astype(float), arch.iloc[0][[f"f{i}" for i in range(8)]].astype(float), rtol=1e-4, atol=1e-4)

    grid = tmp_path / "grid.csv"
    assert run_cli("interpolate", out, "--grid", "2", "--out", grid).exit_code == 0
    assert len(pd.read_csv(grid)) == 6

    samples = tmp_path / "s.parquet"
    assert run_cli("sample", out, "--n", "7", "--out", samples, "--seed", "3").exit_code == 0
    s = pd.read_parquet(samples)
    assert len(s) == 7 and "pred_y" in s and "f7" in s
    again = tmp_path / "s2.parquet"
    run_cli("sample", out, "--n", "7", "--out", again, "--seed", "3")
    pd.testing.assert_frame_equal(s, pd.read_parquet(again))  # seeded

    info = run_cli("info", out, "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["model"] == "deepaa"


def test_molecules_end_to_end_with_rejects_and_pictures(tmp_path, smi_file):
    bad = tmp_path / "with_bad.smi"
    bad.write_text(smi_file.read_text() + "C1CC bad1 10.0\nnotasmiles bad2 11.0\n")
    out = tmp_path / "mol_model"
    result = run_cli("fit", bad, "--side", "heat_capacity", "--k", "3", "--n-bits", "256", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    assert "2 of 26 molecules could not be used" in result.stderr
    rejects = pd.read_csv(out / "rejects.csv")
    assert rejects.to_dict("list") == {"row": [25, 26], "id": ["bad1", "bad2"], "smiles": ["C1CC", "notasmiles"],
                                       "reason": ["RDKit cannot parse the SMILES"] * 2}
    rows = pd.read_parquet(out / "training_rows.parquet")
    assert list(rows["id"][:3]) == ["m0", "m1", "m2"] and "bad1" not in set(rows["id"])
    assert result.exit_code == 0
    assert run_cli("archetypes", out, "--out", tmp_path / "a").exit_code == 0
    ex = pd.read_csv(tmp_path / "a" / "exemplars.csv")
    assert "smiles" in ex.columns and ex["smiles"].notna().all()
    assert (tmp_path / "a" / "exemplars.png").stat().st_size > 10_000
    arch = pd.read_csv(tmp_path / "a" / "archetypes.csv")
    assert "morgan_0" in arch.columns and arch.filter(like="morgan_").to_numpy().max() <= 1.0  # bit probabilities
    emb = tmp_path / "emb.csv"
    result = run_cli("embed", out, bad, "--out", emb)
    assert result.exit_code == 0
    assert len(pd.read_csv(emb)) == 24 and (tmp_path / "emb.rejects.csv").is_file()
    s = tmp_path / "s.csv"
    assert run_cli("sample", out, "--n", "4", "--out", s).exit_code == 0
    assert {"nearest_id_1", "nearest_smiles_1"} <= set(pd.read_csv(s).columns)


def test_h5ad_in_and_out(tmp_path, h5ad_file):
    import anndata as ad

    out = tmp_path / "m"
    assert run_cli("fit", h5ad_file, "--side", "n_counts", "--k", "3", "--out", out, *FAST_FIT).exit_code == 0
    target = tmp_path / "emb.h5ad"
    result = run_cli("embed", out, h5ad_file, "--out", target)
    assert result.exit_code == 0, result.output
    adata = ad.read_h5ad(target)
    assert adata.obsm["X_deepaa"].shape == (90, 2) and adata.obsm["deepaa_weights"].shape == (90, 3)
    np.testing.assert_allclose(adata.obsm["deepaa_weights"].sum(1), 1, atol=1e-5)
    assert "deepaa_pred_n_counts" in adata.obs


def test_k_sweep_writes_per_seed_rows_mean_sd_and_png(tmp_path, table_csv):
    result = run_cli("fit", table_csv, "--side", "y", "--k", "2-3", "--sweep-seeds", "2", "--seed", "5",
                     "--out", tmp_path / "sweep", *FAST_FIT)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "sweep" / "k_sweep.csv", dtype={"seed": str})
    assert {"val_side_mse", "val_recon_mse", "val_r2_y"} <= set(table.columns)
    runs = table[~table["seed"].isin(["mean", "sd"])]
    assert list(zip(runs["k"], runs["seed"])) == [(2, "5"), (2, "6"), (3, "5"), (3, "6")]
    for k in (2, 3):
        values = runs.loc[runs["k"] == k, "val_side_mse"].to_numpy()
        mean = table.loc[(table["k"] == k) & (table["seed"] == "mean"), "val_side_mse"].item()
        sd = table.loc[(table["k"] == k) & (table["seed"] == "sd"), "val_side_mse"].item()
        assert mean == pytest.approx(values.mean(), rel=1e-9) and sd == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert runs["val_side_mse"].nunique() == 4  # the seeds really differ
    for name in ("k_sweep.png", "k2/config.json", "k3-s6/config.json"):
        assert (tmp_path / "sweep" / name).is_file(), name
    assert json.loads((tmp_path / "sweep" / "k3-s6" / "config.json").read_text())["seed"] == 6


def test_python_api(tmp_path, table_csv):
    import archetool

    model = archetool.fit(table_csv, side="y", k=3, epochs=3, hidden=[16], out=str(tmp_path / "api"), progress_bar=False)
    loaded = archetool.load(tmp_path / "api")
    a = model.embed(table_csv)
    b = loaded.embed(table_csv)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns[:3]) == ["id", "z0", "z1"]


def test_seeded_cpu_runs_are_reproducible(tmp_path, table_csv):
    for name in ("r1", "r2"):
        assert run_cli("fit", table_csv, "--side", "y", "--out", tmp_path / name, "--seed", "7", *FAST_FIT).exit_code == 0
    h1, h2 = (pd.read_csv(tmp_path / n / "history.csv").drop(columns="seconds") for n in ("r1", "r2"))
    pd.testing.assert_frame_equal(h1, h2)


def test_help_is_fast_and_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from archetool.cli.app import app; assert 'torch' not in sys.modules and 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    result = subprocess.run([sys.executable, "-m", "archetool", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "fit" in result.stdout


def test_progress_bar_mode_runs(tmp_path, table_csv):
    result = run_cli("fit", table_csv, "--out", tmp_path / "m", "--epochs", "2", "--hidden", "8", "--progress")
    assert result.exit_code == 0, result.output
    assert "epoch 1/2" not in result.stderr  # the bar replaces the per-epoch log lines


def test_plain_log_line_per_epoch_when_not_a_terminal(tmp_path, table_csv):
    result = run_cli("fit", table_csv, "--out", tmp_path / "m", "--epochs", "3", "--hidden", "8")
    assert result.exit_code == 0
    assert [line.split()[2] for line in result.stderr.splitlines() if " epoch " in line and "/3" in line] == ["1/3", "2/3", "3/3"]


def test_dirichlet_prior_end_to_end(tmp_path, table_csv):
    out = tmp_path / "d"
    assert run_cli("fit", table_csv, "--side", "y", "--prior", "dirichlet", "--out", out, *FAST_FIT).exit_code == 0
    import json

    assert json.loads((out / "config.json").read_text())["hparams"]["prior"] == "dirichlet"
    samples = tmp_path / "s.csv"
    assert run_cli("sample", out, "--n", "5", "--out", samples).exit_code == 0
    np.testing.assert_allclose(pd.read_csv(samples)[["a0", "a1", "a2", "a3"]].sum(1), 1.0, atol=1e-5)


def test_restarts_keep_the_lowest_validation_loss_and_resume_without_retraining(tmp_path, table_csv):
    out = tmp_path / "r"
    result = run_cli("fit", table_csv, "--side", "y", "--k", "3", "--restarts", "3", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    assert "restart 2/3 epoch 1/4" in result.stderr  # plain log lines say which restart runs
    config = json.loads((out / "config.json").read_text())
    summary, runs = config["summary"], config["restarts"]
    assert [r["init_seed"] for r in runs] == [0, 1, 2]
    losses = [r["best_val_loss"] for r in runs]
    assert len(set(losses)) == 3  # different initialisations really differ
    kept = int(np.argmin(losses))
    assert summary["restart_kept"] == f"{kept + 1}/3"
    kept_history = pd.read_csv(out / "history.csv")
    assert kept_history["val_loss"][kept_history["epoch"] == runs[kept]["best_epoch"]].item() == pytest.approx(min(losses))
    assert f"restart_kept={kept + 1}/3" in run_cli("info", out).stdout
    assert all((out / name).exists() for name in ("checkpoint.pt", "checkpoint-r1.pt", "checkpoint-r2.pt"))
    weights = (out / "weights.pt").read_bytes()
    again = run_cli("fit", table_csv, "--side", "y", "--k", "3", "--restarts", "3", "--out", out, "--resume", *FAST_FIT)
    assert again.exit_code == 0, again.output
    assert " epoch 1/4" not in again.stderr  # every restart had finished: nothing is trained again
    assert json.loads((out / "config.json").read_text())["summary"]["restart_kept"] == summary["restart_kept"]
    import torch

    old = torch.load(__import__("io").BytesIO(weights), weights_only=True)
    new = torch.load(out / "weights.pt", weights_only=True)
    assert all(torch.equal(old[key], new[key]) for key in old)
