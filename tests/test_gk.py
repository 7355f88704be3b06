"""Tests for vaebook.gk: every check against an independent computation (numpy/scipy formulas, quadrature,
finite differences, root finding by brentq) or a known answer."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from vaebook import gk

F64 = torch.float64
C = 0.8

# valid parameter sets spanning the shapes: skew both ways, light and heavy tails, k at and near -1/2
# (valid there only for g = 0 or |g| above ~6.5, see validate_params), huge k
PARAMS = [
    (3.0, 1.0, 2.0, 0.5),      # the classic test case
    (0.0, 2.0, -1.0, 0.1),
    (-1.0, 0.5, -3.0, 0.0),
    (0.0, 1.0, 0.0, -0.5),     # bounded support (A - B, A + B)
    (0.0, 1.0, 0.0, -0.45),
    (1.0, 1.0, 8.0, -0.49),
    (0.0, 1.0, -7.0, -0.45),
    (2.0, 3.0, 0.5, 2.0),
]


def q_np(z, A, B, g, k, c=C):
    """Independent numpy transcription of the quantile function."""
    return A + B * (1 + c * np.tanh(g * z / 2)) * (1 + z**2) ** k * z


def dq_np(z, A, B, g, k, c=C):
    """Independent numpy transcription of the closed-form derivative: the product rule on Q, with
    d/dz tanh(gz/2) = (g/2) sech^2(gz/2) and d/dz (1+z^2)^k z = (1+z^2)^k (1+(2k+1)z^2)/(1+z^2)."""
    with np.errstate(over="ignore"):  # cosh overflows to inf far out, where the term is 0 anyway
        return B * (1 + z**2) ** k * ((1 + c * np.tanh(g * z / 2)) * (1 + (2 * k + 1) * z**2) / (1 + z**2)
                                      + c * g * z / (2 * np.cosh(g * z / 2) ** 2))


def brentq_score(x, A, B, g, k, c=C):
    """Independent root finding for Q(z) = x."""
    lo, hi = -1.0, 1.0
    while q_np(lo, A, B, g, k, c) > x:
        lo *= 2
    while q_np(hi, A, B, g, k, c) < x:
        hi *= 2
    return optimize.brentq(lambda z: q_np(z, A, B, g, k, c) - x, lo, hi, xtol=1e-14, rtol=1e-14)


# --- quantile and its derivative -----------------------------------------------------------------------

@pytest.mark.parametrize("A,B,g,k", PARAMS)
def test_quantile_matches_formula_and_is_monotone(A, B, g, k):
    z = np.linspace(-10, 10, 20001)
    q = gk.quantile(torch.as_tensor(z), A, B, g, k).numpy()
    np.testing.assert_allclose(q, q_np(z, A, B, g, k), rtol=1e-13, atol=1e-13)
    assert np.all(np.diff(q) > 0)
    assert gk.quantile(0.0, A, B, g, k).item() == A  # Q(0) = A: the median
    assert np.all(gk.quantile_dz(torch.as_tensor(z), A, B, g, k).numpy() > 0)


@pytest.mark.parametrize("A,B,g,k", PARAMS)
def test_quantile_dz_matches_autograd_and_formula(A, B, g, k):
    z = torch.linspace(-12, 12, 2001, dtype=F64, requires_grad=True)
    (dz_auto,) = torch.autograd.grad(gk.quantile(z, A, B, g, k).sum(), z)
    dz = gk.quantile_dz(z.detach(), A, B, g, k)
    np.testing.assert_allclose(dz.numpy(), dz_auto.numpy(), rtol=1e-11, atol=1e-300)
    zn = z.detach().numpy()
    np.testing.assert_allclose(dz.numpy(), dq_np(zn, A, B, g, k), rtol=1e-11)
    np.testing.assert_allclose(gk.log_quantile_dz(z.detach(), A, B, g, k).numpy(), np.log(dq_np(zn, A, B, g, k)),
                               rtol=1e-11, atol=1e-12)


def test_quantile_differentiable_in_parameters():
    A, B, g, k = (torch.tensor(v, dtype=F64, requires_grad=True) for v in (3.0, 1.0, 2.0, 0.5))
    z = torch.linspace(-4, 4, 9, dtype=F64)
    assert torch.autograd.gradcheck(lambda A, B, g, k: gk.quantile(z, A, B, g, k), (A, B, g, k))
    assert torch.autograd.gradcheck(lambda A, B, g, k: gk.quantile_dz(z, A, B, g, k), (A, B, g, k))


def test_dtype_and_broadcasting():
    z32 = torch.linspace(-2, 2, 5)
    assert gk.quantile(z32, 3.0, 1.0, 2.0, 0.5).dtype == torch.float32  # float params do not promote
    assert gk.inverse(gk.quantile(z32, 3.0, 1.0, 2.0, 0.5), 3.0, 1.0, 2.0, 0.5).dtype == torch.float32
    assert gk.log_prob(np.array([1.0, 2.0]), 3.0, 1.0, 2.0, 0.5).dtype == F64
    out = gk.quantile(torch.zeros(4, 1, dtype=F64), torch.tensor([1.0, 2.0, 3.0], dtype=F64), 1.0, 0.0, 0.0)
    assert out.shape == (4, 3)
    assert gk.sample(7, torch.zeros(3), 1.0, 0.0, 0.0).shape == (7, 3)


# --- inverse, cdf, density --------------------------------------------------------------------------------

@pytest.mark.parametrize("A,B,g,k", PARAMS)
def test_inverse_round_trip_including_far_tails(A, B, g, k):
    z = np.concatenate([np.linspace(-8, 8, 4001), -np.logspace(-8, 2, 200), np.logspace(-8, 2, 200)])
    if k >= 0:  # far out only where Q still separates the points in float64
        z = np.concatenate([z, -np.logspace(2, 6, 50), np.logspace(2, 6, 50)])
    x = torch.as_tensor(q_np(z, A, B, g, k))
    zz = gk.inverse(x, A, B, g, k).numpy()
    np.testing.assert_allclose(zz, z, rtol=1e-9, atol=1e-12)


def test_inverse_far_x_round_trip_and_matches_brentq():
    A, B, g, k = 3.0, 1.0, 2.0, 0.5
    x = np.concatenate([-np.logspace(0, 12, 40), np.logspace(0, 12, 40)]) + A
    z = gk.inverse(torch.as_tensor(x), A, B, g, k).numpy()
    np.testing.assert_allclose(q_np(z, A, B, g, k), x, rtol=1e-12)
    ref = np.array([brentq_score(v, A, B, g, k) for v in x[::8]])
    np.testing.assert_allclose(z[::8], ref, rtol=1e-10)


def test_inverse_elementwise_parameters_match_scalar_path():
    gen = torch.Generator().manual_seed(3)
    x = 10 * torch.randn(500, generator=gen, dtype=F64)
    g = torch.linspace(-3, 3, 500, dtype=F64)  # per-element parameters: the generic solver
    k = torch.linspace(0.0, 1.0, 500, dtype=F64)
    z = gk.inverse(x, 1.0, 2.0, g, k)
    ref = np.array([brentq_score(x[i].item(), 1.0, 2.0, g[i].item(), k[i].item()) for i in range(0, 500, 25)])
    np.testing.assert_allclose(z[::25].numpy(), ref, rtol=1e-10, atol=1e-12)
    # per-column parameters (the multivariate layout)
    X = torch.randn(300, 3, generator=gen, dtype=F64) * 3
    Ac, gc = torch.tensor([0.0, 1.0, 2.0], dtype=F64), torch.tensor([-1.0, 0.0, 2.0], dtype=F64)
    Z = gk.inverse(X, Ac, 1.0, gc, 0.3)
    for j in range(3):
        np.testing.assert_allclose(Z[:, j].numpy(), gk.inverse(X[:, j], Ac[j], 1.0, gc[j], 0.3).numpy(), rtol=1e-13)


def test_torch_solver_matches_numpy_solver(monkeypatch):
    # CPU tensors are solved in numpy; other devices run the same algorithm in torch: check it here
    gen = torch.Generator().manual_seed(11)
    cases = [
        (20 * torch.randn(1024, generator=gen, dtype=F64), (3.0, 1.0, 2.0, 0.5)),             # node table
        (torch.randn(600, 3, generator=gen, dtype=F64) * 5,
         (torch.tensor([0.0, 1.0, 2.0], dtype=F64), 1.0, torch.tensor([-1.0, 0.0, 9.0], dtype=F64), 0.2)),
        (torch.randn(300, generator=gen, dtype=F64) * 5,
         (0.0, 1.0, torch.linspace(-3, 3, 300, dtype=F64), torch.linspace(0, 2, 300, dtype=F64))),
        (torch.tensor([-5.0, -1.0, 0.0, 0.5, 0.99, 1.5], dtype=F64), (0.0, 1.0, 0.0, -0.5)),  # out of support
    ]
    for x, theta in cases:
        z_np = gk.inverse(x, *theta)
        monkeypatch.setattr(gk, "_USE_NUMPY", False)
        z_t = gk.inverse(x, *theta)
        lp_t = gk.log_prob(x, *theta)
        monkeypatch.setattr(gk, "_USE_NUMPY", True)
        np.testing.assert_allclose(z_t.numpy(), z_np.numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(lp_t.numpy(), gk.log_prob(x, *theta).numpy(), rtol=1e-12, atol=1e-12)


def test_bounded_support_at_k_minus_half():
    A, B, g, k = 0.0, 1.0, 0.0, -0.5  # Q(±inf) = A ± B
    x = torch.tensor([-1.5, -1.0, 0.3, 1.0, 2.0, math.inf, -math.inf, math.nan], dtype=F64)
    z = gk.inverse(x, A, B, g, k)
    assert z[0] == -math.inf and z[4] == math.inf and z[5] == math.inf and z[6] == -math.inf
    assert z[1] == -math.inf and z[3] == math.inf  # the edges A ± B themselves
    assert torch.isnan(z[7])
    np.testing.assert_allclose(z[2].item(), 0.3 / math.sqrt(1 - 0.09), rtol=1e-12)  # z/sqrt(1+z^2) = 0.3
    F = gk.cdf(x[:5], A, B, g, k)
    assert F[0] == 0 and F[4] == 1
    lp = gk.log_prob(x[:5], A, B, g, k)
    assert lp[0] == -math.inf and lp[4] == -math.inf and torch.isfinite(lp[2])


def _density(A, B, g, k):
    def f(x):
        return math.exp(gk.log_prob(torch.tensor([x], dtype=F64), A, B, g, k, validate=False).item())
    return f


# pieces between Q(z) at these scores (quad copes better with the heavy tails piecewise); the mass
# beyond Q(±12) is 2 Phi(-12) ~ 4e-33
Z_EDGES = np.array([-12.0, -4.0, -1.5, 0.0, 1.5, 4.0, 12.0])


@pytest.mark.parametrize("A,B,g,k", [PARAMS[i] for i in (0, 2, 3, 6)])  # incl. negative g, k at/near -1/2
def test_density_integrates_to_one(A, B, g, k):
    f = _density(A, B, g, k)
    edges = q_np(Z_EDGES, A, B, g, k)
    total = sum(integrate.quad(f, a, b, epsabs=1e-12, epsrel=1e-9, limit=200)[0]
                for a, b in zip(edges[:-1], edges[1:]))
    assert abs(total - 1.0) < 1e-7


def test_cdf_is_the_integral_of_the_density():
    A, B, g, k = 0.0, 2.0, -1.0, 0.1
    f = _density(A, B, g, k)
    for zx in (-0.7, 0.9):
        x = q_np(zx, A, B, g, k) + 0.01
        F = gk.cdf(torch.tensor(x, dtype=F64), A, B, g, k).item()
        edges = np.append(q_np(Z_EDGES[Z_EDGES < zx], A, B, g, k), x)
        mass = sum(integrate.quad(f, a, b, epsabs=1e-12, epsrel=1e-9)[0] for a, b in zip(edges[:-1], edges[1:]))
        assert abs(F - mass) < 1e-8


def test_icdf_cdf_round_trip():
    p = np.linspace(1e-6, 1 - 1e-6, 1001)
    x = gk.icdf(torch.as_tensor(p), 3.0, 1.0, 2.0, 0.5)
    np.testing.assert_allclose(gk.cdf(x, 3.0, 1.0, 2.0, 0.5).numpy(), p, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("A,B,g,k", [(3.0, 1.0, 2.0, 0.5), (0.0, 1.0, -7.0, -0.45), (0.0, 2.0, -1.0, 0.1)])
def test_samples_follow_the_cdf(A, B, g, k):
    x = gk.sample(5000, A, B, g, k, generator=torch.Generator().manual_seed(12345)).numpy()
    res = stats.kstest(x, lambda v: gk.cdf(torch.as_tensor(v), A, B, g, k).numpy())
    assert res.pvalue > 0.01
    # and a quantile known in closed form: the median is A
    assert abs(np.median(x) - A) < 4 * B * 1.2533 / math.sqrt(5000) * 1.5


def test_log_prob_gradients_match_finite_differences():
    theta = np.array([3.0, 1.0, 2.0, 0.5])
    x0 = np.array([-1.0, 1.5, 3.0, 6.0, 30.0])
    h = 1e-6

    def lp(xv, th):
        return gk.log_prob(torch.as_tensor(xv), *(float(t) for t in th)).numpy()

    x = torch.tensor(x0, dtype=F64, requires_grad=True)
    params = [torch.tensor(v, dtype=F64, requires_grad=True) for v in theta]
    out = gk.log_prob(x, *params)
    grads = torch.autograd.grad(out.sum(), [x, *params])
    fd_x = (lp(x0 + h, theta) - lp(x0 - h, theta)) / (2 * h)  # elementwise: d lp_i / d x_i
    np.testing.assert_allclose(grads[0].numpy(), fd_x, rtol=1e-6, atol=1e-8)
    for i in range(4):
        e = np.zeros(4)
        e[i] = h
        fd = ((lp(x0, theta + e) - lp(x0, theta - e)) / (2 * h)).sum()
        np.testing.assert_allclose(grads[1 + i].item(), fd, rtol=1e-6, atol=1e-8, err_msg="ABgk"[i])
    # the whole Jacobian, also for the cdf, by torch's finite-difference checker
    assert torch.autograd.gradcheck(lambda x, A, B, g, k: gk.log_prob(x, A, B, g, k), (x, *params))
    assert torch.autograd.gradcheck(lambda x, A, B, g, k: gk.cdf(x, A, B, g, k), (x, *params))
    assert torch.autograd.gradcheck(lambda x, A, B, g, k: gk.inverse(x, A, B, g, k), (x, *params))


def test_log_prob_gradients_finite_at_infinite_scores():
    # outside the bounded support (k = -1/2) log_prob is -inf; gradients elsewhere must not become NaN
    x = torch.tensor([0.2, 5.0], dtype=F64, requires_grad=True)
    B = torch.tensor(1.0, dtype=F64, requires_grad=True)
    lp = gk.log_prob(x, 0.0, B, 0.0, -0.5)
    assert lp[1] == -math.inf
    lp[0].backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(B.grad)


# --- validation -------------------------------------------------------------------------------------------

# every public function that takes g-and-k parameters, called with (A, B, g, k) and its own keyword
VALIDATED = {
    "quantile": lambda t, **kw: gk.quantile(torch.linspace(-3, 3, 7, dtype=F64), *t, **kw),
    "quantile_dz": lambda t, **kw: gk.quantile_dz(torch.linspace(-3, 3, 7, dtype=F64), *t, **kw),
    "log_quantile_dz": lambda t, **kw: gk.log_quantile_dz(torch.linspace(-3, 3, 7, dtype=F64), *t, **kw),
    "icdf": lambda t, **kw: gk.icdf(torch.tensor([0.1, 0.5, 0.9], dtype=F64), *t, **kw),
    "inverse": lambda t, **kw: gk.inverse(torch.zeros(3, dtype=F64), *t, **kw),
    "cdf": lambda t, **kw: gk.cdf(torch.zeros(3, dtype=F64), *t, **kw),
    "log_prob": lambda t, **kw: gk.log_prob(torch.zeros(3, dtype=F64), *t, **kw),
    "sample": lambda t, **kw: gk.sample(3, *t, **kw),
    "octile_summaries": lambda t, **kw: gk.octile_summaries(t[2], t[3], **kw),
    "MultivariateGK": lambda t, validate=True: gk.MultivariateGK(*t, torch.eye(1, dtype=F64), validate_args=validate),
}

# one case per invalid region; the message must name the parameter, its value and the valid region
INVALID = [
    ((0.0, 0.0, 0.0, 0.0), r"B \(scale\) must be > 0, got B = 0; the valid region is B > 0, k >= -0.5"),
    ((0.0, -1.0, 0.0, 0.0), r"B \(scale\) must be > 0, got B = -1"),
    ((0.0, 1.0, 0.0, -0.6), r"k \(tail weight\) must be >= -0.5, got k = -0.6; the valid region is"),
    ((math.nan, 1.0, 0.0, 0.0), r"A must be finite, got A = nan"),
    ((0.0, 1.0, math.inf, 0.0), r"g must be finite, got g = inf"),
    ((0.0, 1.0, 1.0, -0.3), r"\(g=1, k=-0.3, c=0.8\) are invalid: Q'\(z\) <= 0 .* valid region is B > 0"),
    ((0.0, 1.0, 0.5, -0.5), r"\(g=0.5, k=-0.5, c=0.8\) are invalid: Q'\(z\) <= 0"),
    ((0.0, 1.0, -0.01, -0.1), r"\(g=-0.01, k=-0.1, c=0.8\) are invalid: Q'\(z\) <= 0"),
    ((0.0, 1.0, 1.9, -0.1), r"\(g=1.9, k=-0.1, c=0.8\) are invalid"),  # just inside: g*(-0.1) = 1.94
]


@pytest.mark.parametrize("args,match", INVALID)
def test_invalid_parameters_raise(args, match):
    with pytest.raises(ValueError, match=match):
        gk.validate_params(*args)
    for name, call in VALIDATED.items():
        if name == "octile_summaries" and not (math.isfinite(args[0]) and args[1] > 0):
            continue  # it takes g and k only, so an invalid A or B cannot reach it
        with pytest.raises(ValueError, match=match):
            call(args)
    assert not gk.is_valid(*args)


@pytest.mark.parametrize("args", [(0.0, 1.0, 1.0, -0.3), (0.0, 1.0, 0.5, -0.5), (0.0, 1.0, 1.9, -0.1)])
def test_validate_false_skips_the_check(args):
    # the fast path the flows, priors and the fitter use: numbers, no error, for (g, k) where Q' < 0 somewhere
    for name, call in VALIDATED.items():
        out = call(args, validate=False)
        if isinstance(out, torch.Tensor):
            assert out.shape[0] >= 1
    z = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(gk.quantile(torch.as_tensor(z), *args, validate=False).numpy(), q_np(z, *args),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("args", [
    (0.0, 1e-300, 0.0, 0.0),   # B just above 0
    (0.0, 1.0, 0.0, -0.5),     # k at its bound (g = 0: bounded support)
    (0.0, 1.0, 2.0, -0.1),     # |g| just above g*(-0.1) = 1.94
    (0.0, 1.0, -2.0, -0.1),    # the same, skewed the other way
    (0.0, 1.0, 6.6, -0.5),     # |g| just above g*(-0.5) = 6.54
    (0.0, 1.0, 3.0, 0.0),      # k = 0: every g (c = 0.8 < 0.83)
])
def test_valid_boundary_cases_are_accepted(args):
    gk.validate_params(*args)
    assert gk.is_valid(*args)
    for call in VALIDATED.values():
        call(args)
    z = np.sinh(np.linspace(-10, 10, 200001))  # independent: Q' > 0 on a fine grid
    assert np.all(dq_np(z, 1.0, 1.0, args[2], args[3]) > 0)


def test_icdf_rejects_probabilities_outside_zero_one():
    with pytest.raises(ValueError, match=r"p must be probabilities in \[0, 1\], got 1.5"):
        gk.icdf(torch.tensor([0.5, 1.5], dtype=F64), *gk.CLASSIC)
    with pytest.raises(ValueError, match=r"got -0.1"):
        gk.icdf(-0.1, *gk.CLASSIC)
    assert gk.icdf(0.5, *gk.CLASSIC).item() == 3.0  # the median is A
    assert gk.icdf(torch.tensor([0.0, 1.0]), *gk.CLASSIC).tolist() == [-math.inf, math.inf]


def test_array_parameters_name_the_invalid_element():
    with pytest.raises(ValueError, match=r"min B = -1 \(an array of shape \(2,\)\)"):
        gk.validate_params(0.0, torch.tensor([1.0, -1.0]), 0.0, 0.0)
    with pytest.raises(ValueError, match=r"\(g=1, k=-0.3, c=0.8\) at index \(2,\) \(1 invalid element"):
        gk.log_prob(torch.zeros(3), 0.0, 1.0, torch.tensor([0.0, 5.0, 1.0]), -0.3)


def test_multivariate_honours_validate_args():
    bad = ([0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [-0.3, 0.0])
    with pytest.raises(ValueError, match=r"\(g=1, k=-0.3, c=0.8\) at index \(0,\)"):
        gk.MultivariateGK(*bad, torch.eye(2))                       # None: torch's default, on
    with pytest.raises(ValueError, match="symmetric"):
        gk.MultivariateGK([0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [[1.0, 0.5], [0.4, 1.0]], validate_args=True)
    dist = gk.MultivariateGK(*bad, torch.eye(2), validate_args=False)  # skipped: it is the caller's promise
    assert torch.isfinite(dist.rsample((4,), generator=torch.Generator().manual_seed(0))).all()
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        gk.MultivariateGK(*bad, torch.eye(2))                      # None follows the global default
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)
    with pytest.raises(ValueError, match=r"A must have shape \(2,\)"):  # shapes are always checked
        gk.MultivariateGK([0.0, 0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0], torch.eye(2), validate_args=False)


def test_validity_boundary_is_numerically_right():
    # independent check on a fine z grid: where validate_params accepts, Q' > 0; where it rejects, Q' < 0
    z = np.sinh(np.linspace(-10, 10, 400001))
    for g, k in [(1.0, -0.3), (6.0, -0.5), (7.0, -0.5), (1.8, -0.1), (2.1, -0.1), (10.0, -0.5), (0.0, -0.5),
                 (3.0, 0.0), (-9.0, 0.0), (-0.3, -0.02)]:
        ok = np.all(dq_np(z, 0.0, 1.0, g, k) > 0)
        try:
            gk.validate_params(0.0, 1.0, g, k)
            accepted = True
        except ValueError:
            accepted = False
        assert accepted == ok, (g, k)
    # the elementwise version agrees with the raising one
    G, K = np.meshgrid(np.linspace(-8, 8, 41), np.linspace(-0.5, 0.3, 17))
    expected = np.zeros(G.shape, dtype=bool)
    for idx in np.ndindex(G.shape):
        try:
            gk.validate_params(0.0, 1.0, G[idx], K[idx])
            expected[idx] = True
        except ValueError:
            pass
    np.testing.assert_array_equal(gk.is_valid(0.0, 1.0, G, K), expected)
    assert gk.is_valid(0.0, 1.0, 0.0, 0.0) and not gk.is_valid(0.0, 1.0, 1.0, -0.3)
    np.testing.assert_array_equal(gk.is_valid(0.0, [1.0, -1.0, 1.0], 0.0, [0.0, 0.0, -0.7]), [True, False, False])
    with pytest.raises(ValueError, match="c must be in"):
        gk.validate_params(0.0, 1.0, 0.0, 0.0, 1.0)


# --- multivariate -----------------------------------------------------------------------------------------

A2, B2, G2, K2, RHO = [3.0, 4.0], [1.0, 0.5], [1.0, 2.0], [0.5, 0.4], 0.6


def _mv(requires_grad=False):
    A, B, g, k = (torch.tensor(v, dtype=F64, requires_grad=requires_grad) for v in (A2, B2, G2, K2))
    R = torch.tensor([[1.0, RHO], [RHO, 1.0]], dtype=F64)
    return gk.MultivariateGK(A, B, g, k, R), (A, B, g, k, R)


def test_multivariate_log_prob_matches_independent_computation():
    A = np.array([0.0, 1.0, -2.0])
    B = np.array([1.0, 2.0, 0.5])
    g = np.array([2.0, -1.0, 0.0])
    k = np.array([0.5, 0.0, 0.2])
    R = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.5], [-0.2, 0.5, 1.0]])
    dist = gk.MultivariateGK(*(torch.as_tensor(v) for v in (A, B, g, k, R)))
    x = dist.sample((40,), generator=torch.Generator().manual_seed(0)).numpy()
    x[0] = [100.0, -50.0, 3.0]  # a far point too
    lp = dist.log_prob(torch.as_tensor(x)).numpy()
    assert lp.shape == (40,)
    z = np.array([[brentq_score(x[i, j], A[j], B[j], g[j], k[j]) for j in range(3)] for i in range(40)])
    ref = stats.multivariate_normal(mean=np.zeros(3), cov=R).logpdf(z) - np.log(dq_np(z, A, B, g, k)).sum(1)
    np.testing.assert_allclose(lp, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dist.marginal_cdf(torch.as_tensor(x)).numpy(), stats.norm.cdf(z), rtol=1e-10,
                               atol=1e-14)


def test_multivariate_is_a_torch_distribution_with_gradients():
    dist, (A, B, g, k, R) = _mv(requires_grad=True)
    assert isinstance(dist, torch.distributions.Distribution)
    assert dist.event_shape == (2,) and dist.batch_shape == ()
    x = dist.rsample((6,))
    assert x.shape == (6, 2) and x.requires_grad
    value = torch.randn(3, 2, dtype=F64).mul(2).add(3).requires_grad_()
    assert torch.autograd.gradcheck(lambda v, A, B, g, k: dist.__class__(A, B, g, k, R).log_prob(v),
                                    (value, A, B, g, k))
    # nn.Parameter-derived float32 parameters, as in a learnable prior
    loc = torch.nn.Parameter(torch.zeros(2))
    prior = gk.MultivariateGK(loc + 1.0, torch.ones(2), torch.ones(2), 0.2 * torch.ones(2), torch.eye(2))
    lp = prior.log_prob(torch.randn(8, 2))
    assert lp.shape == (8,) and lp.dtype == torch.float32
    lp.sum().backward()
    assert loc.grad is not None and torch.isfinite(loc.grad).all()


def test_multivariate_samples_have_the_right_margins_and_copula():
    dist, _ = _mv()
    x = dist.sample((20000,), generator=torch.Generator().manual_seed(1))
    for j in range(2):
        res = stats.kstest(x[:, j].numpy(), lambda v: gk.cdf(torch.as_tensor(v), A2[j], B2[j], G2[j], K2[j]).numpy())
        assert res.pvalue > 0.01
    z = dist.scores(x).numpy()
    assert abs(np.corrcoef(z.T)[0, 1] - RHO) < 0.02


@pytest.mark.parametrize("R,match", [
    ([[1.0, 0.5], [0.4, 1.0]], "symmetric"),
    ([[2.0, 0.5], [0.5, 1.0]], "unit diagonal"),
    ([[1.0, 1.2], [1.2, 1.0]], "positive definite"),
    ([[1.0, 0.0, 0.0]], "square"),
    ([[1.0, math.nan], [math.nan, 1.0]], "finite"),
])
def test_bad_correlation_raises(R, match):
    with pytest.raises(ValueError, match=match):
        gk.MultivariateGK(A2, B2, G2, K2, R)


def test_multivariate_bad_parameters_raise():
    R = torch.eye(2, dtype=F64)
    with pytest.raises(ValueError, match=r"A must have shape \(2,\)"):
        gk.MultivariateGK([1.0, 2.0, 3.0], B2, G2, K2, R)
    with pytest.raises(ValueError, match=r"B \(scale\) must be > 0"):
        gk.MultivariateGK(A2, [1.0, -1.0], G2, K2, R)


# --- fitting ----------------------------------------------------------------------------------------------

def test_octile_kurtosis_table_is_increasing():
    assert np.all(np.diff(gk._KURT_TABLE) > 0)


@pytest.mark.parametrize("A,B,g,k", [(3.0, 1.0, 2.0, 0.5), (0.0, 2.0, -1.0, 0.1), (1.0, 1.0, 8.0, -0.4)])
def test_fits_recover_parameters_from_exact_quantiles(A, B, g, k):
    # noiseless data x_i = Q(Phi^-1((i - 0.5)/n)): the octile equations hold up to interpolation error
    # and the least-squares fit must reach the truth (cost ~ 0)
    n = 1600
    z = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)
    x = q_np(z, A, B, g, k)
    np.testing.assert_allclose(gk.octile_estimate(x), (A, B, g, k), atol=2e-3)
    res = gk.fit_lm(np.random.default_rng(0).permutation(x))
    assert res.converged, res.message
    np.testing.assert_allclose(res.params, (A, B, g, k), atol=1e-7)
    assert res.cost < 1e-12


# (A, B, g, k), n, tolerance on the median absolute error over seeds
RECOVERY = [
    ((3.0, 1.0, 2.0, 0.5), 10_000, 0.05),   # the target
    ((0.0, 2.0, -1.0, 0.1), 10_000, 0.05),
    ((-1.0, 0.5, 0.5, 1.0), 10_000, 0.05),
    ((3.0, 1.0, 2.0, 0.5), 1_000, 0.15),    # n = 1000: all order statistics, looser
]


@pytest.mark.parametrize("theta,n,tol", RECOVERY)
def test_lm_recovers_known_parameters(theta, n, tol):
    errs = []
    for seed in range(7):
        x = gk.sample(n, *theta, generator=torch.Generator().manual_seed(seed)).numpy()
        res = gk.fit_lm(x)
        assert res.converged, res.message
        assert res.n_residuals == min(n, gk.N_FULL if n <= gk.N_FULL else gk.M_GRID)
        errs.append(np.abs(np.array(res.params) - theta))
    med = np.median(errs, axis=0)
    assert np.all(med < tol), med


def test_other_methods_agree_with_lm():
    x = gk.sample(5000, 3.0, 1.0, 2.0, 0.5, generator=torch.Generator().manual_seed(4)).numpy()
    lm = gk.fit_quantiles(x, "lm")
    trf = gk.fit_quantiles(x, "trf")
    nm = gk.fit_quantiles(x, "nelder-mead")
    octile = gk.fit_quantiles(x, "octile")
    assert lm.converged and trf.converged and nm.converged
    np.testing.assert_allclose(trf.params, lm.params, atol=1e-5)
    np.testing.assert_allclose(nm.params, lm.params, atol=1e-3)
    assert lm.cost <= nm.cost * (1 + 1e-9) and lm.cost < octile.cost
    assert octile.params == gk.octile_estimate(x) == lm.start


def test_unweighted_residuals_are_the_plain_quantile_residuals():
    x = gk.sample(1500, 3.0, 1.0, 2.0, 0.5, generator=torch.Generator().manual_seed(9)).numpy()
    res = gk.fit_lm(x, weights="none")
    assert res.converged and res.weights == "none"
    z = stats.norm.ppf((np.arange(1, 1501) - 0.5) / 1500)
    r = np.sort(x) - q_np(z, *res.params)
    assert res.cost == pytest.approx(0.5 * r @ r, rel=1e-10)
    # at the optimum the gradient J^T r vanishes: perturbing any parameter raises the cost
    for i in range(4):
        for s in (-1e-4, 1e-4):
            th = np.array(res.params)
            th[i] += s
            r2 = np.sort(x) - q_np(z, *th)
            assert 0.5 * r2 @ r2 >= res.cost
    with pytest.raises(ValueError, match="weights must be one of"):
        gk.fit_lm(x, weights="huber")


def test_lm_trace_records_the_cost():
    x = gk.sample(3000, 3.0, 1.0, 2.0, 0.5, generator=torch.Generator().manual_seed(5)).numpy()
    res = gk.fit_lm(x, trace=True)
    assert len(res.history) >= res.nfev and min(res.history) == pytest.approx(res.cost, rel=1e-12)
    assert res.history[0] > res.cost


def test_non_convergence_is_reported_not_raised():
    x = gk.sample(3000, 3.0, 1.0, 2.0, 0.5, generator=torch.Generator().manual_seed(6)).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = gk.fit_lm(x, max_nfev=1)
        nm = gk.fit_quantiles(x, "nelder-mead", max_nfev=5)
    assert res.converged is False and "maximum number of function evaluations" in res.message
    assert nm.converged is False and "Nelder-Mead" in nm.message
    assert all(math.isfinite(v) for v in res.params)


@pytest.mark.parametrize("x,match", [
    (np.r_[np.arange(20.0), np.nan], r"1 NaN/inf value\(s\)"),
    (np.r_[np.arange(20.0), np.inf], r"NaN/inf"),
    (np.arange(7.0), r"7 points; .* at least 8"),
    (np.full(50, 2.5), "constant"),
    (np.zeros((50, 2)), r"must be 1-D .* fit_multivariate_lm"),
    ("abc", "1-D array of numbers"),
])
def test_fit_bad_input_raises(x, match):
    with pytest.raises(ValueError, match=match):
        gk.fit_lm(x)


def test_fit_bad_options_raise():
    x = np.arange(20.0)
    with pytest.raises(ValueError, match="method must be one of"):
        gk.fit_quantiles(x, method="bfgs")
    with pytest.raises(ValueError, match="max_nfev must be"):
        gk.fit_lm(x, max_nfev=0)
    with pytest.raises(ValueError, match=r"m \(number of quantiles\)"):
        gk.fit_lm(x, m=3)


@pytest.mark.parametrize("X,match", [
    (np.arange(50.0), r"2-D with shape \(n, d\)"),
    (np.c_[np.arange(50.0), np.r_[np.arange(49.0), np.nan]], r"X\[:, 1\] contains 1 NaN"),
    (np.c_[np.arange(50.0), np.ones(50)], r"X\[:, 1\] is constant"),
    (np.zeros((5, 2)), r"X\[:, 0\] has 5 points"),
])
def test_multivariate_fit_bad_input_raises(X, match):
    with pytest.raises(ValueError, match=match):
        gk.fit_multivariate_lm(X)


def test_correlation_recovery_bivariate():
    dist, _ = _mv()
    X = dist.sample((20000,), generator=torch.Generator().manual_seed(7))
    fit = gk.fit_multivariate_lm(X)
    assert fit.converged, fit.message
    assert abs(fit.R[0, 1] - RHO) < 0.02
    np.testing.assert_allclose(fit.params, np.array([A2, B2, G2, K2]).T, atol=0.1)
    fitted = fit.distribution()
    assert isinstance(fitted, gk.MultivariateGK)
    # the fitted model explains held-out data about as well as the truth
    Xt = dist.sample((5000,), generator=torch.Generator().manual_seed(8))
    assert abs(fitted.log_prob(Xt).mean().item() - dist.log_prob(Xt).mean().item()) < 0.02


def test_recovery_study_table():
    table = gk.recovery_study((0.0, 1.0, 0.5, 0.2), ns=[400], n_seeds=2)
    assert list(table.index.get_level_values("method")) == list(gk.RECOVERY_METHODS)
    assert list(table.columns) == ["|A err|", "|B err|", "|g err|", "|k err|", "ms/fit", "cpu ms/fit", "converged"]
    assert (table["converged"] == "2/2").all() and (table["|A err|"] < 0.5).all()
    # LM and TRF minimise the same weighted sum of squares
    np.testing.assert_allclose(table.loc[(400, "LM")].iloc[:4].to_numpy(float),
                               table.loc[(400, "TRF")].iloc[:4].to_numpy(float), atol=1e-5)


def test_nearest_correlation_projects_to_a_valid_matrix():
    S = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]])  # not positive definite
    assert np.linalg.eigvalsh(S).min() < 0
    R = gk.nearest_correlation(S)
    gk.validate_correlation(R)  # symmetric, unit diagonal, positive definite
    np.testing.assert_array_equal(np.diag(R), 1.0)
    good = np.array([[1.0, 0.3], [0.3, 1.0]])
    np.testing.assert_allclose(gk.nearest_correlation(good), good, atol=1e-14)


def test_fit_near_the_validity_boundary_refits_to_a_valid_distribution():
    # Data from a valid g-and-k with k = 0 and small g: the unconstrained LM fit sometimes lands at k < 0,
    # where Q' < 0 for small |g|; the fit must then refit with k >= 0 and hand back a valid distribution.
    refits = 0
    for seed in range(30):
        x = gk.sample(300, 0.0, 1.0, 0.1, 0.0, generator=torch.Generator().manual_seed(seed))
        fit = gk.fit_lm(x)
        refits += "refitted with k >= 0" in fit.message
        assert fit.converged, fit.message
        gk.validate_params(*fit.params)  # raises if invalid
        assert abs(fit.params[0]) < 0.3 and abs(fit.params[1] - 1.0) < 0.3
    assert refits > 0  # the boundary case really was exercised


def test_fitter_inner_loop_skips_validation(monkeypatch):
    # the LM fitter evaluates its residuals many times; the validity check runs once on the result only
    calls = []
    real = gk.validate_params
    monkeypatch.setattr(gk, "validate_params", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    x = gk.sample(3000, *gk.CLASSIC, generator=torch.Generator().manual_seed(5), validate=False).numpy()
    fit = gk.fit_lm(x)
    assert fit.converged and fit.nfev > 3
    assert len(calls) == 1


# --- analysis helpers of the chapter -----------------------------------------------------------------------

def test_octile_summaries_match_the_closed_forms():
    # skewness = c tanh(g z6 / 2) for every k; kurtosis = [(1+z7^2)^k z7 - (1+z5^2)^k z5] / [(1+z6^2)^k z6]
    z5, z6, z7 = stats.norm.ppf([5 / 8, 6 / 8, 7 / 8])
    g = np.linspace(-6, 6, 25)
    for k in (0.0, 0.5, 1.0):
        skew, kurt = gk.octile_summaries(g, k)
        np.testing.assert_allclose(skew, C * np.tanh(g * z6 / 2), rtol=1e-12, atol=1e-15)
        P = lambda z: (1 + z * z) ** k * z  # noqa: E731
        np.testing.assert_allclose(kurt, (P(z7) - P(z5)) / P(z6), rtol=1e-12)
    # the normal (g = k = 0): Moors' kurtosis (z7 - z5)/z6 = 1.2331
    assert gk.octile_summaries(0.0, 0.0)[1] == pytest.approx(1.2330951, abs=1e-7)
    # invalid (g, k) are rejected unless asked otherwise
    with pytest.raises(ValueError, match=r"\(g=2, k=-0.5, c=0.8\) at index"):
        gk.octile_summaries(2.0, np.array([0.0, -0.5]))
    skew, kurt = gk.octile_summaries(2.0, np.array([0.0, -0.5]), validate=False)
    assert kurt.shape == (2,) and kurt[1] < kurt[0]


def test_qq_points_are_model_and_hazen_quantiles():
    x = gk.sample(5000, *gk.CLASSIC, generator=torch.Generator().manual_seed(3)).numpy()
    theta = (3.1, 0.9, 1.8, 0.45)
    model, emp = gk.qq_points(x, theta, m=200)
    p = (np.arange(1, 201) - 0.5) / 200
    np.testing.assert_allclose(emp, np.quantile(x, p, method="hazen"), rtol=1e-13)
    np.testing.assert_allclose(model, q_np(stats.norm.ppf(p), *theta), rtol=1e-12)
    # exact quantiles of the model itself lie on the diagonal
    x_exact = q_np(stats.norm.ppf(p), *gk.CLASSIC)
    model, emp = gk.qq_points(x_exact, gk.CLASSIC, m=200)
    np.testing.assert_allclose(model, emp, rtol=1e-12)
    with pytest.raises(ValueError, match=r"k \(tail weight\) must be >= -0.5"):
        gk.qq_points(x, (0.0, 1.0, 0.0, -1.0))


def test_fit_summary_tables():
    x = gk.sample(2000, *gk.CLASSIC, generator=torch.Generator().manual_seed(2)).numpy()
    fit = gk.fit_lm(x)
    table = fit.summary(truth=gk.CLASSIC)
    assert list(table.index) == ["truth", "octile start", "LM fit"] and list(table.columns) == ["A", "B", "g", "k"]
    np.testing.assert_array_equal(table.to_numpy(), np.array([gk.CLASSIC, fit.start, fit.params]))
    assert list(gk.fit_quantiles(x, "trf").summary().index) == ["octile start", "TRF fit"]

    truth = gk.MultivariateGK([3.0, 4.0, 5.0], [1.0, 0.5, 2.0], [1.0, 2.0, 0.0], [0.5, 0.4, 0.1],
                              [[1.0, 0.6, 0.1], [0.6, 1.0, -0.2], [0.1, -0.2, 1.0]])
    mfit = gk.fit_multivariate_lm(truth.sample((3000,), generator=torch.Generator().manual_seed(0)))
    table = mfit.summary(truth)
    assert list(table.columns) == ["A₁", "A₂", "A₃", "B₁", "B₂", "B₃", "g₁", "g₂", "g₃", "k₁", "k₂", "k₃",
                                   "ρ₁,₂", "ρ₁,₃", "ρ₂,₃"]
    np.testing.assert_allclose(table.loc["truth"], [3, 4, 5, 1, 0.5, 2, 1, 2, 0, 0.5, 0.4, 0.1, 0.6, 0.1, -0.2])
    np.testing.assert_allclose(table.loc["LM fit"], list(mfit.params.T.ravel()) + [mfit.R[0, 1], mfit.R[0, 2],
                                                                                    mfit.R[1, 2]])
    X2 = truth.sample((500,), generator=torch.Generator().manual_seed(1))[:, :2]
    bivariate = gk.fit_multivariate_lm(X2).summary()
    assert list(bivariate.columns)[-1] == "ρ" and list(bivariate.index) == ["LM fit"]


def test_recovery_verdict_judges_the_row():
    import pandas as pd

    index = pd.MultiIndex.from_tuples([(1000, "LM"), (10_000, "LM"), (10_000, "octile")], names=["n", "method"])
    table = pd.DataFrame({"|A err|": [0.2, 0.01, 0.01], "|B err|": [0.2, 0.02, 0.02], "|g err|": [0.2, 0.049, 0.3],
                          "|k err|": [0.2, 0.03, 0.03], "ms/fit": [3.0, 8.0, 0.5]}, index=index)
    v = gk.recovery_verdict(table)
    assert v.errors == (0.01, 0.02, 0.049, 0.03) and v.accurate and v.fast
    assert str(v).startswith("PASS: LM at n=10,000 recovers every parameter within 0.05")
    assert not gk.recovery_verdict(table, method="octile").accurate          # |g err| 0.3
    assert not gk.recovery_verdict(table, max_ms=5.0).fast                  # 8 ms
    assert str(gk.recovery_verdict(table, n=1000)).startswith("FAIL")
    with pytest.raises(ValueError, match=r"no row \(n=100, method='LM'\)"):
        gk.recovery_verdict(table, n=100)


def test_chapter_one_residual_lm_is_refused():
    from vaebook.chapters.gk_distribution import one_residual_lm_error

    message = one_residual_lm_error()
    # scipy's rule: MINPACK LM needs at least as many residuals (1) as variables (4)
    assert "Method 'lm' doesn't work when the number of residuals is less than the number of variables" in message


def test_chapter_log_density_grid_matches_pointwise_log_prob():
    from vaebook.chapters.gk_distribution import log_density_grid

    dist, _ = _mv()
    X1, X2, logd = log_density_grid(dist, (0.0, 12.0), (2.5, 9.0), points=7)
    assert X1.shape == X2.shape == logd.shape == (7, 7)
    assert X1[0, 0] == 0.0 and X1[0, -1] == 12.0 and X2[0, 0] == 2.5 and X2[-1, 0] == 9.0  # x1 along columns
    for i, j in [(0, 0), (3, 5), (6, 1)]:
        point = torch.tensor([[X1[i, j].item(), X2[i, j].item()]], dtype=F64)
        assert logd[i, j].item() == pytest.approx(dist.log_prob(point).item(), rel=1e-12)
    with pytest.raises(ValueError, match="bivariate"):
        log_density_grid(gk.MultivariateGK(0.0, 1.0, 0.0, 0.0, torch.eye(3)), (0, 1), (0, 1))


@pytest.mark.parametrize("k", [0.9, 2.0])
def test_moments_exist_for_heavy_tails_and_agree_two_ways(k):
    """Every moment of the g-and-k is finite for k > -1/2 (|Q(z)| grows like |z|^(2k+1) against a Gaussian
    tail), also for k >= 1/2 and k >= 1 where the g-and-h's h would have none. The first two moments by
    numerical integration over z (E[Q(Z)^m], Z ~ N(0, 1)) equal those over x with the density (∫ x^m f(x) dx)."""
    import scipy.integrate
    import scipy.stats

    A, B, g = 3.0, 1.0, 2.0
    q = lambda z: float(gk.quantile(torch.tensor([z], dtype=torch.float64), A, B, g, k)[0])  # noqa: E731
    f = lambda x: float(torch.exp(gk.log_prob(torch.tensor([x], dtype=torch.float64), A, B, g, k))[0])  # noqa: E731
    for m in (1, 2):
        over_z, _ = scipy.integrate.quad(lambda z: q(z) ** m * scipy.stats.norm.pdf(z), -12, 12, limit=400)
        lo, hi = q(-12.0), q(12.0)  # the same mass as z in [-12, 12]: all but ~1e-32 of it
        over_x, _ = scipy.integrate.quad(lambda x: x ** m * f(x), lo, hi, limit=800,
                                         points=[q(z) for z in (-3, -1, 0, 1, 3)])
        assert np.isfinite(over_z) and over_z == pytest.approx(over_x, rel=1e-4)


# --- the recovery study's per-fit table and the numbers and sentences the chapter draws from it ---------

def _summary(rows: dict[tuple[int, str], tuple[float, float, float, float]]):
    import pandas as pd

    index = pd.MultiIndex.from_tuples(list(rows), names=["n", "method"])
    return pd.DataFrame([[*errs, 1.0] for errs in rows.values()], index=index,
                        columns=["|A err|", "|B err|", "|g err|", "|k err|", "ms/fit"])


def test_recovery_errors_are_the_fits_of_the_seeded_samples():
    theta, methods = (0.0, 1.0, 0.5, 0.2), {"LM": ("lm", "density"), "octile": ("octile", "density")}
    errors = gk.recovery_errors(theta, ns=[300, 600], n_seeds=2, methods=methods, seed=5)
    assert list(errors.columns) == ["n", "method", "seed", "A", "B", "g", "k", "ms", "cpu_ms", "converged"]
    assert len(errors) == 2 * 2 * 2 and set(errors.seed) == {5, 6}
    for _, row in errors.iterrows():  # refit each sample independently: the same signed errors
        x = gk.sample(row.n, *theta, generator=torch.Generator().manual_seed(int(row.seed))).numpy()
        method, weights = methods[row.method]
        expected = np.array(gk.fit_quantiles(x, method=method, weights=weights).params) - theta
        np.testing.assert_allclose(row[["A", "B", "g", "k"]].to_numpy(float), expected, rtol=0, atol=1e-12)
    table = gk.recovery_summary(errors)
    assert list(table.index) == [(300, "LM"), (300, "octile"), (600, "LM"), (600, "octile")]
    grp = errors[(errors.n == 600) & (errors.method == "LM")]
    assert table.loc[(600, "LM"), "|g err|"] == pytest.approx(np.median(np.abs(grp.g)))
    assert table.loc[(600, "LM"), "converged"] == "2/2"
    study = gk.recovery_study(theta, ns=[300, 600], n_seeds=2, methods=methods, seed=5)
    np.testing.assert_allclose(study.iloc[:, :4].to_numpy(float), table.iloc[:, :4].to_numpy(float))


def test_recovery_slopes_find_the_rate():
    ns = [1000, 10_000, 100_000]
    rows = {(n, "LM"): (0.5 / math.sqrt(n), 2.0 / math.sqrt(n), 3.0 / n, 0.1) for n in ns}
    slopes = gk.recovery_slopes(_summary(rows))
    assert slopes == pytest.approx({"A": -0.5, "B": -0.5, "g": -1.0, "k": 0.0}, abs=1e-12)
    with pytest.raises(ValueError, match="at least two sample sizes"):
        gk.recovery_slopes(_summary({(1000, "LM"): (0.1, 0.1, 0.1, 0.1)}))


def test_lower_error_and_error_ratios_compare_two_methods():
    table = _summary({(1000, "LM"): (0.1, 0.2, 0.3, 0.4), (1000, "octile"): (0.2, 0.1, 0.6, 0.4),
                      (10_000, "LM"): (0.01, 0.02, 0.03, 0.04), (10_000, "octile"): (0.02, 0.04, 0.06, 0.08)})
    assert gk.lower_error(table, "octile", "LM") == {1000: ("B",), 10_000: ()}
    assert gk.lower_error(table, "LM", "octile") == {1000: ("A", "g"), 10_000: ("A", "B", "g", "k")}
    ratios = gk.error_ratios(table, "octile", "LM")
    assert list(ratios.index) == [1000, 10_000] and list(ratios.columns) == ["A", "B", "g", "k"]
    np.testing.assert_allclose(ratios.to_numpy(), [[2.0, 0.5, 2.0, 1.0], [2.0, 2.0, 2.0, 2.0]])


def test_paired_wins_count_closer_estimates():
    import pandas as pd

    rows = []
    for seed, (lm, other) in enumerate([((0.1, -0.2, 0.0, 0.5), (-0.2, 0.1, 0.1, -0.5)),
                                         ((0.3, 0.3, -0.3, 0.3), (0.1, -0.4, 0.2, 0.0))]):
        rows += [{"n": 100, "method": "LM", "seed": seed, **dict(zip("ABgk", lm))},
                 {"n": 100, "method": "other", "seed": seed, **dict(zip("ABgk", other))}]
    errors = pd.DataFrame(rows)
    # seed 0: LM closer for A, g (tie in k, farther in B); seed 1: LM closer for B only
    assert gk.paired_wins(errors, "LM", "other") == (3, 8)
    assert gk.paired_wins(errors, "other", "LM") == (4, 8)
    with pytest.raises(ValueError, match="no fits"):
        gk.paired_wins(errors, "LM", "TRF")


def test_chapter_sentences_follow_the_numbers():
    from vaebook.chapters.gk_distribution import lower_error_phrase, max_estimate_difference, param_phrase

    assert param_phrase(("g",)) == "*g*"
    assert param_phrase(["k", "A"]) == "*A* and *k*"
    assert param_phrase(("A", "B", "k")) == "*A*, *B* and *k*"
    assert param_phrase(("A", "B", "g", "k")) == "all four parameters" and param_phrase(()) == "no parameter"
    four = ("A", "B", "g", "k")
    assert lower_error_phrase({1000: four, 10_000: four}) == "all four parameters at every sample size"
    assert (lower_error_phrase({1000: four, 10_000: four, 100_000: ("B", "g")})
            == "all four parameters at *n* = 1,000 and 10,000, and *B* and *g* at *n* = 100,000")
    assert lower_error_phrase({1000: (), 10_000: ("A",)}, skip_empty=True) == "*A* at *n* = 10,000"
    assert lower_error_phrase({1000: (), 10_000: ()}, skip_empty=True) == "no parameter at any sample size"
    assert (lower_error_phrase({1000: ("A",), 10_000: (), 100_000: ("g",)})
            == "*A* at *n* = 1,000; no parameter at *n* = 10,000; and *g* at *n* = 100,000")

    import pandas as pd
    errors = pd.DataFrame([{"n": 10, "method": m, "seed": s, "A": a, "B": 0.0, "g": g, "k": 0.0}
                           for m, s, a, g in [("LM", 0, 0.1, 0.2), ("LM", 1, 0.0, 0.0),
                                              ("TRF", 0, 0.1, 0.25), ("TRF", 1, -0.01, 0.0)]])
    assert max_estimate_difference(errors, "LM", "TRF") == pytest.approx(0.05)
