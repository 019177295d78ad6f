"""De novo molecules: SELFIES tokens, the sequence decoder, generation from sample/interpolate/archetypes, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archetool.data.selfies_tokens import EOS, PAD, SelfiesVocabulary, canonical_smiles, encode_molecules
from archetool.models.sequence_decoder import SequenceDecoder
from conftest import FAST_FIT, MOLECULES, run_cli

SMILES = [s for s, _ in MOLECULES]
FIT = ("--k", "3", "--n-bits", "128", "--no-descriptors", *FAST_FIT)


def _vocab():
    selfies, reasons = encode_molecules(SMILES)
    assert all(r is None for r in reasons)
    return SelfiesVocabulary.build(selfies), selfies


# --- tokens ---------------------------------------------------------------------------------------
@given(st.sampled_from(SMILES))
@settings(max_examples=30, deadline=None)
def test_tokens_round_trip_to_the_same_canonical_molecule(smiles):
    vocabulary, _ = _vocab()
    (selfies,), _ = encode_molecules([smiles])
    tokens = vocabulary.encode([selfies])
    assert tokens.dtype == np.int64 and tokens.shape == (1, vocabulary.max_length + 1)
    assert vocabulary.decode(tokens) == [canonical_smiles(smiles)]


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_any_token_sequence_that_starts_with_an_atom_is_a_valid_molecule(data):
    vocabulary, _ = _vocab()
    atoms = np.flatnonzero(vocabulary.atom_mask()).tolist()
    first = data.draw(st.sampled_from(atoms))
    rest = data.draw(st.lists(st.integers(3, vocabulary.size - 1), max_size=vocabulary.max_length - 1))
    tokens = np.array([[first, *rest, EOS]])
    (smiles,) = vocabulary.decode(tokens)
    assert smiles is not None and canonical_smiles(smiles) == smiles


def test_vocabulary_state_round_trips_and_pads():
    vocabulary, selfies = _vocab()
    again = SelfiesVocabulary.from_state(json.loads(json.dumps(vocabulary.state())))
    tokens = again.encode(selfies)
    assert (tokens == vocabulary.encode(selfies)).all()
    ends = (tokens == EOS).argmax(1)
    assert all((row[e + 1:] == PAD).all() and (row[:e] > EOS).all() for row, e in zip(tokens, ends))


def test_smiles_that_selfies_cannot_encode_get_a_reason():
    selfies, reasons = encode_molecules(["CCO", "C*C", "xyz"])
    assert selfies[0] and selfies[1] is None and selfies[2] is None
    assert reasons[1].startswith("SELFIES cannot encode it") and reasons[2] == "RDKit cannot parse the SMILES"


# --- decoder --------------------------------------------------------------------------------------
def test_decoder_shapes_loss_and_generation():
    torch.manual_seed(0)
    dec = SequenceDecoder(vocab_size=12, max_length=7, condition_dim=3, embedding_dim=8, hidden_dim=16)
    cond = torch.randn(5, 3)
    tokens = torch.tensor([[4, 5, 6, EOS, 0, 0, 0, 0]] * 5)
    assert dec.logits(cond, tokens).shape == (5, 8, 12)
    loss = dec.loss(cond, tokens)
    assert loss.ndim == 0 and torch.isfinite(loss)
    for temperature in (0.0, 1.0):
        out = dec.generate(cond, temperature)
        assert out.shape == (5, 8)
        assert ((out == EOS).sum(1) == 1).all() and (out[:, 0] > EOS).all()  # one end token, never empty
    assert torch.equal(dec.generate(cond, 0.0), dec.generate(cond, 0.0))  # greedy is deterministic
    first = torch.zeros(12, dtype=torch.bool)
    first[7] = True
    assert (dec.generate(cond, 1.0, first_allowed=first)[:, 0] == 7).all()


def test_decoder_dropout_acts_in_training_only_and_is_saved():
    torch.manual_seed(0)
    cond, tokens = torch.randn(6, 3), torch.tensor([[4, 5, 6, EOS, 0, 0, 0, 0]] * 6)
    dec = SequenceDecoder(vocab_size=12, max_length=7, condition_dim=3, embedding_dim=8, hidden_dim=16, dropout=0.5)
    assert SequenceDecoder(**dec.settings()).dropout == 0.5
    dec.train()
    assert not torch.equal(dec.logits(cond, tokens), dec.logits(cond, tokens))  # a fresh mask each call
    dec.eval()
    assert torch.equal(dec.logits(cond, tokens), dec.logits(cond, tokens))
    plain = SequenceDecoder(vocab_size=12, max_length=7, condition_dim=3, embedding_dim=8, hidden_dim=16).train()
    assert plain.dropout == 0.0 and torch.equal(plain.logits(cond, tokens), plain.logits(cond, tokens))


@pytest.mark.parametrize("kind", ["deepaa", "nvae", "svqvae"])
def test_training_adds_the_tokens_term_without_pulling_on_the_encoder(kind):
    from archetool.models import build_model

    hp = {"deepaa": dict(n_archetypes=3, n_side=1), "nvae": dict(n_classes=2), "svqvae": dict(n_classes=2)}[kind]
    module = build_model(kind, n_features=6, hidden=[8], **hp,
                         sequence_decoder=dict(vocab_size=10, max_length=5, embedding_dim=4, hidden_dim=8))
    batch = {"x": torch.randn(4, 6), "side": torch.randn(4, 1), "label": torch.tensor([0, 1, 0, 1]),
             "tokens": torch.tensor([[3, 4, EOS, 0, 0, 0]] * 4)}
    terms = module.loss_terms(batch)
    assert "tokens" in terms and terms["tokens"] > 0
    terms["tokens"].backward()
    assert all(p.grad is None for p in module.encoder.parameters())
    assert any(p.grad is not None for p in module.sequence_decoder.parameters())
    again = type(module).from_hparams(module.full_hparams())
    again.load_state_dict(module.state_dict())


# --- end to end -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mol_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    path = tmp / "mols.smi"
    lines = ["smiles id heat_capacity"] + [f"{s} m{i} {cv}" for i, (s, cv) in enumerate(MOLECULES)] + ["C*C odd 10.0"]
    path.write_text("\n".join(lines) + "\n")
    out = tmp / "model"
    result = run_cli("fit", path, "--side", "heat_capacity", "--out", out, *FIT)
    assert result.exit_code == 0, result.output
    return out


def _valid(smiles) -> bool:
    return all(isinstance(s, str) and canonical_smiles(s) == s for s in smiles)


def test_fit_rejects_what_selfies_cannot_encode_and_saves_the_vocabulary(mol_model):
    rejects = pd.read_csv(mol_model / "rejects.csv")
    assert rejects["id"].tolist() == ["odd"] and rejects["reason"][0].startswith("SELFIES cannot encode it")
    prep = json.loads((mol_model / "preprocessing.json").read_text())
    assert prep["sequence"]["max_length"] >= 4 and "[C]" in prep["sequence"]["symbols"]
    # the decoder trains in a stage of its own (decoder_history.csv), not beside the main model (history.csv)
    assert not {"train_tokens", "val_tokens"} & set(pd.read_csv(mol_model / "history.csv").columns)
    decoder = pd.read_csv(mol_model / "decoder_history.csv")
    assert {"train_tokens", "val_tokens"} <= set(decoder.columns) and decoder["val_tokens"].gt(0).all()


def test_sample_writes_new_molecules_and_metrics(mol_model, tmp_path):
    out = tmp_path / "s.csv"
    result = run_cli("sample", mol_model, "--n", "12", "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns[:6]) == ["sample", "smiles", "novel", "most_similar_id", "most_similar_smiles", "tanimoto"]
    assert _valid(table["smiles"]) and table["tanimoto"].between(0, 1).all()
    known = {canonical_smiles(s) for s in SMILES}
    assert (table["novel"] == ~table["smiles"].isin(known)).all()
    assert {"a0", "pred_heat_capacity", "nearest_id_1"} <= set(table.columns)
    metrics = json.loads((tmp_path / "s.metrics.json").read_text())
    assert metrics["generated"] == 12 and metrics["validity"] == 1.0
    assert {"uniqueness", "novelty", "internal_diversity", "mean_heavy_atoms"} <= set(metrics)
    assert "validity 1.000" in result.stderr


def test_sample_near_an_archetype_and_at_weights(mol_model, tmp_path):
    out = tmp_path / "a.csv"
    assert run_cli("sample", mol_model, "--n", "6", "--archetype", "a1", "--spread", "0", "--out", out).exit_code == 0
    table = pd.read_csv(out)
    assert np.allclose(table["a1"], 1.0) and _valid(table["smiles"])
    assert run_cli("sample", mol_model, "--n", "3", "--weights", "0.2,0.3,0.5", "--temperature", "0", "--out", out).exit_code == 0
    table = pd.read_csv(out)
    assert np.allclose(table[["a0", "a1", "a2"]].to_numpy(), [0.2, 0.3, 0.5], atol=1e-6)
    assert table["smiles"].nunique() == 1  # temperature 0: no noise, greedy tokens


def test_python_api_sample_is_the_cli_table(mol_model, tmp_path):
    from archetool.model import ArchetoolModel

    table = ArchetoolModel.load(mol_model).sample(5, seed=4)
    out = tmp_path / "s.csv"
    run_cli("sample", mol_model, "--n", "5", "--seed", "4", "--out", out)
    assert table["smiles"].tolist() == pd.read_csv(out)["smiles"].tolist()
    assert table.attrs["generation"]["generated"] == 5


def test_interpolate_and_archetypes_add_smiles(mol_model, tmp_path):
    out = tmp_path / "i.csv"
    assert run_cli("interpolate", mol_model, "--start", "a0", "--end", "a2", "--steps", "4", "--out", out).exit_code == 0
    table = pd.read_csv(out)
    assert list(table.columns[:2]) == ["step", "smiles"] and _valid(table["smiles"])
    result = run_cli("archetypes", mol_model, "--out", tmp_path / "arch")
    assert result.exit_code == 0, result.output
    arch = pd.read_csv(tmp_path / "arch" / "archetypes.csv")
    assert list(arch["archetype"]) == ["a0", "a1", "a2"] and _valid(arch["smiles"])
    assert (tmp_path / "arch" / "generated.png").stat().st_size > 10_000


def test_class_models_generate_per_class(tmp_path):
    path = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": SMILES, "has_o": ["O" if "O" in s or "o" in s else "none" for s in SMILES]}).to_csv(path, index=False)
    for kind in ("nvae", "svqvae"):
        out = tmp_path / kind
        assert run_cli("fit", path, "--model", kind, "--label", "has_o", "--out", out, *FIT).exit_code == 0
        s = tmp_path / f"{kind}.csv"
        assert run_cli("sample", out, "--n", "4", "--label", "O", "--out", s).exit_code == 0
        table = pd.read_csv(s)
        assert (table["has_o"] == "O").all() and _valid(table["smiles"])
        result = run_cli("sample", out, "--archetype", "a0")
        assert result.exit_code != 0
        assert result.stderr.strip() == (f"error: --archetype applies to deepaa models (points of the archetype simplex); "
                                         f"this model is {kind}: choose a class with --label")
    assert run_cli("archetypes", tmp_path / "nvae", "--out", tmp_path / "na").exit_code == 0
    assert _valid(pd.read_csv(tmp_path / "na" / "archetypes.csv")["smiles"])
    assert (tmp_path / "na" / "generated.png").is_file()


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (("--archetype", "a9"), "error: --archetype a9: this model has k=3 archetypes, a0..a2"),
    (("--weights", "0.5,-0.2,0.7"), "error: --weights -0.2: weights must be >= 0 (a point of the simplex)"),
    (("--weights", "0.5,0.2,0.2"), "error: --weights sum to 0.9; they must sum to 1 (a point of the simplex)"),
    (("--weights", "0.5,0.5"), "error: --weights has 2 values but the model has k=3 archetypes; give 3 weights that sum to 1"),
    (("--weights", "half,half"), "error: --weights 'half,half': give comma-separated numbers, e.g. 0.7,0.1,0.1,0.1"),
    (("--weights", "0.5,0.5,0", "--archetype", "a0"), "error: --archetype and --weights both choose where to sample; give one of them"),
    (("--archetype", "a0", "--spread", "2"), "error: --spread 2.0: must be between 0 (at the archetype) and 1 (anywhere in the simplex)"),
])
def test_bad_sample_options(mol_model, args, message):
    result = run_cli("sample", mol_model, "--n", "2", *args)
    assert result.exit_code != 0 and result.stderr.strip() == message


@pytest.mark.parametrize("alphabet", ["selfies", "smiles"])
def test_decoder_on_table_data(table_csv, tmp_path, alphabet):
    result = run_cli("fit", table_csv, "--decoder", alphabet, "--out", tmp_path / "m", *FAST_FIT)
    assert result.exit_code != 0
    assert result.stderr.strip() == (f"error: {table_csv}: --decoder {alphabet} generates molecules and needs molecule data "
                                     "(.smi, .sdf or a table with a SMILES column), but this is table data; use --decoder none")


def test_unknown_decoder(table_csv, tmp_path):
    result = run_cli("fit", table_csv, "--decoder", "inchi", "--out", tmp_path / "m", *FAST_FIT)
    assert result.exit_code != 0
    assert result.stderr.strip() == "error: --decoder 'inchi' is unknown; choose smiles or selfies (generate molecules) or none"


def test_sample_without_decoder_says_why(smi_file, tmp_path):
    out = tmp_path / "plain"
    assert run_cli("fit", smi_file, "--side", "heat_capacity", "--decoder", "none", "--out", out, *FIT).exit_code == 0
    assert "sequence" not in json.loads((out / "config.json").read_text())["hparams"]
    s = tmp_path / "s.csv"
    result = run_cli("sample", out, "--n", "3", "--out", s)
    assert result.exit_code == 0
    table = pd.read_csv(s)
    assert "smiles" not in table.columns and "nearest_smiles_1" in table.columns
    assert "no new molecules were generated: the model was fitted with --decoder none" in result.stderr
    assert not (tmp_path / "s.metrics.json").exists()
