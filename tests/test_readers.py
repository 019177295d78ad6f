"""Readers and featurisers: every format, chunking, gene matching, rejects."""

import gzip

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archetool.data.featurizers import GeneFeaturizer, MorganFeaturizer
from archetool.data.prepare import iter_inference_chunks, load_training_data
from archetool.data.readers import data_extension, open_source
from archetool.data.source import ReadOptions, concat_batches
from archetool.errors import InputError
from conftest import MOLECULES, make_adata, make_table


@pytest.mark.parametrize("name", ["t.csv", "t.tsv", "t.parquet", "t.csv.gz", "t.tsv.gz"])
def test_table_formats_read_the_same(tmp_path, name):
    frame = make_table(n=30)
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    source = open_source(path)
    batch = source.read()
    assert source.kind == "table" and source.id_column == "id"
    assert list(batch.ids) == frame["id"].tolist()
    np.testing.assert_allclose(batch.obs["f0"].to_numpy(), frame["f0"].to_numpy(), rtol=1e-6)
    chunks = list(source.iter_batches(7))
    assert [len(c) for c in chunks] == [7, 7, 7, 7, 2]
    assert [c.row_offset for c in chunks] == [0, 7, 14, 21, 28]
    assert list(concat_batches(chunks).ids) == list(batch.ids)


def test_data_extension_ignores_compression(tmp_path):
    from pathlib import Path

    assert data_extension(Path("a/b.CSV.gz")) == ".csv"
    assert data_extension(Path("x.smi")) == ".smi"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=30))
def test_csv_round_trip_of_numbers(tmp_path, rows):
    path = tmp_path / "r.csv"
    frame = pd.DataFrame(rows, columns=["a", "b"])
    frame.to_csv(path, index=False)
    data, prep = load_training_data(path)
    assert prep.featurizer["feature_names"] == ["a", "b"]
    restored = prep.unscale_x(data.x)
    np.testing.assert_allclose(restored, frame.to_numpy(np.float32), rtol=1e-4, atol=1e-3 * max(1.0, np.abs(frame.to_numpy()).max()))
    assert list(data.ids) == [str(i) for i in range(len(rows))]


def test_smiles_file_with_and_without_header(tmp_path, smi_file):
    source = open_source(smi_file)
    batch = source.read()
    assert source.kind == "molecules" and source.id_column == "id"
    assert batch.ids[0] == "m0" and batch.obs["heat_capacity"].dtype.kind == "f"
    bare = tmp_path / "bare.smi"
    bare.write_text("CCO ethanol\nc1ccccc1 benzene\n")
    b = open_source(bare).read()
    assert list(b.obs["smiles"]) == ["CCO", "c1ccccc1"] and list(b.obs["name"]) == ["ethanol", "benzene"]
    gz = tmp_path / "mols.smi.gz"
    gz.write_bytes(gzip.compress(smi_file.read_bytes()))
    assert list(open_source(gz).read().ids) == list(batch.ids)


def test_sdf_properties_become_columns(tmp_path):
    from rdkit import Chem

    path = tmp_path / "m.sdf"
    writer = Chem.SDWriter(str(path))
    for i, (smi, cv) in enumerate(MOLECULES[:5]):
        mol = Chem.MolFromSmiles(smi)
        mol.SetProp("_Name", f"mol{i}")
        mol.SetDoubleProp("heat_capacity", cv)
        writer.write(mol)
    writer.close()
    source = open_source(path)
    batch = source.read()
    assert source.kind == "molecules" and list(batch.ids) == [f"mol{i}" for i in range(5)]
    np.testing.assert_allclose(batch.obs["heat_capacity"], [cv for _, cv in MOLECULES[:5]])
    data, prep = load_training_data(path, side=["heat_capacity"])
    assert data.x.shape[0] == 5 and prep.likelihood == "mixed:2048"
    bits, _ = load_training_data(path, featurizer_options={"descriptors": False})
    assert bits.x.shape == (5, 2048)


@pytest.mark.parametrize("sparse", [False, True])
def test_h5ad_dense_sparse_and_layer(tmp_path, sparse):
    adata = make_adata(n=20, genes=6, sparse=sparse)
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    dense = adata.X.toarray() if sparse else adata.X
    batch = open_source(path).read()
    got = batch.matrix.toarray() if hasattr(batch.matrix, "toarray") else batch.matrix
    np.testing.assert_allclose(got, dense)
    assert list(batch.ids) == list(adata.obs_names) and "cell_type" in batch.obs
    layer = open_source(path, ReadOptions(layer="counts")).read().matrix
    np.testing.assert_allclose(np.asarray(layer.todense() if hasattr(layer, "todense") else layer), adata.layers["counts"])
    chunks = list(open_source(path).iter_batches(8))
    assert [len(c) for c in chunks] == [8, 8, 4]


def test_genes_are_matched_by_name_not_position(tmp_path):
    adata = make_adata(n=12, genes=5)
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    data, prep = load_training_data(path)
    shuffled = adata[:, ["GENE3", "GENE0", "GENE4", "GENE2", "GENE1"]].copy()
    shuffled.var_names = list(shuffled.var_names)
    extra = ad.AnnData(np.hstack([shuffled.X, np.ones((12, 1), np.float32)]), obs=shuffled.obs,
                       var=pd.DataFrame(index=list(shuffled.var_names) + ["EXTRA"]))
    path2 = tmp_path / "b.h5ad"
    extra.write_h5ad(path2)
    (chunk,) = list(iter_inference_chunks(path2, prep))
    np.testing.assert_allclose(chunk.x, data.x, rtol=1e-5, atol=1e-6)


def test_gene_featurizer_reports_missing_genes():
    from archetool.data.source import RawBatch

    feat = GeneFeaturizer(["A", "B", "C"])
    batch = RawBatch(ids=np.array(["x"]), obs=pd.DataFrame(index=[0]), matrix=np.ones((1, 2), np.float32), feature_names=["A", "C"])
    with pytest.raises(InputError, match="lacks 1 of the model's 3 genes.*B"):
        feat.transform(batch, "new.h5ad")


def test_morgan_options_and_invalid_smiles(tmp_path):
    from archetool.data.source import RawBatch

    frame = pd.DataFrame({"smiles": ["CCO", "not_a_smiles", "c1ccccc1", ""]})
    batch = RawBatch(ids=np.array(["a", "b", "c", "d"]), obs=frame)
    bits = MorganFeaturizer(radius=1, n_bits=64, descriptors=False).transform(batch, "x")
    assert bits.x.shape == (2, 64) and set(np.unique(bits.x)) <= {0.0, 1.0}
    assert list(bits.valid) == [True, False, True, False]
    assert [i for i, _ in bits.rejects] == [1, 3]
    counts = MorganFeaturizer(n_bits=128, counts=True, descriptors=True)
    feats = counts.transform(batch, "x")
    assert feats.x.shape[1] == len(counts.feature_names) > 128 and counts.likelihood == "gaussian"
    assert feats.x[:, :128].max() > np.log1p(1.0) - 1e-6  # log1p counts, some > 1 bit


def test_invalid_smiles_are_rejected_with_rows_and_ids_stay_aligned(tmp_path):
    path = tmp_path / "m.smi"
    path.write_text("smiles id cv\nCCO a 1.0\nC1CC b 2.0\nCCC c 3.0\nxyz d 4.0\nCCCC e 5.0\n")
    data, _ = load_training_data(path, side=["cv"])
    assert list(data.ids) == ["a", "c", "e"]
    np.testing.assert_allclose(data.side_raw[:, 0], [1.0, 3.0, 5.0])
    assert data.rejects.to_dict("list") == {"row": [2, 4], "id": ["b", "d"], "smiles": ["C1CC", "xyz"],
                                            "reason": ["RDKit cannot parse the SMILES"] * 2}
