"""Conditioned generation (issue 18): the decoder's free latent, greedy decodes at the archetypes, sampling from
the aggregate posterior, targeted design (--target), re-predicted values and novelty against --reference."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from hypothesis import given, settings
from hypothesis import strategies as st

from archetool.data.selfies_tokens import EOS
from archetool.models.sequence_decoder import SequenceDecoder
from conftest import MOLECULES, run_cli
from test_molecule_generation import FIT, SMILES, _valid, mol_model  # noqa: F401 -- mol_model: a tiny deepaa model with a decoder


def test_free_latent_decoder_trains_generates_and_round_trips():
    torch.manual_seed(0)
    dec = SequenceDecoder(vocab_size=12, max_length=7, condition_dim=3, embedding_dim=8, hidden_dim=16, free_dim=4,
                          source_dim=6, word_dropout=0.2)
    cond, x = torch.randn(5, 3), torch.randn(5, 6)
    tokens = torch.tensor([[4, 5, 6, EOS, 0, 0, 0, 0]] * 5)
    loss = dec.loss(cond, tokens, x)
    loss.backward()
    assert torch.isfinite(loss) and dec.posterior[0].weight.grad is not None and dec.prior[0].weight.grad is not None
    dec.eval()
    plain = dec.loss(cond, tokens, x)
    ce_only = torch.nn.functional.cross_entropy(dec.logits(cond, tokens, dec._gaussian(dec.posterior(x))[0]).reshape(-1, 12),
                                                tokens.reshape(-1), ignore_index=0)
    assert plain > ce_only  # the KL term is added (>= 0)
    assert torch.equal(dec.generate(cond, 0.0), dec.generate(cond, 0.0))  # greedy: z at the prior mean
    out = dec.generate(cond, 1.0)
    assert ((out == EOS).sum(1) == 1).all()
    again = SequenceDecoder(**dec.settings())
    again.load_state_dict(dec.state_dict())
    with pytest.raises(ValueError, match="needs the source features"):
        dec.loss(cond, tokens)


def test_a_free_latent_fit_generates_and_does_not_pull_the_encoder(mol_model, tmp_path):
    import archetool

    assert archetool.load(mol_model).module.sequence_decoder.free_dim == 0  # the default: no free latent
    path = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": SMILES, "heat_capacity": [cv for _, cv in MOLECULES]}).to_csv(path, index=False)
    model = archetool.fit(str(path), side=["heat_capacity"], k=3, n_bits=128, descriptors=False, epochs=3, batch_size=32,
                          hidden=[32, 16], progress_bar=False, out=str(tmp_path / "m"), decoder_options={"free_dim": 4})
    dec = model.module.sequence_decoder
    assert dec.free_dim == 4 and dec.source_dim == model.module.n_features
    assert _valid(model.sample(5, seed=1)["smiles"]) and _valid(model.archetypes()["smiles"])
    batch = {"x": torch.randn(4, dec.source_dim), "side": torch.randn(4, 1), "tokens": torch.tensor([[3, 4, EOS, 0]] * 4)}
    model.module.train().zero_grad(set_to_none=True)
    model.module.loss_terms(batch)["tokens"].backward()
    assert all(p.grad is None for p in model.module.encoder.parameters())


def test_a_greedy_decode_at_every_archetype_is_a_valid_molecule(mol_model, tmp_path):
    result = run_cli("archetypes", mol_model, "--out", tmp_path / "arch")
    assert result.exit_code == 0, result.output
    arch = pd.read_csv(tmp_path / "arch" / "archetypes.csv")
    assert len(arch) == 3 and _valid(arch["smiles"])
    # the predicted value at the latent point and the decoded molecule's own, side by side
    cols = list(arch.columns)
    assert cols.index("repred_heat_capacity") == cols.index("pred_heat_capacity") + 1
    assert arch["repred_heat_capacity"].notna().all()


def test_posterior_prior_samples_the_training_rows_weights(mol_model):
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(mol_model)
    weights = model.training_rows[["a0", "a1", "a2"]].to_numpy()
    table = model.sample(20, seed=3)
    drawn = table[["a0", "a1", "a2"]].to_numpy()
    assert all(np.abs(weights - row).max(1).min() < 1e-6 for row in drawn)
    dirichlet = model.sample(20, seed=3, prior="dirichlet")[["a0", "a1", "a2"]].to_numpy()
    assert not all(np.abs(weights - row).max(1).min() < 1e-6 for row in dirichlet)


def test_target_returns_rows_sorted_by_distance_with_both_values(mol_model, tmp_path):
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(mol_model)
    goal = round(float(model.training_rows["pred_heat_capacity"].median()), 2)  # reachable by this tiny model
    out = tmp_path / "t.csv"
    result = run_cli("sample", mol_model, "--target", f"heat_capacity={goal}", "--n", "12", "--seed", "2", "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert {"smiles", "novel", "pred_heat_capacity", "repred_heat_capacity", "distance"} <= set(table.columns)
    assert len(table) == 12 and _valid(table["smiles"]) and table["sample"].tolist() == list(range(12))
    assert np.allclose(table["distance"], (table["repred_heat_capacity"] - goal).abs())
    assert table["distance"].is_monotonic_increasing
    api = model.sample(12, target={"heat_capacity": goal}, seed=2)
    assert api["smiles"].tolist() == table["smiles"].tolist()
    # the latent points chosen predict near the target: closer than the prior's points do
    prior = model.sample(200, seed=2)
    assert (api["pred_heat_capacity"] - goal).abs().mean() < (prior["pred_heat_capacity"] - goal).abs().mean()


def test_an_unreachable_target_gives_one_line(mol_model):
    result = run_cli("sample", mol_model, "--target", "heat_capacity=1000", "--n", "5")
    assert result.exit_code != 0
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in result.output
    assert re.fullmatch(r"error: --target heat_capacity=1000 is out of reach: the model predicts heat_capacity between "
                        r"[\d.]+ and [\d.]+ over 8192 points of the simplex and of the training rows; choose a target in "
                        r"that range", line), line


@pytest.mark.parametrize("target, message", [
    ("logp=3", "error: --target logp: not a side variable of this model (its side variables: heat_capacity)"),
    ("heat_capacity", "error: --target heat_capacity=: give SIDE=NUMBER, e.g. heat_capacity=3.5"),
    ("heat_capacity=high", "error: --target heat_capacity=high: give SIDE=NUMBER, e.g. heat_capacity=3.5"),
])
def test_bad_targets(mol_model, target, message):
    result = run_cli("sample", mol_model, "--target", target)
    assert result.exit_code != 0 and result.stderr.strip() == message


def test_target_with_archetype_is_refused(mol_model):
    result = run_cli("sample", mol_model, "--target", "heat_capacity=21", "--archetype", "a0")
    assert result.stderr.strip() == "error: --target chooses where to sample by itself; drop --label, --archetype and --weights"


def test_novel_against_a_reference_file(mol_model, tmp_path):
    base = pd.read_csv(_sample(mol_model, tmp_path, "plain.csv"))
    ref = tmp_path / "ref.smi"
    ref.write_text("smiles\n" + "\n".join(base["smiles"].tolist()) + "\n")
    table = pd.read_csv(_sample(mol_model, tmp_path, "ref.csv", "--reference", ref))
    assert table["smiles"].tolist() == base["smiles"].tolist() and not table["novel"].any()
    assert table["most_similar_id"].str.startswith("ref.smi:").all() and np.allclose(table["tanimoto"], 1.0)
    csv = tmp_path / "ref.csv"
    pd.DataFrame({"name": ["x"], "SMILES": [base["smiles"][0]]}).to_csv(csv, index=False)
    table = pd.read_csv(_sample(mol_model, tmp_path, "ref2.csv", "--reference", csv))
    assert table["novel"].tolist() == [s != base["smiles"][0] for s in table["smiles"]]


def _sample(mol_model, tmp_path, name, *args):
    out = tmp_path / name
    result = run_cli("sample", mol_model, "--n", "6", "--seed", "1", "--out", out, *args)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("content, message", [
    (None, "no such file; give a SMILES file (.smi) or a CSV with a smiles column"),
    ("name,value\nx,1\n", "no SMILES column (looked for smiles, SMILES, Smiles, canonical_smiles, CANONICAL_SMILES, "
                          "isomeric_smiles); name it smiles"),
    ("smiles\nxyz\nqq\n", "none of its 2 SMILES could be parsed by RDKit"),
])
def test_bad_reference(mol_model, tmp_path, content, message):
    ref = tmp_path / ("ref.csv" if content and "," in content else "ref.smi")
    if content is not None:
        ref.write_text(content)
    result = run_cli("sample", mol_model, "--n", "2", "--reference", ref)
    assert result.exit_code != 0 and result.stderr.strip() == f"error: --reference {ref}: {message}"


def test_target_on_a_class_model_says_why(tmp_path):
    path = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": SMILES, "has_o": ["O" if "O" in s else "none" for s in SMILES]}).to_csv(path, index=False)
    out = tmp_path / "svq"
    assert run_cli("fit", path, "--model", "svqvae", "--label", "has_o", "--out", out, *FIT).exit_code == 0
    result = run_cli("sample", out, "--target", "logp=2")
    assert result.stderr.strip() == ("error: --target logp: not a side variable of this model (its side variables: none: "
                                     "it was fitted without --side)")


def test_decoder_stage_trains_the_decoder_alone(mol_model):
    import json

    from archetool.model import ArchetoolModel
    from archetool.models.sequence_decoder import DecoderStage

    summary = json.loads((mol_model / "config.json").read_text())["summary"]
    assert 1 <= summary["decoder_epochs_run"] <= 4 and summary["decoder_val_tokens"] > 0
    module = ArchetoolModel.load(mol_model).module
    stage = DecoderStage(module).train()
    assert {id(p) for p in stage.parameters()} == {id(p) for p in module.sequence_decoder.parameters()}
    assert stage.decoder.training and not module.encoder.training
    batch = {"x": torch.randn(4, module.n_features), "side": torch.randn(4, 1), "tokens": torch.tensor([[3, 4, EOS, 0]] * 4)}
    terms = stage.loss_terms(batch)
    terms["loss"].backward()
    assert terms["loss"] is terms["tokens"] and all(p.grad is None for p in module.encoder.parameters())


def test_decoder_epochs_zero_skips_the_stage_and_trains_the_decoder_jointly(tmp_path):
    import json

    import pandas as pd

    path = tmp_path / "mols.smi"
    path.write_text("\n".join(["smiles id heat_capacity"] + [f"{s} m{i} {cv}" for i, (s, cv) in enumerate(MOLECULES)]) + "\n")
    result = run_cli("fit", path, "--side", "heat_capacity", "--decoder-epochs", "0", "--out", tmp_path / "m", *FIT)
    assert result.exit_code == 0, result.output
    assert "decoder_epochs_run" not in json.loads((tmp_path / "m" / "config.json").read_text())["summary"]
    assert not (tmp_path / "m" / "decoder_history.csv").exists()
    history = pd.read_csv(tmp_path / "m" / "history.csv")  # no stage of its own: it trained beside the main model
    assert history["val_tokens"].gt(0).all()


@pytest.mark.parametrize("read, extra", [("latent", 0), ("side", 2), ("decoded", 6 + 2)])
def test_decoder_reads_what_its_read_setting_names(read, extra):
    from archetool.models.deepaa import DeepAA

    torch.manual_seed(0)
    module = DeepAA(n_features=6, n_archetypes=3, n_side=2, hidden=[8])
    module.attach_sequence_decoder(vocab_size=9, max_length=5, embedding_dim=4, hidden_dim=8, read=read)
    dec = module.sequence_decoder
    assert dec.condition_dim == 2 + extra and dec.settings()["read"] == read
    t = torch.randn(4, 2)
    cond = module.sequence_condition(t)
    assert cond.shape == (4, 2 + extra) and torch.equal(cond[:, :2], t)
    if read != "latent":  # the side predictions last, the decoded features (model space) between
        assert torch.allclose(cond[:, -2:], module.predict_side(t))
    if read == "decoded":
        assert torch.allclose(cond[:, 2:8], module.decode(t))
    # the token loss does not pull on the main model through what the decoder reads
    batch = {"x": torch.randn(4, 6), "side": torch.randn(4, 2), "tokens": torch.tensor([[3, 4, EOS, 0]] * 4)}
    module.train().zero_grad(set_to_none=True)
    module.loss_terms(batch)["tokens"].backward()
    assert all(p.grad is None for p in [*module.encoder.parameters(), *module.decoder.parameters(), *module.side_head.parameters()])
    again = DeepAA(n_features=6, n_archetypes=3, n_side=2, hidden=[8])
    again.attach_sequence_decoder(**{k: v for k, v in dec.settings().items() if k != "condition_dim"})
    again.load_state_dict(module.state_dict())


def test_an_unknown_or_unavailable_read_is_refused():
    from archetool.models.nvae import NVAE

    with pytest.raises(ValueError, match="unknown decoder read 'features'"):
        SequenceDecoder(vocab_size=9, max_length=5, condition_dim=2, read="features")
    module = NVAE(n_features=6, n_classes=2, class_dim=2, shared_dim=2, hidden=[8])
    with pytest.raises(ValueError, match="decoder read 'side' is not available for this model"):
        module.attach_sequence_decoder(vocab_size=9, max_length=5, read="side")


def test_weight_based_samples_get_the_posterior_noise(mol_model):
    import json

    from archetool.analysis import adapter
    from archetool.model import ArchetoolModel

    summary = json.loads((mol_model / "config.json").read_text())["summary"]
    model = ArchetoolModel.load(mol_model)
    analysis = adapter("deepaa")
    # the training rows' median posterior sd, where the decoder was trained, at most the prior's scale
    assert summary["posterior_sd"] > 0
    assert analysis.noise_scale(model) == min(summary["posterior_sd"], model.module.prior_scale)
    model.config["summary"]["posterior_sd"] = 0.01
    assert analysis.noise_scale(model) == 0.01
    torch.manual_seed(4)
    at = analysis.sample(model, 300, weights=[1, 0, 0], molecules=None)["pred_heat_capacity"]
    model.config["summary"].pop("posterior_sd")  # a model saved before: the prior's scale
    assert analysis.noise_scale(model) == model.module.prior_scale
    torch.manual_seed(4)
    wide = analysis.sample(model, 300, weights=[1, 0, 0], molecules=None)["pred_heat_capacity"]
    assert at.std() < 0.2 * wide.std()


@given(st.sampled_from(SMILES + ["CC(C)(C)c1ccc(O)c(Br)c1", "O=C1CC2(CCN1)C1CC1C2", "C1CC2CCC1CC2.[Na+]", "[2H]C([2H])Cl"]))
@settings(max_examples=40, deadline=None)
def test_heavy_atom_count_of_selfies_symbols_is_rdkits(smiles):
    import selfies as sf
    from rdkit import Chem

    from archetool.data.selfies_tokens import heavy_atom_count

    assert heavy_atom_count(list(sf.split_selfies(sf.encoder(smiles)))) == Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()


def test_vocabulary_keeps_the_datas_size_range():
    import selfies as sf

    from archetool.data.selfies_tokens import SelfiesVocabulary

    vocabulary = SelfiesVocabulary.build([sf.encoder(s) for s in SMILES])
    sizes = sorted(Chem_heavy(s) for s in SMILES)
    assert vocabulary.heavy_atoms == (int(np.percentile(sizes, 5, method="nearest")), int(np.percentile(sizes, 95, method="nearest")))
    assert SelfiesVocabulary.from_state(vocabulary.state()) == vocabulary
    old = {k: v for k, v in vocabulary.state().items() if k != "heavy_atoms"}  # saved before: no guard
    assert SelfiesVocabulary.from_state(old).heavy_atoms is None


def Chem_heavy(smiles):
    from rdkit import Chem

    return Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()


class _StubDecoder:
    """generate: fixed candidate rows (4 per point and temperature); sequence_log_prob: their fixed values (the
    rows last generated)."""

    def __init__(self, tokens, logp):
        self.tokens, self.logp = tokens, logp  # both {(point, temperature): (4, ...)}

    def generate(self, condition, temperature, generator=None, first_allowed=None):
        assert temperature > 0 and condition.shape[0] == 4 and (condition == condition[:1]).all()
        self.last = int(condition[0, 0]), temperature
        return self.tokens[self.last]

    def sequence_log_prob(self, condition, tokens):
        assert torch.equal(tokens, self.tokens[self.last])
        return self.logp[self.last]


def _stub_ranked(monkeypatch, stages=((4, 0.5),)):
    """RankedSamples over a stub decoder, size range 3-6 heavy atoms. At temperature 0.5 point 0 draws 12, 2, 12,
    2 carbons and point 1 draws 4, 2, 5, 2 carbons (log-probabilities -9, -1, -5, -0.5); at temperature 1 point 0
    draws 2, 4, 6, 3 carbons (-7, -6, -2, -3) and point 1 the same as at 0.5."""
    import selfies as sf

    from archetool.analysis import generation
    from archetool.data.selfies_tokens import SelfiesVocabulary

    monkeypatch.setattr(generation, "SIZE_GUARD_STAGES", stages)
    candidates = {(0, 0.5): ["C" * 12, "CC", "C" * 12, "CC"],  # point 0: none inside 3-6 atoms
                  (1, 0.5): ["CCCC", "CC", "CCCCC", "CC"],     # point 1: CCCC and CCCCC inside; CCCCC more likely
                  (0, 1.0): ["CC", "CCCC", "C" * 6, "CCC"],    # point 0, hotter: three inside; C6 most likely
                  (1, 1.0): ["CCCC", "CC", "CCCCC", "CC"]}
    symbols = sorted({t for rows in candidates.values() for s in rows for t in sf.split_selfies(sf.encoder(s))})
    vocabulary = SelfiesVocabulary(symbols, 12, (3, 6))
    tokens = {key: torch.from_numpy(vocabulary.encode([sf.encoder(s) for s in rows])) for key, rows in candidates.items()}
    logp = {(0, 0.5): [-1.0, -2.0, -3.0, -4.0], (1, 0.5): [-9.0, -1.0, -5.0, -0.5],
            (0, 1.0): [-7.0, -6.0, -2.0, -3.0], (1, 1.0): [-9.0, -1.0, -5.0, -0.5]}
    stub = _StubDecoder(tokens, {key: torch.tensor(values) for key, values in logp.items()})
    return generation.RankedSamples(stub, vocabulary, None)


def test_greedy_decodes_outside_the_size_range_take_the_most_likely_sample_inside_it(monkeypatch):
    from archetool.analysis import generation

    ranked = _stub_ranked(monkeypatch)
    assert ranked.stage(torch.tensor([1.0, 0.0]), 0) == ["CC", "CCCCC", "CCCC"]  # molecules, most likely first, no repeats
    greedy = ["C" * 12, "C" * 14, "CCO"]  # 12 and 14 atoms: outside; CCO (3): inside, untouched
    counts = [0, 0]
    condition = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])  # the stub's point index in column 0
    out = generation._hold_to_size_range(ranked, condition, greedy, counts)
    assert out == ["C" * 12, "CCCCC", "CCO"] and counts == [2, 1]  # point 0: nothing inside, its greedy decode stays
    # the same point twice: drawn once, the same molecule (a decode depends on its point alone)
    out = generation._hold_to_size_range(ranked, condition[[1, 1]], ["C" * 14] * 2, [0, 0])
    assert out == ["CCCCC", "CCCCC"]


def test_a_hotter_stage_is_drawn_only_where_the_first_has_nothing_inside_the_size_range(monkeypatch):
    from archetool.analysis import generation

    ranked = _stub_ranked(monkeypatch, stages=((4, 0.5), (4, 1.0)))
    counts = [0, 0]
    condition = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    out = generation._hold_to_size_range(ranked, condition, ["C" * 12, "C" * 14], counts)
    # point 0: nothing inside at 0.5, so 1.0 is drawn and its most likely inside (C6, -2) taken; point 1: the first
    # stage has CCCCC, and its hotter stage is never drawn
    assert out == ["C" * 6, "CCCCC"] and counts == [2, 2]
    key = lambda point: condition[point].numpy().tobytes()
    assert len(ranked._cache[key(0)]) == 2 and len(ranked._cache[key(1)]) == 1
    assert generation._stage_words() == "4 samples at temperature 0.5, then 4 at 1"


def test_repeated_greedy_decodes_along_a_line_take_the_most_likely_new_molecule(monkeypatch):
    from archetool.analysis import generation

    ranked = _stub_ranked(monkeypatch)
    point = {0: torch.tensor([1.0, 0.0]), 1: torch.tensor([1.0, 0.0]), 2: torch.tensor([1.0, 0.0]),
             3: torch.tensor([0.0, 0.0]), 4: torch.tensor([0.0, 0.0])}
    counts = [0, 0]
    out = generation._make_distinct(ranked, point.__getitem__, ["CCCCC", "CCCCC", "CCCCC", None, "CCO"], counts)
    # row 1: CCCC, the most likely sample new to the set and inside 3-6 atoms (CC is more likely but outside);
    # row 2: no new molecule inside the range is left, the repeat stays; None and a first occurrence are untouched
    assert out == ["CCCCC", "CCCC", "CCCCC", None, "CCO"] and counts == [2, 1]
    # a row the size guard filled with a sample yields to a later row's own greedy decode of the same molecule
    counts = [0, 0]
    out = generation._make_distinct(ranked, point.__getitem__, ["CCCCC", "CCCCC"], counts, replaced={0})
    assert out == ["CCCC", "CCCCC"] and counts == [1, 1]


def test_interpolate_lines_and_grids_replace_repeats_only(mol_model, caplog):
    """On a real model: a line's decodes equal the plain greedy ones except at repeats, which become new molecules."""
    import logging

    from archetool.analysis import adapter, generation
    from archetool.analysis.deepaa import line_between
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(mol_model)
    codes = adapter("deepaa").codes(model)
    _, latent = line_between(codes[0], codes[2], 12)
    plain = generation.generate_smiles(model, latent)
    with caplog.at_level(logging.INFO, logger="archetool"):
        line = model.interpolate(start="a0", end="a2", steps=12)["smiles"].tolist()
    seen = set()
    for before, now in zip(plain, line):
        if before not in seen:
            assert now == before  # a first occurrence keeps its greedy decode
        elif now != before:
            assert now not in seen and Chem_heavy(now) > 0  # a replaced repeat is a new molecule
        seen.add(now)
    repeats = len(plain) - len(set(plain))
    assert len(set(line)) >= len(set(plain))
    assert (repeats > 0) == any("repeated an earlier point's molecule" in r.message for r in caplog.records)
    grid = model.interpolate(grid=3)
    plain_grid = generation.generate_smiles(model, grid[["a0", "a1", "a2"]].to_numpy() @ codes)
    assert grid["smiles"].nunique() >= len(set(plain_grid))
    # distinct=False (the CLI's --allow-repeats) keeps every greedy decode
    assert model.interpolate(start="a0", end="a2", steps=12, distinct=False)["smiles"].tolist() == plain


def test_interpolate_allow_repeats_keeps_the_greedy_decodes(mol_model, tmp_path):
    from archetool.analysis import adapter, generation
    from archetool.analysis.deepaa import line_between
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(mol_model)
    _, latent = line_between(*adapter("deepaa").codes(model)[[0, 1]], 12)
    out = tmp_path / "line.csv"
    result = run_cli("interpolate", mol_model, "--start", "a0", "--end", "a1", "--steps", "12", "--allow-repeats",
                     "--out", out)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["smiles"].tolist() == generation.generate_smiles(model, latent)


def test_target_returns_distinct_molecules_before_repeats(mol_model, monkeypatch):
    from archetool.analysis import generation
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(mol_model)
    goal = round(float(model.training_rows["pred_heat_capacity"].median()), 2)
    value = {"CCO": goal, "CCC": goal + 1.0, "CCCC": goal + 2.0}
    # every candidate decodes to one of three molecules, CCO (at the target) most often
    monkeypatch.setattr(generation, "generate_smiles",
                        lambda model, latent, labels=None, temperature=0.0: (["CCO"] * 8 + ["CCC", "CCCC"]) * (len(latent) // 10)
                        + ["CCO"] * (len(latent) % 10))
    monkeypatch.setattr(generation, "repredict",
                        lambda model, smiles: pd.DataFrame({"repred_heat_capacity": [value[s] for s in smiles]}))
    table = model.sample(5, target={"heat_capacity": goal}, seed=2)
    assert sorted(set(table["smiles"])) == ["CCC", "CCCC", "CCO"]  # not five copies of the nearest one
    assert table["distance"].is_monotonic_increasing and len(table) == 5


def test_set_decoder_settings_reach_the_decoder_and_a_wrong_one_is_one_line(tmp_path, mol_model):
    import json

    from archetool.models.sequence_decoder import FIT_DEFAULTS

    saved = json.loads((mol_model / "config.json").read_text())["hparams"]["sequence_decoder"]
    assert saved["hidden_dim"] == FIT_DEFAULTS["hidden_dim"] == 256
    assert saved["mix"] == 0.5 and saved["read"] == "decoded"  # deepaa's decoder defaults
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(["smiles id heat_capacity"] + [f"{s} m{i} {cv}" for i, (s, cv) in enumerate(MOLECULES)]) + "\n")
    result = run_cli("fit", path, "--side", "heat_capacity", "--set", "decoder.hidden_dim=24", "--set", "decoder.mix=0",
                     "--decoder-epochs", "1", "--out", tmp_path / "m", *FIT)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["hparams"]["sequence_decoder"]
    assert saved["hidden_dim"] == 24 and saved["mix"] == 0.0
    bad = run_cli("fit", path, "--set", "decoder.hidden=24", "--out", tmp_path / "b", *FIT)
    assert bad.exit_code != 0 and bad.stderr.strip() == (
        "error: unknown decoder setting 'hidden' (--set decoder.hidden=...); choose from embedding_dim, hidden_dim, "
        "condition_width, token_weight, free_dim, free_beta, word_dropout, read, dropout, mix")
    table = tmp_path / "t.csv"
    table.write_text("id,a,b\n" + "".join(f"r{i},{i % 7},{i % 5}\n" for i in range(40)))
    none = run_cli("fit", table, "--set", "decoder.hidden_dim=24", "--out", tmp_path / "t", *FIT)
    errors = [line for line in none.stderr.splitlines() if line.startswith("error:")]
    assert none.exit_code != 0 and len(errors) == 1 and "Traceback" not in none.stderr
    assert "decoder settings (hidden_dim) apply to a molecule model's sequence decoder" in errors[0]
    assert not (tmp_path / "b").exists() and not (tmp_path / "t" / "config.json").exists()
