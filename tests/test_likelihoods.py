"""Observation models: shapes, the Bernoulli/Gaussian split and the calibrated Gaussian variance."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archetool.models.likelihoods import GaussianLikelihood, MixedLikelihood, make_likelihood


def test_calibrated_variance_tracks_the_residuals_without_gradient():
    torch.manual_seed(0)
    lik = GaussianLikelihood(3, variance="calibrated", momentum=0.2)
    assert "log_var" not in dict(lik.named_parameters()) and "log_var" in lik.state_dict()
    scale = torch.tensor([0.1, 0.5, 2.0])
    out = torch.zeros(4096, 3, requires_grad=True)
    for _ in range(60):
        x = torch.randn(4096, 3) * scale
        lik.nll(out, x).mean().backward()
    assert torch.allclose(lik.log_var.exp().sqrt(), scale, rtol=0.05)
    assert out.grad is not None  # the decoder output still gets its gradient


def test_calibrated_variance_is_frozen_in_eval_mode_and_without_grad():
    lik = GaussianLikelihood(2, variance="calibrated")
    before = lik.log_var.clone()
    lik.eval()
    lik.nll(torch.zeros(8, 2), torch.ones(8, 2))
    lik.train()
    with torch.no_grad():
        lik.nll(torch.zeros(8, 2), torch.ones(8, 2))
    assert torch.equal(lik.log_var, before)


def test_calibrated_variance_has_a_floor():
    lik = GaussianLikelihood(2, variance="calibrated", momentum=1.0)
    x = torch.randn(16, 2)
    lik.nll(x, x)  # a perfect fit would drive the variance to 0 and the NLL to -inf
    assert torch.allclose(lik.log_var, torch.full((2,), -6.0))


@settings(deadline=None, max_examples=25)
@given(st.integers(1, 6), st.integers(1, 5), st.sampled_from(["learned", "calibrated"]))
def test_gaussian_nll_matches_torch_normal(n, p, variance):
    torch.manual_seed(n * 10 + p)
    lik = GaussianLikelihood(p, variance=variance).eval()
    with torch.no_grad():
        lik.log_var.copy_(torch.randn(p))
    out, x = torch.randn(n, p), torch.randn(n, p)
    ref = torch.distributions.Normal(out, (0.5 * lik.log_var).exp()).log_prob(x).sum(-1)
    assert torch.allclose(lik.nll(out, x), -ref, atol=1e-5)


def test_mixed_likelihood_passes_the_variance_mode_to_its_gaussian_part():
    lik = make_likelihood("mixed:3", 5, variance="calibrated")
    assert isinstance(lik, MixedLikelihood) and lik.values.variance == "calibrated"
    assert lik.nll(torch.zeros(2, 5), torch.ones(2, 5)).shape == (2,)
    assert float(lik.bits.nll(torch.zeros(1, 3), torch.ones(1, 3))) == pytest.approx(3 * math.log(2), rel=1e-6)


def test_unknown_likelihood_and_variance_are_refused():
    with pytest.raises(ValueError, match="unknown likelihood"):
        make_likelihood("poisson", 3)
    with pytest.raises(ValueError, match="variance"):
        GaussianLikelihood(3, variance="fixed")
