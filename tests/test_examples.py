"""`archetool example NAME DIR`: the bundled examples (package data, so they are in the wheel)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO, run_cli

BUNDLED = {"molecules": "molecules.smi", "table": "wine.csv", "expression": "pbmc_small.h5ad"}


def one_error_line(result, *needles) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "╭" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_example_copies_the_bundled_file(tmp_path, name):
    dest = tmp_path / "new" / "dir"
    result = run_cli("example", name, dest)
    assert result.exit_code == 0, result.output
    copied = dest / BUNDLED[name]
    assert sorted(p.name for p in dest.iterdir()) == [BUNDLED[name]]  # no temporary left behind
    assert copied.read_bytes() == (REPO / "archetool" / "examples" / BUNDLED[name]).read_bytes()
    assert f"wrote {copied}" in result.stderr and "next: archetool fit " in result.stderr


@pytest.mark.parametrize("file", sorted(BUNDLED.values()))
def test_sample_data_and_the_package_examples_are_the_same_files(file):
    """sample_data/ (the repository's) and archetool/examples/ (the wheel's) must not drift apart."""
    assert (REPO / "sample_data" / file).read_bytes() == (REPO / "archetool" / "examples" / file).read_bytes()


def test_the_examples_are_package_data():
    from importlib.resources import files

    pkg = files("archetool.examples")
    for file in BUNDLED.values():
        assert pkg.joinpath(file).is_file(), file
    pyproject = (REPO / "pyproject.toml").read_text()
    for suffix in ("*.smi", "*.csv", "*.h5ad"):
        assert f'"examples/{suffix}"' in pyproject, suffix


def test_unknown_example_is_one_line_listing_the_names(tmp_path):
    one_error_line(run_cli("example", "molecule", tmp_path / "d"),
                   "no example 'molecule'", "expression, lincs, molecules, table")
    assert not (tmp_path / "d").exists()


def test_existing_file_is_not_overwritten(tmp_path):
    (tmp_path / "molecules.smi").write_text("my own molecules\n")
    one_error_line(run_cli("example", "molecules", tmp_path), f"{tmp_path / 'molecules.smi'}: already exists",
                   "nothing was copied")
    assert (tmp_path / "molecules.smi").read_text() == "my own molecules\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["molecules.smi"]


def test_destination_that_is_a_file(tmp_path):
    target = tmp_path / "afile"
    target.write_text("x")
    one_error_line(run_cli("example", "table", target), "is not a directory")
    assert target.read_text() == "x"


def test_lincs_example_is_a_lincs_shaped_gctx(tmp_path):
    from archetool.data.readers.gctx import GctxSource

    assert run_cli("example", "lincs", tmp_path, "--signatures", "30").exit_code == 0
    batch = GctxSource(tmp_path / "lincs_example.gctx").read()
    assert batch.matrix.shape == (30, 978) and np.isfinite(batch.matrix).all()
    assert len(set(batch.feature_names)) == 978
    obs = batch.obs
    assert set(obs["pert_iname"]) >= {"DMSO", "vemurafenib", "trametinib"} and (obs["cell_id"] == "A375").all()
    assert (obs.loc[obs["pert_iname"] == "DMSO", "pert_dose"].astype(float) == -666).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lincs_example.gctx"]


def test_lincs_example_written_in_blocks(tmp_path, monkeypatch):
    """A large file is generated a block at a time; the metadata pass (one gene) matches the matrix pass."""
    import archetool.examples as examples
    from archetool.data.readers.gctx import GctxSource

    monkeypatch.setattr(examples, "BLOCK", 7)
    path = examples.write_lincs_example(tmp_path / "big.gctx", signatures=30)
    batch = GctxSource(path).read()
    expected = [examples.lincs_block(s, min(7, 30 - s)) for s in range(0, 30, 7)]
    assert np.array_equal(batch.matrix, np.concatenate([b[0] for b in expected]))
    assert list(batch.ids) == [i for b in expected for i in b[1]] and len(set(batch.ids)) == 30
    assert np.allclose(batch.obs["pert_dose"].astype(float), np.concatenate([b[2]["pert_dose"] for b in expected]))


def test_lincs_example_too_few_signatures(tmp_path):
    one_error_line(run_cli("example", "lincs", tmp_path / "d", "--signatures", "5"), "--signatures 5", "at least 12")
    assert not (tmp_path / "d").exists()
