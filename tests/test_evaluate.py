"""Tests for vaebook.evaluate's aggregate-posterior measures, against closed forms and quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from vaebook.evaluate import aggregate_posterior_log_density, prior_coverage


def test_aggregate_log_density_matches_the_mixture_formula():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(7, 3, generator=g), 0.5 * torch.randn(7, 3, generator=g)
    z = torch.randn(5, 3, generator=g, dtype=torch.float64)
    got = aggregate_posterior_log_density(z, mu, logvar, batch_size=2)
    sd = np.exp(0.5 * logvar.double().numpy())
    dens = np.array([[stats.norm.pdf(zz, m, s).prod() for m, s in zip(mu.double().numpy(), sd)] for zz in z.numpy()])
    np.testing.assert_allclose(got.numpy(), np.log(dens.mean(1)), rtol=1e-10)
    with pytest.raises(ValueError, match="same d"):
        aggregate_posterior_log_density(z[:, :2], mu, logvar)


def test_posteriors_equal_to_the_prior_cover_it_exactly():
    mu, logvar = torch.zeros(50, 4), torch.zeros(50, 4)
    cov = prior_coverage(mu, logvar, n_prior=500)
    assert cov["kl_prior_aggregate"] == pytest.approx(0.0, abs=1e-12)
    assert cov["uncovered_fraction"] == 0.0 and cov["marginal_kl"] == pytest.approx(0.0, abs=1e-12)
    assert cov["active_dims"] == 0  # every code ignores its image
    assert cov["mean_posterior_sd"] == pytest.approx(1.0)


@pytest.mark.parametrize("m, s", [(0.0, 0.5), (1.0, 1.0), (-0.5, 2.0)])
def test_one_gaussian_posterior_against_closed_forms(m, s):
    # every image encodes to N(m, s^2) in 1-D: q-bar = N(m, s^2)
    mu, logvar = torch.full((10, 1), m), torch.full((10, 1), 2 * math.log(s))
    cov = prior_coverage(mu, logvar, n_prior=200_000, seed=1, ratio=0.1)
    kl = math.log(s) + (1 + m * m) / (2 * s * s) - 0.5          # KL(N(0,1) || N(m, s^2))
    assert cov["kl_prior_aggregate"] == pytest.approx(kl, abs=0.02)
    assert cov["marginal_kl"] == pytest.approx(0.5 * (s * s + m * m - 1 - 2 * math.log(s)), rel=1e-6)
    # P_{z ~ N(0,1)}[q(z) < 0.1 p(z)] by quadrature on a fine grid
    zz = np.linspace(-12, 12, 2_000_001)
    uncovered = stats.norm.pdf(zz) * (stats.norm.pdf(zz, m, s) < 0.1 * stats.norm.pdf(zz))
    assert cov["uncovered_fraction"] == pytest.approx(np.trapezoid(uncovered, zz), abs=0.005)


def test_mixture_kl_against_quadrature_and_activity():
    # two clusters of narrow posteriors in 1-D: the prior's centre is a hole
    mu = torch.tensor([[-2.0], [2.0]]).repeat(20, 1)
    logvar = torch.full_like(mu, 2 * math.log(0.3))
    cov = prior_coverage(mu, logvar, n_prior=200_000, seed=2)
    q = lambda z: 0.5 * (stats.norm.pdf(z, -2, 0.3) + stats.norm.pdf(z, 2, 0.3))  # noqa: E731
    kl, _ = integrate.quad(lambda z: stats.norm.pdf(z) * (stats.norm.logpdf(z) - np.log(q(z))), -10, 10,
                           points=[-2, 0, 2], limit=200)
    assert cov["kl_prior_aggregate"] == pytest.approx(kl, rel=0.02)
    assert cov["active_dims"] == 1 and cov["mean_posterior_sd"] == pytest.approx(0.3)
    # the marginal moments: mean 0, variance 4 + 0.09
    v = 4.0 + 0.09
    assert cov["marginal_kl"] == pytest.approx(0.5 * (v - 1 - math.log(v)), rel=1e-6)
