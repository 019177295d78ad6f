"""The SMILES alphabet of the molecule decoder: tokens, the saved vocabulary, the default choice, redrawing
sampled strings that are no molecule, and a whole fit/sample/archetypes run with ``--decoder smiles``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rdkit import Chem

from archetool.data.prepare import SMILES_FROM_MOLECULES, default_alphabet
from archetool.data.smiles_tokens import SmilesVocabulary, encode_molecules
from archetool.data.tokens import EOS, PAD, canonical_smiles, vocabulary_from_state
from conftest import MOLECULES, run_cli
from test_molecule_generation import FIT, _valid

# drug-like spellings: bracket atoms, charges, stereo, two-digit rings, Cl/Br, aromatic n/s/o
DRUGLIKE = ["CC(=O)Nc1ccc(O)cc1", "C[C@H](N)C(=O)O", "c1ccc2[nH]ccc2c1", "O=[N+]([O-])c1ccc(Cl)cc1",
            "Brc1cccs1", "CN1CCN(CC1)c1ncccc1", "C1CC2CCC3CCC4CCC5CCC6CCC1C1C2C3C4C5C61", "[2H]C([2H])([2H])O",
            "F/C=C/F", "Cc1nc(C)oc1C(=O)[O-].[Na+]"] + [s for s, _ in MOLECULES]


@given(st.sampled_from(DRUGLIKE))
@settings(max_examples=40, deadline=None)
def test_tokens_round_trip_and_count_heavy_atoms_as_rdkit(smiles):
    canonical = canonical_smiles(smiles)
    vocabulary = SmilesVocabulary.build([canonical_smiles(s) for s in DRUGLIKE])
    symbols = SmilesVocabulary.split(canonical)
    assert "".join(symbols) == canonical  # every character belongs to a token
    assert SmilesVocabulary.heavy_atom_count(symbols) == Chem.MolFromSmiles(canonical).GetNumHeavyAtoms()
    assert vocabulary.decode(vocabulary.encode([canonical])) == [canonical]


def test_bracket_atoms_and_two_letter_symbols_are_one_token():
    assert SmilesVocabulary.split("O=[N+]([O-])c1ccc(Br)cc1Cl") == [
        "O", "=", "[N+]", "(", "[O-]", ")", "c", "1", "c", "c", "c", "(", "Br", ")", "c", "c", "1", "Cl"]
    assert SmilesVocabulary.split("C%12CC%12") == ["C", "%12", "C", "C", "%12"]


def test_state_round_trips_through_json_and_old_states_are_selfies():
    vocabulary = SmilesVocabulary.build([canonical_smiles(s) for s in DRUGLIKE])
    state = json.loads(json.dumps(vocabulary.state()))
    assert state["kind"] == "smiles" and vocabulary_from_state(state) == vocabulary
    old = {"symbols": ["[C]", "[O]"], "max_length": 4}  # saved before the kind was written
    assert type(vocabulary_from_state(old)).__name__ == "SelfiesVocabulary"
    mask = vocabulary.atom_mask()
    starts = {vocabulary.symbols[i - 3] for i in np.flatnonzero(mask)}
    assert {"C", "c", "[nH]", "Br", "[N+]"} <= starts and not starts & {"(", ")", "1", "=", "%12", "."}


def test_a_string_that_is_no_molecule_decodes_to_none():
    vocabulary = SmilesVocabulary.build(["c1ccccc1", "CC(C)O"])
    index = {s: i + 3 for i, s in enumerate(vocabulary.symbols)}
    unclosed = [[index[t] for t in "c1cccc"] + [EOS]]  # an unclosed aromatic ring
    tokens = np.full((1, vocabulary.max_length + 1), PAD)
    tokens[0, : len(unclosed[0])] = unclosed[0]
    assert vocabulary.decode(tokens) == [None]
    assert encode_molecules(["CCO", "C1CC"]) == (["CCO", None], [None, "RDKit cannot parse the SMILES"])


def test_the_default_alphabet_follows_the_data_size():
    assert default_alphabet(SMILES_FROM_MOLECULES) == "smiles"
    assert default_alphabet(SMILES_FROM_MOLECULES - 1) == "selfies"


class _Scripted:
    """A decoder stub whose generate() hands out the given token rows in turn (one batch per call)."""

    def __init__(self, batches):
        self.batches, self.calls = list(batches), []

    def generate(self, condition, temperature, first_allowed=None):
        self.calls.append(len(condition))
        return torch.from_numpy(self.batches.pop(0)[: len(condition)])


def test_sampled_strings_that_are_no_molecule_are_drawn_again_at_their_point(monkeypatch):
    from archetool.analysis import generation

    vocabulary = SmilesVocabulary.build(["CCO", "c1ccccc1"])
    bad, good = vocabulary.encode(["c1cccc"])[0], vocabulary.encode(["CCO"])[0]  # c1cccc: no molecule
    bad[: 7] = [vocabulary.symbols.index(t) + 3 for t in "c1cccc"] + [EOS]
    stub = _Scripted([np.stack([bad]), np.stack([good])])
    counts = [0, 0]
    out = generation._redraw_invalid(stub, torch.zeros(3, 2), ["CC", None, "CCC"], vocabulary, None, 1.0, counts)
    assert out == ["CC", "CCO", "CCC"] and stub.calls == [1, 1] and counts == [1, 0]
    monkeypatch.setattr(generation, "REDRAW_ROUNDS", 2)
    stub = _Scripted([np.stack([bad])] * 2)
    counts = [0, 0]
    out = generation._redraw_invalid(stub, torch.zeros(1, 2), [None], vocabulary, None, 1.0, counts)
    assert out == [None] and counts == [1, 1]  # still none after the rounds: said, not hidden


def test_a_smiles_decoder_fit_generates_molecules(smi_file, tmp_path):
    out = tmp_path / "m"
    result = run_cli("fit", smi_file, "--side", "heat_capacity", "--decoder", "smiles", "--out", out, *FIT)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "preprocessing.json").read_text())["sequence"]["kind"] == "smiles"
    info = run_cli("info", out)
    assert "smiles (" in info.stdout
    result = run_cli("archetypes", out, "--out", tmp_path / "arch")
    assert result.exit_code == 0, result.output
    arch = pd.read_csv(tmp_path / "arch" / "archetypes.csv")
    assert len(arch) == 3 and _valid(arch["smiles"])  # greedy decodes: held to molecules by the size guard
    result = run_cli("sample", out, "--n", "20", "--seed", "2", "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "s.csv")
    drawn = table["smiles"].dropna()
    assert len(drawn) >= 15 and all(Chem.MolFromSmiles(s) is not None for s in drawn)


def test_fits_of_many_molecules_get_smiles_by_default(smi_file, tmp_path, monkeypatch):
    import archetool
    from archetool.data import prepare

    monkeypatch.setattr(prepare, "SMILES_FROM_MOLECULES", len(MOLECULES))  # the file has exactly this many
    options = dict(side=["heat_capacity"], k=3, n_bits=128, descriptors=False, epochs=2, batch_size=32, hidden=[32, 16],
                   progress_bar=False)
    model = archetool.fit(str(smi_file), out=str(tmp_path / "many"), **options)
    assert model.prep.sequence["kind"] == "smiles"
    monkeypatch.setattr(prepare, "SMILES_FROM_MOLECULES", len(MOLECULES) + 1)
    model = archetool.fit(str(smi_file), out=str(tmp_path / "few"), **options)
    assert model.prep.sequence["kind"] == "selfies"


def test_rows_left_without_a_molecule_are_one_warning_and_an_empty_cell(smi_file, tmp_path, monkeypatch, caplog):
    import archetool
    from archetool.analysis import generation

    model = archetool.fit(str(smi_file), out=str(tmp_path / "m"), side=["heat_capacity"], k=3, n_bits=128,
                          descriptors=False, epochs=2, batch_size=32, hidden=[32, 16], progress_bar=False,
                          decoder="smiles")
    monkeypatch.setattr(SmilesVocabulary, "string_to_smiles", staticmethod(lambda string: None))  # nothing parses
    monkeypatch.setattr(generation, "REDRAW_ROUNDS", 2)
    with caplog.at_level("INFO", logger="archetool"):
        table = model.sample(4, seed=1, temperature=1.0)
    assert table["smiles"].isna().all()
    lines = [r.getMessage() for r in caplog.records if "no molecule" in r.getMessage()]
    assert lines == ["4 of 4 sampled SMILES strings were no molecule and were drawn again at the same latent points",
                     "4 of 4 rows have no molecule after 3 draws at their latent point (their smiles column is empty): "
                     "points far from the training molecules; sample nearer them (the default --prior posterior) or "
                     "at a lower --temperature"]
