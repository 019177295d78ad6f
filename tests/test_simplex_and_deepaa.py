"""Maths invariants of the fixed simplex and the deepaa module."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archetool.models.deepaa import DeepAA
from archetool.models.simplex import barycentric_grid, simplex_vertices


@given(st.integers(min_value=2, max_value=12))
def test_simplex_vertices_are_regular_and_centred(k):
    z = simplex_vertices(k).double()
    assert z.shape == (k, k - 1)
    assert torch.allclose(z.norm(dim=1), torch.ones(k, dtype=torch.float64), atol=1e-5)
    gram = z @ z.T
    off = gram[~torch.eye(k, dtype=bool)]
    assert torch.allclose(off, torch.full_like(off, -1.0 / (k - 1)), atol=1e-5)
    assert torch.allclose(z.sum(0), torch.zeros(k - 1, dtype=torch.float64), atol=1e-5)


def test_simplex_needs_two_vertices():
    with pytest.raises(ValueError):
        simplex_vertices(1)


@given(st.integers(2, 5), st.integers(1, 4))
def test_barycentric_grid_rows_are_convex_weights(k, steps):
    grid = barycentric_grid(k, steps)
    assert torch.allclose(grid.sum(1), torch.ones(len(grid)))
    assert (grid >= 0).all()
    assert len(grid) == len({tuple(r.tolist()) for r in grid})  # no duplicates


@settings(deadline=None, max_examples=20)
@given(st.integers(2, 6), st.integers(2, 40), st.integers(0, 10_000), st.sampled_from(["sparsemax", "softmax", "entmax15"]))
def test_mixture_weights_sum_to_one(k, n, seed, activation):
    torch.manual_seed(seed)
    model = DeepAA(n_features=7, n_archetypes=k, n_side=1, hidden=(16,), weights_activation=activation)
    enc = model.encode(torch.randn(n, 7) * 5)
    assert torch.allclose(enc["A"].sum(1), torch.ones(n), atol=1e-5)  # each sample: convex mix of archetypes
    assert torch.allclose(enc["B"].sum(1), torch.ones(k), atol=1e-5)  # each archetype: convex mix of the batch
    assert (enc["A"] >= 0).all() and (enc["B"] >= 0).all()
    assert torch.allclose(enc["mu"], enc["A"] @ model.Z, atol=1e-6)
    assert (enc["sigma"] > 0).all()


def test_archetypes_are_fixed_buffers_not_parameters():
    model = DeepAA(n_features=5, n_archetypes=4)
    assert "Z" not in dict(model.named_parameters())
    assert "Z" in model.state_dict()


def test_archetype_loss_is_zero_when_batch_holds_the_vertices():
    model = DeepAA(n_features=3, n_archetypes=3)
    weights = torch.eye(3)  # three samples sitting on the three vertices
    assert float(model.archetype_loss(weights, torch.eye(3))) == pytest.approx(0.0, abs=1e-10)
    centre = torch.full((3, 3), 1 / 3)  # all samples at the centre: vertices cannot be rebuilt
    assert float(model.archetype_loss(centre, torch.eye(3))) == pytest.approx(float((model.Z**2).mean()), rel=1e-5)


def test_beta_is_annealed_geometrically_from_start_to_end():
    model = DeepAA(n_features=3, n_archetypes=3, beta_start=8.0, beta_end=0.5, anneal_fraction=0.5,
                   crowding_start=0.0, crowding_ramp=0.0)  # the crowding ramp would lengthen the warm-up (own test)
    betas = []
    for epoch in range(21):
        model.on_epoch_start(epoch, 21)
        betas.append(model.beta)
    assert betas[0] == pytest.approx(8.0)
    assert betas[10] == pytest.approx(0.5) and betas[-1] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(betas, betas[1:]))
    ratios = [a / b for a, b in zip(betas[:10], betas[1:11])]
    assert max(ratios) == pytest.approx(min(ratios))  # divided by a constant factor each epoch
    assert model.annealing_epochs(21) == 10


@pytest.mark.parametrize("prior", ["normal", "dirichlet"])
def test_loss_terms_finite_and_kl_nonnegative_on_average(prior):
    torch.manual_seed(0)
    model = DeepAA(n_features=6, n_archetypes=3, n_side=2, hidden=(16,), prior=prior, prior_samples=256)
    batch = {"x": torch.randn(64, 6), "side": torch.randn(64, 2)}
    terms = model.loss_terms(batch)
    assert set(terms) >= {"loss", "recon", "kl", "archetype", "side"}
    assert all(torch.isfinite(v) for v in terms.values())
    if prior == "normal":
        assert float(terms["kl"]) >= 0


def test_dirichlet_kl_matches_its_definition_in_one_dimension():
    """k=2: d=1, the prior is a continuous mixture of N(a*z, s^2); compare the MC KL with numerical integration."""
    torch.manual_seed(0)
    model = DeepAA(n_features=2, n_archetypes=2, prior="dirichlet", prior_scale=0.3, prior_samples=20000)
    mu, sigma = torch.tensor([[0.2]]), torch.tensor([[0.1]])
    ts = mu + sigma * torch.randn(4000, 1)
    mc = model.kl(ts, mu.expand(4000, 1), sigma.expand(4000, 1)).mean()
    grid = torch.linspace(-3, 3, 6001).unsqueeze(1)
    q = torch.distributions.Normal(mu, sigma).log_prob(grid).exp().squeeze()
    z = model.Z.squeeze()  # the two vertices at -1 and +1
    a = torch.linspace(0, 1, 2001)  # Dir(1,1) on k=2 is uniform on the segment
    centres = a * z[0] + (1 - a) * z[1]
    p = torch.distributions.Normal(centres, 0.3).log_prob(grid).exp().mean(1)
    exact = torch.trapezoid(q * (torch.log(q + 1e-30) - torch.log(p + 1e-30)), grid.squeeze())
    assert float(mc) == pytest.approx(float(exact), abs=0.05)


def test_training_recovers_side_signal_and_fills_the_simplex():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, k = 512, 3
    weights = rng.dirichlet(np.full(k, 0.5), size=n)
    x = torch.tensor(weights @ rng.normal(size=(k, 12)) * 2, dtype=torch.float32)
    side = torch.tensor((weights @ np.array([0.0, 1.0, 3.0]))[:, None], dtype=torch.float32)
    side = (side - side.mean()) / side.std()
    model = DeepAA(n_features=12, n_archetypes=k, n_side=1, hidden=(64, 32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = {"x": (x - x.mean(0)) / x.std(0), "side": side}
    first = None
    for epoch in range(300):
        model.on_epoch_start(epoch, 300)
        terms = model.loss_terms(batch)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        first = first if first is not None else {k: float(v) for k, v in terms.items()}
    out = model.embed(batch["x"])
    r2 = 1 - float(((out["side"] - side) ** 2).mean() / side.var())
    assert r2 > 0.8
    assert float(model.archetype_loss(*[model.encode(batch["x"])[key] for key in ("A", "B")])) < first["archetype"] / 3
    assert out["weights"].max(0).values.min() > 0.7  # every archetype has samples close to it


def test_hparams_rebuild_the_same_module():
    model = DeepAA(n_features=9, n_archetypes=5, n_side=2, hidden=[20, 10], prior="dirichlet", likelihood="bernoulli")
    clone = DeepAA(**model.hparams())
    clone.load_state_dict(model.state_dict())
    x = (torch.rand(4, 9) > 0.5).float()
    assert torch.allclose(model.embed(x)["z"], clone.embed(x)["z"])


def test_sparsemax_weights_reach_a_vertex_exactly_softmax_only_approaches_it():
    logits = torch.tensor([[4.0, 0.0, -1.0], [0.3, 0.2, 0.1]])
    for activation, exact in (("sparsemax", True), ("softmax", False)):
        model = DeepAA(n_features=3, n_archetypes=3, hidden=(3,), weights_activation=activation)
        with torch.no_grad():  # route the logits straight through the A head
            model.encoder = torch.nn.Identity()
            model.weights_head = torch.nn.Linear(3, 3)
            model.weights_head.weight.copy_(torch.eye(3))
            model.weights_head.bias.zero_()
        weights = model.encode(logits)["A"]
        assert torch.allclose(weights.sum(1), torch.ones(2))
        assert (float(weights[0, 0]) == 1.0) is exact  # a finite logit gap puts sparsemax on the vertex
        assert (weights[1] > 0).all()  # close logits: an interior mixture either way


def test_unknown_weights_activation_is_refused():
    with pytest.raises(ValueError, match="weights_activation"):
        DeepAA(n_features=3, n_archetypes=3, weights_activation="relu")


def test_configs_saved_before_an_option_existed_rebuild_what_they_were_trained_with():
    old = DeepAA(n_features=6, n_archetypes=3, hidden=[8], weights_activation="softmax", likelihood_variance="learned")
    hparams = old.hparams()
    del hparams["weights_activation"], hparams["likelihood_variance"]  # a config.json from before they existed
    del hparams["crowding_weight"], hparams["crowding_margin"]
    del hparams["crowding_start"], hparams["crowding_ramp"], hparams["crowding_detach"]
    rebuilt = DeepAA.from_hparams(hparams)
    assert rebuilt.weights_activation == "softmax" and rebuilt.likelihood_variance == "learned"
    assert rebuilt.crowding_weight == 0.0  # trained without the crowding penalty
    rebuilt.load_state_dict(old.state_dict())
    x = torch.randn(5, 6)
    assert torch.allclose(old.embed(x)["weights"], rebuilt.embed(x)["weights"])
    new = DeepAA.from_hparams(DeepAA(n_features=6, n_archetypes=3).hparams())
    assert new.weights_activation == "sparsemax" and new.crowding_weight == 10000.0 and new.crowding_margin == 0.98
    assert (new.crowding_start, new.crowding_ramp, new.crowding_detach) == (0.5, 0.2, False)


def test_models_saved_with_the_penalty_from_the_first_epoch_rebuild_with_it():
    """A config.json written between issue 10 and issue 17 has crowding_weight but no schedule: it was trained with the
    penalty on from epoch 0, and a resumed or rebuilt model keeps that."""
    hparams = DeepAA(n_features=6, n_archetypes=3, hidden=[8]).hparams()
    del hparams["crowding_start"], hparams["crowding_ramp"], hparams["crowding_detach"]
    rebuilt = DeepAA.from_hparams(hparams)
    assert rebuilt.crowding_weight == 10000.0 and (rebuilt.crowding_start, rebuilt.crowding_ramp) == (0.0, 0.0)
    assert rebuilt.crowding_schedule(0, 100) == 1.0 and rebuilt.crowding_scale == 1.0
    assert rebuilt.annealing_epochs(100) == DeepAA(n_features=6, n_archetypes=3, crowding_weight=0).annealing_epochs(100)


def test_embed_equals_the_encoder_outputs_without_the_training_heads():
    import torch

    from archetool.models import build_model

    torch.manual_seed(0)
    model = build_model("deepaa", n_features=7, n_archetypes=3, n_side=2, hidden=[16, 8]).eval()
    x = torch.randn(50, 7)
    with torch.no_grad():
        enc, emb = model.encode(x), model.embed(x)
    assert torch.equal(emb["z"], enc["mu"]) and torch.equal(emb["weights"], enc["A"])
    assert torch.equal(emb["side"], model.predict_side(enc["mu"]))


@settings(deadline=None, max_examples=30)
@given(st.integers(2, 6), st.integers(1, 50), st.integers(0, 10_000))
def test_default_weights_are_on_the_simplex(k, n, seed):
    torch.manual_seed(seed)
    model = DeepAA(n_features=5, n_archetypes=k, n_side=1, hidden=(8,))
    x = torch.randn(n, 5) * float(torch.empty(1).uniform_(0.1, 50))
    weights = model.embed(x)["weights"]
    assert torch.allclose(weights.sum(1), torch.ones(n), atol=1e-5) and (weights >= 0).all()
    assert torch.allclose(model.encode(x)["A"], weights, atol=1e-6)


def _logit_model(k: int) -> DeepAA:
    model = DeepAA(n_features=k, n_archetypes=k, hidden=(k,))
    with torch.no_grad():  # route the logits straight through the A head
        model.encoder = torch.nn.Identity()
        model.weights_head = torch.nn.Linear(k, k)
        model.weights_head.weight.copy_(torch.eye(k))
        model.weights_head.bias.zero_()
    return model


def test_crowding_penalises_every_row_on_a_vertex_but_the_purest_of_each_archetype():
    model = _logit_model(3)
    logits = torch.tensor([[5.0, 0.0, 0.0],   # purest row of a0: free
                           [2.0, 0.0, 0.0],   # also on a0's vertex (lead 2 > 0.98): penalised by (2 - 0.98)²
                           [0.0, 0.5, 0.0],   # inside (lead 0.5): free of penalty, and a1's purest anyway
                           [0.0, 0.0, 1.5]])  # a2's purest: free
    assert float(model.crowding(logits)) == pytest.approx((2 - 0.98) ** 2 / 4)
    weights = model.activate(logits)
    assert float(weights[1, 0]) == 1.0  # sparsemax: a lead >= 1 is exactly on the vertex
    inside = torch.tensor([[0.9, 0.0, 0.0], [0.0, 0.9, 0.0], [0.0, 0.0, 0.9], [0.9, 0.0, 0.1]])
    assert float(model.crowding(inside)) == 0.0  # leads below the margin cost nothing


def test_crowding_is_part_of_the_loss_and_off_for_models_saved_without_it():
    torch.manual_seed(0)
    x = torch.randn(16, 4) * 10
    model = DeepAA(n_features=4, n_archetypes=3, hidden=(8,))
    assert "crowding" in model.loss_terms({"x": x})
    off = DeepAA(n_features=4, n_archetypes=3, hidden=(8,), crowding_weight=0.0)
    assert "crowding" not in off.loss_terms({"x": x})
    with pytest.raises(ValueError, match="crowding"):
        DeepAA(n_features=4, n_archetypes=3, crowding_margin=1.5)


def test_crowding_starts_late_and_ramps_in():
    model = DeepAA(n_features=4, n_archetypes=3, hidden=(8,), crowding_start=0.5, crowding_ramp=0.2)
    scale = [model.crowding_schedule(epoch, 101) for epoch in range(101)]  # start at epoch 50, full from epoch 69
    assert scale[:50] == [0.0] * 50 and scale[50] == pytest.approx(0.05) and scale[69:] == [1.0] * 32
    assert all(a <= b for a, b in zip(scale, scale[1:]))
    assert model.annealing_epochs(101) == 70  # early stopping waits for the full penalty
    torch.manual_seed(0)
    x = torch.randn(16, 4) * 10
    with torch.no_grad():
        model.weights_head.weight.mul_(100)  # large leads: most rows on a vertex
    model.on_epoch_start(0, 101)
    torch.manual_seed(1)
    early = model.loss_terms({"x": x})
    without = early["recon"] + model.beta * early["kl"] + model.archetype_now * early["archetype"]
    assert float(early["crowding"].detach()) > 0 and torch.allclose(early["loss"], without)  # reported, not counted
    model.on_epoch_start(100, 101)
    torch.manual_seed(1)
    late = model.loss_terms({"x": x})
    without = late["recon"] + model.beta * late["kl"] + model.archetype_now * late["archetype"]
    assert torch.allclose(late["loss"], without + model.crowding_weight * late["crowding"])
    with pytest.raises(ValueError, match="crowding_start"):
        DeepAA(n_features=4, n_archetypes=3, crowding_start=1.5)


def test_the_archetype_weight_starts_high_and_falls_to_its_final_value_with_the_annealing():
    """Issue 17: lambda_AT starts at archetype_weight_start (1000) and falls geometrically to archetype_weight (100) over
    the annealing epochs, as beta does; the loss counts the current value. Models saved before the option keep a
    constant weight."""
    model = DeepAA(n_features=4, n_archetypes=3, hidden=(8,))
    assert (model.archetype_weight_start, model.archetype_weight) == (1000.0, 100.0)
    weights = []
    for epoch in range(101):
        model.on_epoch_start(epoch, 101)  # annealing over epochs 0-50
        weights.append(model.archetype_now)
    assert weights[0] == pytest.approx(1000) and weights[25] == pytest.approx(1000 ** 0.5 * 100 ** 0.5)
    assert weights[50:] == [pytest.approx(100.0)] * 51 and all(a >= b for a, b in zip(weights, weights[1:]))
    model.on_epoch_start(0, 101)
    torch.manual_seed(0)
    x = torch.randn(16, 4)
    terms = model.loss_terms({"x": x})
    assert torch.allclose(terms["loss"], terms["recon"] + model.beta * terms["kl"] + 1000.0 * terms["archetype"])
    hparams = model.hparams()
    del hparams["archetype_weight_start"]
    old = DeepAA.from_hparams(hparams)
    old.on_epoch_start(0, 101)
    assert old.archetype_weight_start is None and old.archetype_now == 100.0
    assert DeepAA(n_features=4, n_archetypes=3, archetype_weight=0).archetype_now == 0.0  # no pull at all: stays off
    with pytest.raises(ValueError, match="archetype_weight"):
        DeepAA(n_features=4, n_archetypes=3, archetype_weight_start=-1)


def test_a_detached_crowding_penalty_trains_only_the_weights_head():
    torch.manual_seed(0)
    model = DeepAA(n_features=4, n_archetypes=3, hidden=(8,), crowding_start=0, crowding_ramp=0, crowding_detach=True)
    with torch.no_grad():
        model.weights_head.weight.mul_(100)
    logits = model.encode(torch.randn(32, 4) * 10)
    penalty = model.crowding(model.weights_head(logits["h"].detach()))
    assert float(penalty.detach()) > 0
    penalty.backward()
    assert model.weights_head.weight.grad is not None and all(p.grad is None for p in model.encoder.parameters())


def _smooth_table(path, n=180, p=12, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, 3))
    x = np.tanh(u @ rng.normal(size=(3, p)) / 2) + 0.1 * rng.normal(size=(n, p))
    df = pd.DataFrame(x, columns=[f"f{j}" for j in range(p)])
    df.insert(0, "id", [f"r{i}" for i in range(n)])
    df["y"] = u[:, 0] + u[:, 1] ** 2
    df.to_csv(path, index=False)
    return path


def test_a_smooth_table_is_not_collapsed_onto_the_vertices(tmp_path):
    """A smooth cloud with no corners: after a short fit only a few rows may sit exactly on a vertex, and the
    embeddings stay distinct. Without the crowding penalty (the old default) half the rows sat on a vertex."""
    import archetool

    data = _smooth_table(tmp_path / "smooth.csv")
    model = archetool.fit(str(data), side=["y"], k=4, epochs=30, seed=0, device="cpu", out=str(tmp_path / "m"),
                          progress_bar=False)
    weights = model.embed(str(data))[["a0", "a1", "a2", "a3"]].to_numpy()
    on_vertex = (weights.max(1) > 0.999).mean()
    distinct = len(np.unique(weights.round(6), axis=0)) / len(weights)
    assert on_vertex <= 0.08 and distinct >= 0.95, (on_vertex, distinct)
