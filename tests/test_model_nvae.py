"""Tests for the natural-clustering VAE (archetool.models.nvae); fast, CPU only."""

from __future__ import annotations

import json
import os

import pytest
import torch

from archetool.models import build_model, model_class
from archetool.models.nvae import NVAE, make_class_means

P, K = 20, 3
SEED = int(os.environ.get("NVAE_TEST_SEED", "0"))


def make_data(n_per: int = 200, seed: int = 0):
    """3 classes; 2 class-dependent factors f (class-specific centre and spread) and 1 shared
    factor s ~ N(0, 1) (same for every class), mapped linearly into P features plus small noise.

    Returns x (n, P), y (n,), f (n, 2), s (n, 1).
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(K).repeat_interleave(n_per)
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    scales = torch.tensor([[0.3, 0.6], [0.6, 0.3], [0.4, 0.4]])
    f = centres[y] + scales[y] * torch.randn(len(y), 2, generator=g)
    s = torch.randn(len(y), 1, generator=g)
    w = torch.randn(3, P, generator=g) / 3**0.5
    x = torch.cat([f, s], 1) @ w + 0.1 * torch.randn(len(y), P, generator=g)
    return x, y, f, s


def between_class_fraction(z: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the total variance of z (summed over dims) explained by the class means."""
    means = torch.stack([z[y == k].mean(0) for k in range(K)])
    between = ((means[y] - z.mean(0)) ** 2).sum()
    return float(between / ((z - z.mean(0)) ** 2).sum())


def r2(z: torch.Tensor, t: torch.Tensor) -> float:
    """R^2 of the least-squares linear prediction of t (n, q) from z (n, d)."""
    zz = torch.cat([z, torch.ones(len(z), 1)], 1)
    coef = torch.linalg.lstsq(zz, t).solution
    return float(1 - ((zz @ coef - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum())


def train(model: NVAE, x, y, epochs: int, lr: float = 3e-3, batch: int = 64) -> list[float]:
    """Plain Adam loop; returns the mean training loss per epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            terms = model.loss_terms({"x": x[idx], "label": y[idx]})
            opt.zero_grad()
            terms["loss"].backward()
            opt.step()
            total += terms["loss"].item() * len(idx)
        history.append(total / len(x))
    model.eval()
    return history


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is fastest and deterministic
    try:
        torch.manual_seed(SEED)
        x, y, f, s = make_data(seed=SEED)
        model = NVAE(P, K, class_dim=4, shared_dim=2, hidden=(64, 32))
        history = train(model, x, y, epochs=60)
        yield model, history, (x, y, f, s)
    finally:
        torch.set_num_threads(threads)


# --- construction / contract ------------------------------------------------------------------


def test_registry_and_contract():
    assert model_class("nvae") is NVAE
    m = build_model("nvae", n_features=P, n_classes=K)
    assert m.kind == "nvae" and m.needs == ("label",)
    assert m.latent_dim == (K - 1) + 4  # default class_dim: K - 1 (at most 8); issue 17 changed it from 8
    assert m.class_means().shape == (K, K - 1)


@pytest.mark.parametrize(
    "k,d", [(1, 3), (2, 8), (3, 2), (5, 4), (9, 8), (12, 3), (10, 8), (40, 8), (7, 2), (4, 1)]
)
def test_class_means_fixed_and_separated(k, d):
    sep = 4.0
    m = make_class_means(k, d, sep)
    assert m.shape == (k, d) and torch.isfinite(m).all()
    assert torch.equal(m, make_class_means(k, d, sep))  # deterministic
    if k == 1:
        return
    dist = torch.cdist(m, m) + torch.eye(k) * 1e9
    if d >= 2:
        assert torch.allclose(m.norm(dim=1), torch.full((k,), sep), atol=1e-4)
    if k <= d + 1:  # regular simplex: all pairwise distances equal sep * sqrt(2k/(k-1))
        assert torch.allclose(dist.min(), torch.tensor(sep * (2 * k / (k - 1)) ** 0.5), atol=1e-4)
    elif d >= 3:
        assert dist.min() > 0.75 * sep  # spread on the sphere, e.g. 12 in 3-d ~ icosahedron (1.05 sep)
    # a buffer, not a parameter: never trained
    model = NVAE(5, k, class_dim=d, shared_dim=1, hidden=(8,))
    assert all(p.data_ptr() != model.class_means().data_ptr() for p in model.parameters())
    assert "_class_means" in model.state_dict()


def test_shapes_and_loss_terms():
    torch.manual_seed(0)
    m = NVAE(P, K, class_dim=3, shared_dim=2, hidden=(16, 8), free_bits=0.0)  # the plain bound (free bits: test_class_quality)
    x, y = torch.randn(10, P), torch.randint(0, K, (10,))
    terms = m.loss_terms({"x": x, "label": y})
    assert set(terms) == {"loss", "recon", "kl_shared", "kl_class", "classifier"}
    assert all(t.shape == () and torch.isfinite(t) for t in terms.values())
    # the total is the negative joint bound: recon + KLs - log p(y) + classifier (uniform p(y))
    log_k = torch.log(torch.tensor(3.0))
    assert m.beta_c == 2.0  # the default weight of the class-latent KL
    expect = terms["recon"] + terms["kl_shared"] + m.beta_c * terms["kl_class"] + log_k + terms["classifier"]
    assert torch.allclose(terms["loss"], expect, atol=1e-4)
    terms["loss"].backward()

    e = m.embed(x)
    assert e["z"].shape == (10, 5) and e["z_class"].shape == (10, 3) and e["z_shared"].shape == (10, 2)
    assert torch.equal(e["z"], torch.cat([e["z_class"], e["z_shared"]], 1))
    assert e["pred"].shape == (10,) and e["pred"].dtype == torch.long
    assert e["prob"].shape == (10,) and e["probs"].shape == (10, K)
    assert torch.allclose(e["probs"].sum(1), torch.ones(10), atol=1e-5)
    assert torch.allclose(e["probs"].gather(1, e["pred"][:, None])[:, 0], e["prob"])

    kl = m.kl_per_dim(x, y)
    assert kl["class"].shape == (3,) and kl["shared"].shape == (2,)
    assert (kl["class"] >= 0).all() and (kl["shared"] >= 0).all()

    assert m.decode(e["z_class"], e["z_shared"]).shape == (10, P)
    assert m.traverse_shared(1, torch.linspace(-2, 2, 5)).shape == (K, 5, P)
    assert m.traverse_shared(0, torch.tensor([0.0, 1.0]), labels=torch.tensor([2])).shape == (1, 2, P)
    acc = m.metrics({"x": x, "label": y})
    assert set(acc) == {"accuracy", "recon_mse"} and 0 <= acc["accuracy"] <= 10 and acc["recon_mse"] >= 0

    # per-class KL sums: add up over chunks, divide by the counts for the per-class means
    sums, counts = m.kl_per_class(x, y)
    assert sums.shape == (K, 5) and counts.tolist() == torch.bincount(y, minlength=K).float().tolist()
    s1, c1 = m.kl_per_class(x[:4], y[:4])
    s2, c2 = m.kl_per_class(x[4:], y[4:])
    assert torch.allclose(s1 + s2, sums, atol=1e-5) and torch.equal(c1 + c2, counts)
    total = torch.cat([kl["class"], kl["shared"]])
    assert torch.allclose(sums.sum(0) / counts.sum(), total, atol=1e-5)
    for k in range(K):
        if counts[k]:
            per = m.kl_per_dim(x[y == k], y[y == k])
            assert torch.allclose(sums[k] / counts[k], torch.cat([per["class"], per["shared"]]), atol=1e-5)
    # the record kept with the weights (filled by fit) is a buffer, not a parameter
    assert {"kl_record", "kl_record_counts"} <= set(m.state_dict()) and m.kl_record.shape == (K, 5)
    assert all(p.data_ptr() != m.kl_record.data_ptr() for p in m.parameters())


def test_class_prior_enters_loss_and_sampling():
    torch.manual_seed(0)
    m = NVAE(P, K, class_dim=2, shared_dim=1, hidden=(8,), class_prior=[2.0, 1.0, 1.0])
    assert torch.allclose(m.log_prior.exp(), torch.tensor([0.5, 0.25, 0.25]))
    only_first = NVAE(P, K, class_dim=2, shared_dim=1, hidden=(8,), class_prior=[1.0, 0.0, 0.0])
    _, labels = only_first.sample(50, generator=torch.Generator().manual_seed(1))
    assert (labels == 0).all()
    with pytest.raises(ValueError):
        NVAE(P, K, class_prior=[1.0, 1.0])


# --- training on synthetic data ---------------------------------------------------------------


def test_loss_decreases(trained):
    _, history, _ = trained
    assert all(torch.isfinite(torch.tensor(history)))
    assert sum(history[-5:]) / 5 < 0.5 * history[0]


def test_classifier_accuracy(trained):
    model, _, (x, y, _, _) = trained
    acc = model.metrics({"x": x, "label": y})["accuracy"] / len(x)
    assert acc > 0.9
    assert (model.embed(x)["pred"] == y).float().mean() > 0.9


def test_class_information_lives_in_class_latent(trained):
    model, _, (x, y, f, _) = trained
    e = model.embed(x)
    # z_c clusters by class, z_s does not
    assert between_class_fraction(e["z_class"], y) > 0.8
    assert between_class_fraction(e["z_shared"], y) < 0.3
    # the class-dependent factors are read off z_c, much less off z_s
    assert r2(e["z_class"], f) > 0.8
    assert r2(e["z_class"], f) > r2(e["z_shared"], f) + 0.4
    # kl_per_dim: q(z_c|x) sits on its own class's cluster (small KL to N(m_y, I)) and far from
    # any other class's; the shared KL does not depend on the labels at all
    kl = model.kl_per_dim(x, y)
    wrong = (y + 1) % K
    kl_wrong = model.kl_per_dim(x, wrong)
    assert kl_wrong["class"].sum() > 5 * kl["class"].sum()
    assert torch.allclose(kl_wrong["shared"], kl["shared"])
    # detector: the within-class variation of the class-dependent factors shows up as active z_c
    # dimensions (KL well above 0)
    assert int((kl["class"] > 0.1).sum()) >= 1


def test_beta_c_pushes_shared_factor_into_shared_latent():
    """With beta_c = 1 a class-independent factor may sit in z_c or z_s (equal KL cost; both happen
    across seeds). beta_c > 1 makes z_c dearer, so the shared factor moves to z_s while the class
    structure stays in z_c. Measured with the defaults (beta_c = 2, class_separation = 8) at 100 epochs:
    6/6 seeds, R^2(s | z_s) >= 0.93, R^2(s | z_c) <= 0.31 (at 60 epochs one seed had not settled yet;
    with class_separation = 4, 12/12 seeds at 60 epochs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(SEED)
        x, y, f, s = make_data(seed=SEED)
        model = NVAE(P, K, class_dim=4, shared_dim=2, hidden=(64, 32))
        assert model.beta_c == 2.0
        train(model, x, y, epochs=100)
    finally:
        torch.set_num_threads(threads)
    e = model.embed(x)
    assert r2(e["z_shared"], s) > 0.8
    assert r2(e["z_shared"], s) > r2(e["z_class"], s) + 0.3
    assert r2(e["z_class"], f) > 0.8
    assert between_class_fraction(e["z_class"], y) > 0.8
    assert between_class_fraction(e["z_shared"], y) < 0.3


def test_sample_labels_and_temperature(trained):
    model, _, _ = trained
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0])
    xs, ls = model.sample(7, labels=labels, generator=torch.Generator().manual_seed(0))
    assert xs.shape == (7, P) and torch.equal(ls, labels)
    xs2, ls2 = model.sample(300, generator=torch.Generator().manual_seed(0))
    assert xs2.shape == (300, P) and ls2.shape == (300,) and set(ls2.tolist()) == {0, 1, 2}
    # reproducible with a generator
    again, _ = model.sample(7, labels=labels, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(xs, again)
    # sample == decode(sample_latent) with the same draws; temperature 0 gives the class means
    z, zl = model.sample_latent(7, labels=labels, generator=torch.Generator().manual_seed(0))
    assert z.shape == (7, model.latent_dim) and torch.equal(zl, labels)
    assert torch.allclose(model.decode(z[:, :4], z[:, 4:], zl), xs, atol=1e-6)
    z0, _ = model.sample_latent(3, labels=torch.tensor([0, 1, 2]), temperature=0.0)
    assert torch.equal(z0[:, :4], model.class_means()) and (z0[:, 4:] == 0).all()
    # decoded samples of a class are recognised as that class
    fixed = torch.full((200,), 1)
    x1, _ = model.sample(200, labels=fixed, generator=torch.Generator().manual_seed(2))
    assert (model.embed(x1)["pred"] == 1).float().mean() > 0.8
    # temperature scales the spread
    spreads = []
    for t in (0.3, 1.0, 1.5):
        xt, _ = model.sample(400, labels=fixed.new_full((400,), 1), temperature=t,
                             generator=torch.Generator().manual_seed(3))
        spreads.append(float(xt.std(0).mean()))
    assert spreads[0] < spreads[1] < spreads[2]


def test_hparams_round_trip(trained):
    model, _, (x, _, _, _) = trained
    hp = json.loads(json.dumps(model.hparams()))
    assert hp == model.hparams()
    assert set(hp) == {"n_features", "n_classes", "class_dim", "shared_dim", "hidden", "likelihood", "beta_c",
                       "class_separation", "decoder_sees_label", "class_prior", "dropout", "free_bits", "kl_warmup",
                       "class_weight", "linear_head", "head_mix", "linear_head_fit"}
    clone = build_model("nvae", **hp)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    a, b = model.embed(x[:20]), clone.embed(x[:20])
    assert all(torch.allclose(a[k].float(), b[k].float()) for k in a)


def test_decoder_sees_label_and_prior_round_trip():
    torch.manual_seed(0)
    m = NVAE(P, K, class_dim=2, shared_dim=2, hidden=(16,), decoder_sees_label=True, class_prior=[0.2, 0.3, 0.5],
             beta_c=0.5, class_separation=6.0, dropout=0.1)
    x, y = torch.randn(12, P), torch.randint(0, K, (12,))
    assert torch.isfinite(m.loss_terms({"x": x, "label": y})["loss"])
    clone = NVAE(**json.loads(json.dumps(m.hparams())))
    clone.load_state_dict(m.state_dict())
    m.eval()
    clone.eval()
    zc, zs = m.class_means()[y], torch.zeros(12, 2)
    assert torch.allclose(m.decode(zc, zs), clone.decode(zc, zs, y))  # nearest class mean == y here
    assert torch.allclose(m.class_means().norm(dim=1), torch.full((K,), 6.0))


def test_bernoulli_likelihood():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y, _, _ = make_data(n_per=60, seed=1)
        xb = (x > 0).float()
        m = NVAE(P, K, class_dim=2, shared_dim=2, hidden=(32,), likelihood="bernoulli")
        history = train(m, xb, y, epochs=15)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.isfinite(torch.tensor(history))) and history[-1] < history[0]
    xs, _ = m.sample(30, generator=torch.Generator().manual_seed(0))
    assert ((xs >= 0) & (xs <= 1)).all()
    assert m.hparams()["likelihood"] == "bernoulli"


def test_no_shared_latent():
    """shared_dim = 0: the class latent alone (loss, embedding, samples and the KL record still work)."""
    torch.manual_seed(0)
    m = NVAE(P, K, class_dim=3, shared_dim=0, hidden=(16,))
    x, y = torch.randn(12, P), torch.randint(0, K, (12,))
    terms = m.loss_terms({"x": x, "label": y})
    assert torch.isfinite(terms["loss"]) and terms["kl_shared"].detach().item() == 0.0
    m.eval()
    assert m.embed(x)["z"].shape == (12, 3) and m.embed(x)["z_shared"].shape == (12, 0)
    xs, ls = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert xs.shape == (5, P) and ls.shape == (5,)
    sums, counts = m.kl_per_class(x, y)
    assert sums.shape == (K, 3) and float(counts.sum()) == 12
