r"""The g-and-k distribution: quantile, inverse, density, sampling, a Gaussian-copula multivariate version,
and fitting by Levenberg–Marquardt on quantiles.

The g-and-k distribution (Tukey; Haynes et al. 1997; Rayner & MacGillivray 2002, "Numerical maximum
likelihood estimation for the g-and-k and generalized g-and-h distributions", Statistics and Computing 12)
is defined by its quantile function. With :math:`z = \Phi^{-1}(p)` a standard-normal score,

.. math::

    Q(z; A, B, g, k, c) = A + B\,\bigl[1 + c\tanh(g z/2)\bigr]\,(1 + z^2)^k\, z ,

with location :math:`A`, scale :math:`B > 0`, skewness :math:`g`, tail weight :math:`k \ge -1/2` and the
conventional :math:`c = 0.8`. Its derivative in closed form is

.. math::

    Q'(z) = B (1+z^2)^k \Bigl[\bigl(1 + c\tanh(gz/2)\bigr)\frac{1 + (2k+1) z^2}{1 + z^2}
            + \frac{c\, g\, z}{2\cosh^2(gz/2)}\Bigr] .

There is no closed-form density or CDF: for an observation :math:`x` one solves :math:`Q(z) = x` numerically
(:func:`inverse`), then :math:`F(x) = \Phi(z)` and :math:`\log f(x) = \log\varphi(z) - \log Q'(z)`.

Validity (Prangle 2020, "gk: An R package for the g-and-k and generalised g-and-h distributions", The R
Journal 12(1), whose ``isValid`` checks :math:`Q' > 0` numerically): :math:`B > 0`, :math:`k \ge -1/2`, and
:math:`Q'(z) > 0` for every :math:`z`. With :math:`c = 0.8` and :math:`k \ge 0` every :math:`g` is valid
(Rayner & MacGillivray: :math:`c < 0.83` suffices). For :math:`k < 0` the term :math:`c\,u\,\mathrm{sech}^2 u`
(:math:`u = gz/2`) can outweigh the first term where :math:`(1+(2k+1)z^2)/(1+z^2)` has fallen towards
:math:`2k+1`, i.e. at :math:`|z| \approx 2/|g|`: the invalid set is :math:`0 < |g| \le g^*(k)`, with
:math:`g^*` growing as :math:`k \to -1/2` (measured here: :math:`g^* \approx 1.9` at :math:`k=-0.1`, 4.8 at
:math:`-0.3`, 6.5 at :math:`-0.5`). :math:`g = 0` is always valid, so is a large :math:`|g|`.

Every public function below that takes g-and-k parameters checks them (:func:`validate_params`) and raises
``ValueError`` naming the parameter, its value and the valid region, as ``torch.distributions`` does with
``validate_args``; ``validate=False`` (``validate_args=False`` for :class:`MultivariateGK`) skips the check
for callers whose parameters are valid by construction: the flow layers, the learnt priors, the fitter's
inner loop.

The multivariate g-and-k (Drovandi & Pettitt 2011, "Likelihood-free Bayesian estimation of multivariate
quantile distributions", Computational Statistics & Data Analysis 55) draws :math:`z \sim N(0, R)` with
:math:`R` a correlation matrix and applies a g-and-k quantile to each margin (a Gaussian copula):
:class:`MultivariateGK`.

Fitting (:func:`fit_lm`, :func:`fit_quantiles`, :func:`fit_multivariate_lm`) is least squares on
quantile residuals (by default weighted by the inverse standard deviation of each empirical quantile),
solved by MINPACK Levenberg–Marquardt and started from the closed-form octile estimator
(:func:`octile_estimate`); the correlation comes from the normal scores of the fitted margins.

The distribution functions take and return torch tensors and are differentiable in ``x`` and the four
parameters (the flows and priors elsewhere in the library rely on that). The root finding behind
:func:`inverse` runs without autograd (in numpy for CPU tensors, in torch elsewhere) and the gradients
come from one final Newton step taken with autograd (implicit differentiation). The fitting uses numpy
and scipy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np
import torch
from scipy.special import ndtr as _ndtr
from scipy.special import ndtri
from torch.distributions import Distribution, constraints

__all__ = [
    "C_DEFAULT", "CLASSIC", "PARAM_NAMES", "VALID_REGION", "METHOD_LABELS", "quantile", "quantile_dz",
    "log_quantile_dz", "inverse", "cdf", "icdf", "log_prob", "sample", "validate_params", "is_valid",
    "validate_correlation", "MultivariateGK", "GKFit", "MultivariateGKFit", "octile_estimate", "octile_summaries",
    "qq_points", "fit_quantiles", "fit_lm", "fit_multivariate_lm", "nearest_correlation", "recovery_study",
    "recovery_errors", "recovery_summary", "recovery_slopes", "lower_error", "error_ratios", "paired_wins",
    "recovery_verdict", "RecoveryVerdict",
]

C_DEFAULT = 0.8
PARAM_NAMES = ("A", "B", "g", "k")
#: The classic test case (A, B, g, k) of the g-and-k literature (e.g. the examples of the R package gk).
CLASSIC = (3.0, 1.0, 2.0, 0.5)
#: Largest |z| the inverse searches. For k >= 0 Q(±1e150) exceeds any float; near k = -1/2, where Q grows
#: only like |z|^(2k+1), it does not (k = -0.49 reaches |x - A| ~ 1000 B). Beyond it the root is reported
#: as ±inf, so F(x) is 0 or 1 and the density 0, which is what they are in float64 anyway (Phi(-38)
#: already underflows).
Z_MAX = 1e150
_W_MAX = math.asinh(Z_MAX)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_W_INNER = math.asinh(50.0)  # generic path: first bracket [-W_INNER, W_INNER], else out to ±W_MAX
_N_BISECT = 12         # generic path: bisection steps in w = asinh(z) on that bracket
_NEWTON_TOL = 1e-13    # stop when a Newton step (or the bracket) in w is below this (+ 4 ulp of w)
_NEWTON_MAX_ITER = 100


# ------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------

def _tensor(v: Any, name: str) -> torch.Tensor:
    """Tensors pass through (integers become float64); numbers and arrays become float64 tensors.

    Python floats become 0-dim float64 tensors, which do not promote a float32 tensor they meet (torch's
    type promotion lets dimensioned operands win within a category), so float32 inputs stay float32.
    """
    if isinstance(v, torch.Tensor):
        return v if v.is_floating_point() else v.to(torch.float64)
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, an array or a tensor, got {v!r}") from err
    return torch.as_tensor(arr)


def _tensors(**named: Any) -> list[torch.Tensor]:
    return [_tensor(v, k) for k, v in named.items()]


def _promote(*ts: torch.Tensor) -> torch.dtype:
    acc = ts[0]
    for t in ts[1:]:
        dt = torch.result_type(acc, t)
        # keep a representative tensor with the right dimensionality class for the next comparison
        acc = torch.empty((1,) if (acc.dim() > 0 or t.dim() > 0) else (), dtype=dt)
    return acc.dtype


def _q(z, A, B, g, k, c):
    # (1+z^2)^k as exp(k log1p(z^2)): no overflow of z^2 before |z| ~ 1e154, smooth gradient in k.
    return _q_x(z, A, B, g, k, c, _TORCH)


def _bracket_term(z, g, k, c):
    """T(z) = (1 + c tanh u)(1 + (2k+1) z^2)/(1+z^2) + c u sech^2 u, u = g z / 2, so Q' = B (1+z^2)^k T."""
    u = 0.5 * g * z
    # sech^2 u = 4 e^{-2|u|} / (1 + e^{-2|u|})^2: no overflow of cosh, exact gradient (zero at u = 0).
    e = torch.exp(-2.0 * u.abs())
    sech2 = 4.0 * e / (1.0 + e) ** 2
    # (1+(2k+1)z^2)/(1+z^2) rewritten as (2k+1) - 2k/(1+z^2): finite for any z and exact at k = -1/2.
    h = (2.0 * k + 1.0) - 2.0 * k / (1.0 + z * z)
    return (1.0 + c * torch.tanh(u)) * h + c * u * sech2


def _dq(z, A, B, g, k, c):
    return B * torch.exp(k * torch.log1p(z * z)) * _bracket_term(z, g, k, c)


def _log_dq(z, B, g, k, c):
    # in log space so that far tails (Q' below 1e-308 for k = -1/2) stay finite
    return torch.log(B) + k * torch.log1p(z * z) + torch.log(_bracket_term(z, g, k, c))


# ------------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------------

# u = g z / 2 grid for the Q' > 0 check: only u < 0 can make T negative (for u >= 0 and k >= -1/2 both
# terms are >= 0). Log-spaced from 1e-4 to 40 (sech^2 40 ~ 1e-34) with 0.9 % spacing, plus a z grid that
# covers g = 0 and anything the u grid might miss. Done in numpy: it is tiny, and torch's thread pool
# costs more than the arithmetic on a busy machine.
_U_GRID = -np.logspace(-4.0, math.log10(40.0), 1500)
_Z_GRID = np.sinh(np.linspace(-12.0, 12.0, 1201))


def _bracket_term_np(z, g, k, c):
    u = 0.5 * g * z
    e = np.exp(-2.0 * np.abs(u))
    return (1.0 + c * np.tanh(u)) * ((2.0 * k + 1.0) - 2.0 * k / (1.0 + z * z)) + c * u * 4.0 * e / (1.0 + e) ** 2


def _np64(v: Any, name: str) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().to(torch.float64).cpu().numpy()
    try:
        return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"g-and-k parameter {name} must be a number, an array or a tensor, got {v!r}") from err


def _describe(t: np.ndarray, name: str, worst: str = "") -> str:
    """``name = value`` for one value; for an array its worst element (``worst``: "min" or "max") and shape."""
    if t.size == 1:
        return f"{name} = {t.item():g}"
    if worst:
        value = t.min() if worst == "min" else t.max()
        return f"{worst} {name} = {value:g} (an array of shape {t.shape})"
    return f"{name}, an array of shape {t.shape}"


#: The valid region, as the messages of :func:`validate_params` state it.
VALID_REGION = "B > 0, k >= -0.5 and Q'(z) > 0 for every z"
# where Q'(z) > 0 fails, measured with is_valid (bisection in g): with c = 0.8 the invalid set is
# 0 < |g| < g*(k) for k < 0, g*(-0.1) = 1.94, g*(-0.3) = 4.81, g*(-0.5) = 6.54
_GK_REGION_HINT = ("with c = 0.8 every g is valid when k >= 0; for k < 0 only g = 0 or |g| above a bound that "
                   "grows as k falls (about 1.9 at k = -0.1, 4.8 at k = -0.3, 6.5 at k = -0.5)")


def validate_params(A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT) -> None:
    """Raise ``ValueError`` naming the parameter, its value and the valid region unless (A, B, g, k, c) is a
    g-and-k distribution.

    Rules: all finite; ``B > 0``; ``k >= -0.5``; ``0 <= c < 1``; and ``Q'(z) > 0`` on a dense grid of z (a
    numerical check like the R package gk's ``isValid``, Prangle 2020, which minimises Q' from several
    starting points instead). With c = 0.8, ``k >= 0`` is always valid; ``k < 0`` fails for small non-zero
    ``|g|`` (the dip of ``c u sech^2 u`` at ``z ~ -2/g`` where ``(1+(2k+1)z^2)/(1+z^2)`` has fallen to
    ~2k+1). Arrays and tensors are checked elementwise. Every public
    function of this module that takes g-and-k parameters calls this unless given ``validate=False`` (the
    flows, priors and the fitter's inner loop, which keep their parameters valid by construction).
    """
    A, B, g, k, c = (_np64(v, name) for v, name in ((A, "A"), (B, "B"), (g, "g"), (k, "k"), (c, "c")))
    for name, t in (("A", A), ("B", B), ("g", g), ("k", k), ("c", c)):
        if not np.isfinite(t).all():
            raise ValueError(f"g-and-k parameter {name} must be finite, got {_describe(t, name)} with "
                             f"{int((~np.isfinite(t)).sum())} NaN/inf value(s)")
    if (B <= 0).any():
        raise ValueError(f"g-and-k parameter B (scale) must be > 0, got {_describe(B, 'B', 'min')}; "
                         f"the valid region is {VALID_REGION}")
    if (k < -0.5).any():
        raise ValueError(f"g-and-k parameter k (tail weight) must be >= -0.5, got {_describe(k, 'k', 'min')}; "
                         f"the valid region is {VALID_REGION}")
    if ((c < 0) | (c >= 1)).any():
        raise ValueError(f"g-and-k parameter c must be in [0, 1) (conventionally 0.8), got {_describe(c, 'c')}")
    try:
        g, k, c = np.broadcast_arrays(g, k, c)
    except ValueError as err:
        raise ValueError(f"g-and-k parameters g, k, c do not broadcast: shapes {g.shape}, {k.shape}, "
                         f"{c.shape}") from err
    tmin, zmin = _min_bracket_term(g, k, c)
    bad = ~(tmin > 0)
    if bad.any():
        j = int(np.flatnonzero(bad.ravel())[0])
        gj, kj, cj, zj = g.ravel()[j], k.ravel()[j], c.ravel()[j], zmin.ravel()[j]
        index = tuple(int(i) for i in np.unravel_index(j, g.shape))
        where = "" if g.size == 1 else f" at index {index} ({int(bad.sum())} invalid element(s))"
        raise ValueError(
            f"g-and-k parameters (g={gj:g}, k={kj:g}, c={cj:g}){where} are invalid: Q'(z) <= 0 near "
            f"z = {zj:.3g}, so Q is not increasing and there is no density. The valid region is {VALID_REGION}; "
            f"{_GK_REGION_HINT}")


def _min_bracket_term(g: np.ndarray, k: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum over the check grid of T(z) = Q'(z) / (B (1+z^2)^k), and where it is, for each element of
    the (broadcast, same-shape) g, k, c. Computed once per distinct (g, k, c)."""
    gkc, inv = np.unique(np.stack([g.ravel(), k.ravel(), c.ravel()], axis=-1), axis=0, return_inverse=True)
    tmin = np.empty(len(gkc))
    zmin = np.empty(len(gkc))
    for s in range(0, len(gkc), 256):
        gg, kk, cc = (gkc[s:s + 256, i:i + 1] for i in range(3))
        nz = gg != 0
        z_u = np.where(nz, 2.0 * _U_GRID / np.where(nz, gg, 1.0), 0.0)
        z_all = np.concatenate([z_u, np.broadcast_to(_Z_GRID, (len(gg), _Z_GRID.size))], axis=1)
        with np.errstate(over="ignore", under="ignore"):
            T = _bracket_term_np(z_all, gg, kk, cc)
        imin = T.argmin(axis=1)
        rows = np.arange(len(gg))
        tmin[s:s + 256], zmin[s:s + 256] = T[rows, imin], z_all[rows, imin]
    inv = inv.reshape(-1)
    return tmin[inv].reshape(g.shape), zmin[inv].reshape(g.shape)


def is_valid(A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT) -> np.ndarray:
    """Elementwise version of :func:`validate_params`: a boolean array (broadcast shape), True where the
    parameters define a g-and-k distribution (finite, B > 0, k >= -1/2, 0 <= c < 1, Q' > 0 on the grid)."""
    A, B, g, k, c = np.broadcast_arrays(*(_np64(v, n) for v, n in ((A, "A"), (B, "B"), (g, "g"), (k, "k"),
                                                                     (c, "c"))))
    shape = A.shape
    A, B, g, k, c = (np.atleast_1d(a).ravel() for a in (A, B, g, k, c))
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(A) & np.isfinite(B) & np.isfinite(g) & np.isfinite(k) & np.isfinite(c)
        ok &= (B > 0) & (k >= -0.5) & (c >= 0) & (c < 1)
    if ok.any():
        tmin, _ = _min_bracket_term(g[ok], k[ok], c[ok])
        ok[ok] = tmin > 0
    return ok.reshape(shape)


def validate_correlation(R: Any) -> torch.Tensor:
    """Return ``R`` as a tensor after checking it is a square, symmetric, unit-diagonal, positive-definite
    correlation matrix; raise ``ValueError`` naming the failed property otherwise."""
    R = _tensor(R, "R")
    if R.dim() != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"R must be a square (d, d) correlation matrix, got shape {tuple(R.shape)}")
    Rd = R.detach().to(torch.float64)
    if not torch.isfinite(Rd).all():
        raise ValueError("R must be finite, it contains NaN or inf")
    tol = math.sqrt(torch.finfo(R.dtype).eps)
    asym = (Rd - Rd.T).abs().max().item()
    if asym > tol:
        raise ValueError(f"R must be symmetric, max |R - R^T| = {asym:.3g}")
    dev = (torch.diagonal(Rd) - 1.0).abs().max().item()
    if dev > tol:
        raise ValueError(f"R must have a unit diagonal (a correlation matrix), max |R_ii - 1| = {dev:.3g}")
    _, info = torch.linalg.cholesky_ex(Rd)
    if info.item() != 0:
        eig = torch.linalg.eigvalsh(0.5 * (Rd + Rd.T)).min().item()
        raise ValueError(f"R must be positive definite, its smallest eigenvalue is {eig:.3g}")
    return R


# ------------------------------------------------------------------------------------------------------
# univariate distribution functions (torch, differentiable)
# ------------------------------------------------------------------------------------------------------

def quantile(z: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *, validate: bool = True) -> torch.Tensor:
    r"""g-and-k quantile :math:`Q(z) = A + B[1 + c\tanh(gz/2)](1+z^2)^k z` at standard-normal scores ``z``.

    Elementwise with broadcasting; differentiable in ``z`` and all parameters. Parameters outside the valid
    region raise ``ValueError`` (:func:`validate_params`); ``validate=False`` skips the check (for callers
    whose parameters are valid by construction, e.g. a flow layer's inner loop). For a probability ``p``
    use :func:`icdf`.
    """
    z, A, B, g, k = _tensors(z=z, A=A, B=B, g=g, k=k)
    if validate:
        validate_params(A, B, g, k, c)
    return _q(z, A, B, g, k, c)


def quantile_dz(z: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *, validate: bool = True) -> torch.Tensor:
    r"""Closed-form :math:`dQ/dz = B(1+z^2)^k[(1+c\tanh(gz/2))\frac{1+(2k+1)z^2}{1+z^2}
    + \frac{c g z}{2\cosh^2(gz/2)}]`, elementwise, differentiable; ``validate`` as in :func:`quantile`."""
    z, A, B, g, k = _tensors(z=z, A=A, B=B, g=g, k=k)
    if validate:
        validate_params(A, B, g, k, c)
    return _dq(z, A, B, g, k, c)


def log_quantile_dz(z: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *,
                    validate: bool = True) -> torch.Tensor:
    r""":math:`\log Q'(z) = \log B + k\log(1+z^2) + \log T(z)`, computed in log space (finite in far tails);
    ``validate`` as in :func:`quantile`."""
    z, A, B, g, k = _tensors(z=z, A=A, B=B, g=g, k=k)
    if validate:
        validate_params(A, B, g, k, c)
    return _log_dq(z, B, g, k, c)


# The root finder is written once for two array libraries. On the CPU it runs in numpy: single-threaded
# SIMD transcendentals are 2-5x faster than torch's per element here, and numpy has no thread pool, whose
# per-operation parallel regions can each stall for a scheduler time slice on a busy shared machine
# (measured: 0.3 s vs 3-20 s for 10^6 points). On other devices it runs in torch.
_NP = SimpleNamespace(sinh=np.sinh, cosh=np.cosh, tanh=np.tanh, exp=np.exp, log1p=np.log1p, abs=np.abs, sign=np.sign,
                      where=np.where, full_like=np.full_like, clip=np.clip, flatnonzero=np.flatnonzero,
                      searchsorted=lambda a, v: np.searchsorted(a, v, side="right"))
_TORCH = SimpleNamespace(sinh=torch.sinh, cosh=torch.cosh, tanh=torch.tanh, exp=torch.exp, log1p=torch.log1p,
                         abs=torch.abs, sign=torch.sign, where=torch.where, full_like=torch.full_like, clip=torch.clamp,
                         flatnonzero=lambda m: torch.nonzero(m).reshape(-1),
                         searchsorted=lambda a, v: torch.searchsorted(a, v.contiguous(), right=True))


def _q_x(z, A, B, g, k, c, xp):
    return A + B * (1.0 + c * xp.tanh(0.5 * g * z)) * xp.exp(k * xp.log1p(z * z)) * z


def _q_dqdw(w, A, B, g, k, c, xp):
    """Q(sinh w) and dQ/dw = Q'(z) cosh w, sharing the expensive terms (the solver's inner loop)."""
    z = xp.sinh(w)
    z2 = z * z
    u = 0.5 * g * z
    t = xp.tanh(u)
    P = xp.exp(k * xp.log1p(z2))
    Q = A + B * (1.0 + c * t) * P * z
    sech2 = 1.0 - t * t  # enough here: where it loses digits the term is negligible next to the first
    h = (2.0 * k + 1.0) - 2.0 * k / (1.0 + z2)
    dQ = B * P * ((1.0 + c * t) * h + c * u * sech2) * xp.cosh(w)
    return Q, dQ


def _support_edges(ps, zmax, xp):
    """Q(-Z_MAX) and Q(Z_MAX); at k = -1/2 the exact edges of the bounded support, A - B(1 - c sgn g) and
    A + B(1 + c sgn g), which Q(±Z_MAX) only approximates to rounding."""
    A, B, g, k, c = ps
    lo, hi = _q_x(-zmax, *ps, xp), _q_x(zmax, *ps, xp)
    half = k == -0.5
    sg = xp.sign(g)
    return xp.where(half, A - B * (1.0 - c * sg), lo), xp.where(half, A + B * (1.0 + c * sg), hi)


def _sub(p, keep):
    return p if p.ndim == 0 else p[keep]


def _newton_w(xa, pa, w, wl, wh, out, idx, xp):
    """Bracketed Newton on F(w) = Q(sinh w) - x; writes sinh(root) into ``out[idx]``.

    A step that leaves the bracket [wl, wh] (or is NaN) is replaced by the bracket's midpoint; elements
    that converged (step below _NEWTON_TOL + 4 eps |w|, or bracket that narrow, or F == 0) leave the
    working set, so a few slow far-tail elements do not keep the bulk iterating.
    """
    for it in range(_NEWTON_MAX_ITER):
        F, dF = _q_dqdw(w, *pa, xp)
        F = F - xa
        wl = xp.where(F < 0, w, wl)
        wh = xp.where(F > 0, w, wh)
        wn = w - F / dF
        # closed bracket: near the root F is rounding noise and w itself becomes a bracket end, so a strict
        # test would reject the (tiny, correct) step; the test is False for NaN (inf/inf far out)
        wn = xp.where((wn >= wl) & (wn <= wh), wn, 0.5 * (wl + wh))
        exact = F == 0
        wn = xp.where(exact, w, wn)
        scale = _NEWTON_TOL + 4e-16 * xp.abs(w)
        done = exact | (xp.abs(wn - w) <= scale) | ((wh - wl) <= scale)
        if it == _NEWTON_MAX_ITER - 1 or bool(done.all()):
            out[idx] = xp.sinh(wn)
            return
        if bool(done.any()):
            out[idx[done]] = xp.sinh(wn[done])
            keep = ~done
            idx, xa, wn, wl, wh = idx[keep], xa[keep], wn[keep], wl[keep], wh[keep]
            pa = [_sub(p, keep) for p in pa]
        w = wn


# w = asinh(z) nodes for the scalar-parameter path: step 0.01 for |z| <= sinh(6) ~ 200, then 0.5 out to
# asinh(1e150). Cubic Hermite interpolation of the inverse between nodes is accurate to ~1e-8 in the
# body, so bracketed Newton finishes in about two steps.
_W_NODES = np.concatenate([np.linspace(-_W_MAX, -6.0, 681)[:-1], np.linspace(-6.0, 6.0, 1201),
                           np.linspace(6.0, _W_MAX, 681)[1:]])
# Elements per block of the scalar-parameter solver: keeps the temporaries in cache, and for torch below
# its parallel grain size.
_CHUNK = 1 << 14


def _solve_scalar(x, ps, xp):
    """Q^{-1} for a flat float64 ``x`` and 0-dim parameters: bracket by ``searchsorted`` on Q at the
    nodes, start from cubic Hermite inverse interpolation, finish with bracketed Newton; in blocks."""
    wg = _W_NODES if xp is _NP else torch.as_tensor(_W_NODES, device=x.device)
    Qg, Dg = _q_dqdw(wg, *ps, xp)
    edges = _support_edges(ps, xp.sinh(wg[-1]), xp)
    out = xp.full_like(x, math.nan)
    for s in range(0, x.shape[0], _CHUNK):
        _solve_scalar_block(x[s:s + _CHUNK], ps, wg, Qg, Dg, edges, out[s:s + _CHUNK], xp)
    return out


def _solve_scalar_block(x, ps, wg, Qg, Dg, edges, out, xp) -> None:
    # x at or beyond Q(±Z_MAX): the root is ±inf (and at the edge of a bounded support every far z solves
    # Q(z) = x in float64; ±inf is the only answer that does not depend on the algorithm)
    lo, hi = edges
    out[x >= hi] = math.inf
    out[x <= lo] = -math.inf
    idx = xp.flatnonzero((x > lo) & (x < hi))
    if idx.shape[0] == 0:
        return
    xa = x[idx]
    j = xp.clip(xp.searchsorted(Qg, xa), 1, len(wg) - 1)
    w0, w1, q0, q1, d0, d1 = wg[j - 1], wg[j], Qg[j - 1], Qg[j], Dg[j - 1], Dg[j]
    dx = q1 - q0
    t = (xa - q0) / dx
    t2 = t * t
    t3 = t2 * t
    # inverse Hermite: w(x) has end slopes dw/dx = 1/(dQ/dw); in units of t they are dx/d
    w = ((2 * t3 - 3 * t2 + 1) * w0 + (t3 - 2 * t2 + t) * (dx / d0) + (3 * t2 - 2 * t3) * w1
         + (t3 - t2) * (dx / d1))
    w = xp.where((w >= w0) & (w <= w1), w, 0.5 * (w0 + w1))
    _newton_w(xa, ps, w, w0, w1, out, idx, xp)


def _solve_generic(x, ps, xp):
    """Q^{-1} with elementwise parameters (or few points): _N_BISECT bisection steps in w for all elements
    at once, then bracketed Newton."""
    zmax = np.float64(Z_MAX) if xp is _NP else torch.tensor(Z_MAX, dtype=x.dtype, device=x.device)
    qlo, qhi = _support_edges(ps, zmax, xp)
    out = xp.full_like(x, math.nan)
    out[x >= qhi] = math.inf  # see _solve_scalar_block
    out[x <= qlo] = -math.inf
    idx = xp.flatnonzero((x > qlo) & (x < qhi))
    if idx.shape[0] == 0:
        return out
    xa = x[idx]
    pa = [_sub(p, idx) for p in ps]
    # most points lie within |z| <= sinh(_W_INNER) ~ 50: bracket those there (12 halvings then leave a
    # width of 0.002 in w), the rest in [W_INNER, W_MAX] on their side
    w_in = np.float64(_W_INNER) if xp is _NP else torch.tensor(_W_INNER, dtype=x.dtype, device=x.device)
    q_in_hi, q_in_lo = _q_x(xp.sinh(w_in), *pa, xp), _q_x(xp.sinh(-w_in), *pa, xp)
    below, above = xa < q_in_lo, xa > q_in_hi
    wl = xp.where(below, -_W_MAX, xp.where(above, _W_INNER, -_W_INNER))
    wh = xp.where(above, _W_MAX, xp.where(below, -_W_INNER, _W_INNER))
    for _ in range(_N_BISECT):
        wm = 0.5 * (wl + wh)
        up = _q_x(xp.sinh(wm), *pa, xp) > xa
        wh = xp.where(up, wm, wh)
        wl = xp.where(up, wl, wm)
    _newton_w(xa, pa, 0.5 * (wl + wh), wl, wh, out, idx, xp)
    return out


def _numel(a, xp) -> int:
    return a.size if xp is _NP else a.numel()


def _solve_arrays(x, ps, shape, xp):
    """Dispatch on the parameter layout. ``x`` and ``ps`` are float64 arrays of one library."""
    n = math.prod(shape)
    scalar = [_numel(p, xp) == 1 for p in ps]
    if all(scalar) and n >= 512:  # below that the node table costs more than it saves
        flat = _contig(xp_broadcast(x, shape, xp).reshape(-1), xp)
        return _solve_scalar(flat, [p.reshape(()) for p in ps], xp).reshape(shape)
    d = shape[-1] if shape else 1
    if (len(shape) >= 2 and d <= 64 and n // d >= 512
            and all(sc or tuple(p.shape) == (d,) for p, sc in zip(ps, scalar))):
        xb = xp_broadcast(x, shape, xp)
        out = np.empty(shape) if xp is _NP else torch.empty(shape, dtype=x.dtype, device=x.device)
        for j in range(d):
            pj = [p.reshape(()) if sc else p[j] for p, sc in zip(ps, scalar)]
            out[..., j] = _solve_scalar(_contig(xb[..., j].reshape(-1), xp), pj, xp).reshape(shape[:-1])
        return out
    flat = [p.reshape(()) if sc else _contig(xp_broadcast(p, shape, xp).reshape(-1), xp) for p, sc in zip(ps, scalar)]
    return _solve_generic(_contig(xp_broadcast(x, shape, xp).reshape(-1), xp), flat, xp).reshape(shape)


def xp_broadcast(a, shape, xp):
    return np.broadcast_to(a, shape) if xp is _NP else a.expand(shape)


def _contig(a, xp):
    return np.ascontiguousarray(a) if xp is _NP else a.contiguous()


@torch.no_grad()
def _solve(x: torch.Tensor, A, B, g, k, c) -> torch.Tensor:
    """Root of Q(z) = x in float64 without autograd, shape = broadcast shape.

    Scalar parameters: :func:`_solve_scalar` (node table + Hermite start + Newton). Parameters that vary
    only along the last axis (the multivariate case, shape (d,)): the same per column. Otherwise
    :func:`_solve_generic` (bisection in w = asinh z, then Newton). Newton runs in w, where the far tails
    (Q ~ |z|^(2k+1), very flat for k near -1/2) are nearly linear. x beyond Q(±Z_MAX) gives ±inf, NaN
    gives NaN. CPU tensors are solved in numpy, others in torch.
    """
    f64 = torch.float64
    c = c if isinstance(c, torch.Tensor) else torch.tensor(float(c), dtype=f64)
    ps = [p.detach().to(device=x.device, dtype=f64) for p in (A, B, g, k, c)]
    x = x.detach().to(f64)
    shape = tuple(torch.broadcast_shapes(x.shape, *(p.shape for p in ps)))
    if x.device.type == "cpu" and _USE_NUMPY:
        with np.errstate(all="ignore"):  # inf/NaN far out are expected and handled
            out = _solve_arrays(x.numpy(), [p.numpy() for p in ps], shape, _NP)
        return torch.from_numpy(np.ascontiguousarray(out))
    return _solve_arrays(x, ps, shape, _TORCH)


_USE_NUMPY = True  # the tests flip this to check the torch path too


def _needs_grad(*ts) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in ts)


def _numpy_route(*ts) -> bool:
    """No autograd needed and everything on the CPU: the whole computation can stay in numpy."""
    return _USE_NUMPY and not _needs_grad(*ts) and all(
        t.device.type == "cpu" for t in ts if isinstance(t, torch.Tensor))


def _inverse64(x, A, B, g, k, c, validate: bool):
    """(z in float64 with exact first derivatives, result dtype)."""
    x, A, B, g, k = _tensors(x=x, A=A, B=B, g=g, k=k)
    if validate:
        validate_params(A, B, g, k, c)
    dtype = _promote(x, A, B, g, k)
    zstar = _solve(x, A, B, g, k, c)
    if not _needs_grad(x, A, B, g, k, c):
        return zstar, dtype
    # Implicit differentiation: one Newton step from the detached root, z = z* - (Q(z*) - x)/Q'(z*),
    # has value z* (to rounding) and gradients dz/dx = 1/Q', dz/dθ = -(dQ/dθ)/Q' at the root. Elements
    # whose root is ±inf or NaN keep z* and get safe stand-ins so that no NaN leaks into the gradient.
    f64 = torch.float64
    x64, A64, B64, g64, k64 = (t.to(f64) for t in (x, A, B, g, k))
    finite = torch.isfinite(zstar)
    zs = torch.where(finite, zstar, 0.0)
    xs = torch.where(finite, x64, _q(zs, A64, B64, g64, k64, c).detach())
    step = zs - (_q(zs, A64, B64, g64, k64, c) - xs) / _dq(zs, A64, B64, g64, k64, c)
    return torch.where(finite, step, zstar), dtype


def inverse(x: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *, validate: bool = True) -> torch.Tensor:
    r"""Normal score :math:`z = Q^{-1}(x)`, vectorised, float64 internally, with exact first derivatives.

    The root is found without autograd, in :math:`w = \operatorname{asinh} z`: a bracket and a cubic-Hermite
    start from a table of Q (scalar parameters; bisection otherwise), then bracketed Newton, to about 1e-13
    in w, i.e. relative 1e-13 in z for :math:`|z| > 1` (checked for :math:`|z| \le 10^{6}` in the tests,
    searched up to :math:`10^{150}`). Then one Newton step with autograd on
    gives :math:`\partial z/\partial x = 1/Q'(z)` and :math:`\partial z/\partial\theta = -\partial_\theta
    Q / Q'`. ``x`` beyond :math:`Q(\pm 10^{150})` gives :math:`\pm\infty` (reachable only near
    :math:`k = -1/2`, where Q grows like :math:`|z|^{2k+1}`: outside the bounded support at :math:`k = -1/2`,
    or e.g. beyond :math:`|x - A| \approx 1000 B` at :math:`k = -0.49`). Returns the promoted dtype of the
    inputs.
    """
    z, dtype = _inverse64(x, A, B, g, k, c, validate)
    return z.to(dtype)


def cdf(x: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *, validate: bool = True) -> torch.Tensor:
    r"""CDF :math:`F(x) = \Phi(Q^{-1}(x))`."""
    z, dtype = _inverse64(x, A, B, g, k, c, validate)
    if not z.requires_grad and z.device.type == "cpu":
        return torch.from_numpy(_ndtr(z.numpy())).to(dtype)  # numpy: see _solve on thread pools
    return torch.special.ndtr(z).to(dtype)


def icdf(p: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *, validate: bool = True) -> torch.Tensor:
    r"""Quantile at probability ``p``: :math:`Q(\Phi^{-1}(p))`. With ``validate`` (the default) the
    parameters must be valid and ``p`` in [0, 1] (``ValueError`` otherwise), as ``torch.distributions``
    checks a probability."""
    p = _tensor(p, "p")
    if validate:
        pv = p.detach()
        bad = ~((pv >= 0) & (pv <= 1))
        if bool(bad.any()):
            raise ValueError(f"p must be probabilities in [0, 1], got {pv[bad].reshape(-1)[0].item():g} "
                             f"({int(bad.sum())} value(s) outside)")
    return quantile(torch.special.ndtri(p), A, B, g, k, c, validate=validate)


def log_prob(x: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *, validate: bool = True) -> torch.Tensor:
    r"""Log density :math:`\log f(x) = \log\varphi(z) - \log Q'(z)` with :math:`z = Q^{-1}(x)`.

    Differentiable in ``x`` and the parameters (see :func:`inverse`); ``-inf`` outside a bounded support.
    """
    z, dtype = _inverse64(x, A, B, g, k, c, validate)
    B, g, k = (t.to(torch.float64) for t in _tensors(B=B, g=g, k=k))
    if not z.requires_grad and _numpy_route(z, B, g, k, c):
        # numpy end to end (see _solve on thread pools)
        cn = c.detach().double().numpy() if isinstance(c, torch.Tensor) else c
        with np.errstate(all="ignore"):
            zn = z.numpy()
            finite = np.isfinite(zn)
            zs = np.where(finite, zn, 0.0)
            lp = (-0.5 * zs * zs - _LOG_SQRT_2PI - np.log(B.numpy()) - k.numpy() * np.log1p(zs * zs)
                  - np.log(_bracket_term_np(zs, g.numpy(), k.numpy(), cn)))
            return torch.from_numpy(np.where(finite, lp, -np.inf)).to(dtype)
    finite = torch.isfinite(z)
    zs = torch.where(finite, z, 0.0)
    lp = -0.5 * zs * zs - _LOG_SQRT_2PI - _log_dq(zs, B, g, k, c)
    return torch.where(finite, lp, -math.inf).to(dtype)


def sample(n: int, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, generator: torch.Generator | None = None,
           *, validate: bool = True) -> torch.Tensor:
    """``n`` draws ``Q(z)``, ``z ~ N(0, 1)``, shape ``(n,) + broadcast(params).shape``; reparameterised
    (differentiable in the parameters). Float parameters give float64."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n (number of samples) must be an integer >= 0, got {n!r}")
    A, B, g, k = _tensors(A=A, B=B, g=g, k=k)
    if validate:
        validate_params(A, B, g, k, c)
    shape = (int(n),) + tuple(torch.broadcast_shapes(A.shape, B.shape, g.shape, k.shape))
    dtype = _promote(A, B, g, k)
    device = A.device
    if generator is not None:
        device = generator.device
    z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    return _q(z, A, B, g, k, c)


# ------------------------------------------------------------------------------------------------------
# multivariate (Gaussian copula)
# ------------------------------------------------------------------------------------------------------

class MultivariateGK(Distribution):
    r"""Multivariate g-and-k (Drovandi & Pettitt 2011): :math:`z \sim N(0, R)`, :math:`x_i = Q(z_i; A_i,
    B_i, g_i, k_i)`.

    .. math::

        \log p(x) = \log N(z; 0, R) - \sum_i \log Q_i'(z_i), \qquad z_i = Q_i^{-1}(x_i).

    ``A, B, g, k`` have shape ``(d,)`` (scalars are broadcast), ``R`` is a ``(d, d)`` correlation matrix.
    ``event_shape == (d,)``, ``batch_shape == ()``; ``log_prob`` of ``(N, d)`` gives ``(N,)``. Parameters may
    be tensors that require grad (e.g. derived from ``nn.Parameter``): ``rsample`` and ``log_prob`` are
    differentiable in them and in the value. ``marginal_cdf`` gives the per-margin CDFs.
    """

    arg_constraints: dict = {}  # validated by hand, with messages that name the parameter
    support = constraints.independent(constraints.real, 1)
    has_rsample = True

    def __init__(self, A: Any, B: Any, g: Any, k: Any, R: Any, c: float = C_DEFAULT,
                 validate_args: bool | None = None):
        """``validate_args`` as in ``torch.distributions``: ``None`` follows torch's default (on unless
        ``Distribution.set_default_validate_args(False)``); when on, ``R`` must be a correlation matrix
        (:func:`validate_correlation`) and every margin a valid g-and-k (:func:`validate_params`), else
        ``ValueError``; ``False`` skips both (a learnt prior whose parameters are valid by construction).
        Shapes are always checked."""
        R = _tensor(R, "R")
        if R.dim() != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
            raise ValueError(f"R must be a square (d, d) correlation matrix, got shape {tuple(R.shape)}")
        d = R.shape[0]
        params = []
        for name, v in (("A", A), ("B", B), ("g", g), ("k", k)):
            t = _tensor(v, name)
            if t.dim() == 0:
                t = t.expand(d)
            if t.shape != (d,):
                raise ValueError(f"{name} must have shape ({d},) to match R of shape ({d}, {d}), got {tuple(t.shape)}")
            params.append(t)
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([d]), validate_args=validate_args)
        if self._validate_args:
            validate_correlation(R)
            validate_params(*params, c)
        self.A, self.B, self.g, self.k = params
        self.R = R
        self.c = c
        dtype = _promote(*params, R)
        self._dtype = dtype if dtype.is_floating_point else torch.float64
        self._scale_tril = torch.linalg.cholesky(R.to(self._dtype))
        eye = torch.eye(d, dtype=self._dtype, device=R.device)
        self._tril_inv = torch.linalg.solve_triangular(self._scale_tril, eye, upper=False)

    @property
    def dim(self) -> int:
        return self.event_shape[0]

    @property
    def median(self) -> torch.Tensor:
        return self.A.to(self._dtype)

    def rsample(self, sample_shape: Sequence[int] = torch.Size(),
                generator: torch.Generator | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self._dtype, device=self.R.device, generator=generator)
        z = eps @ self._scale_tril.T
        return _q(z, self.A, self.B, self.g, self.k, self.c)

    def sample(self, sample_shape: Sequence[int] = torch.Size(),
               generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def scores(self, value: torch.Tensor) -> torch.Tensor:
        """Normal scores z_i = Q_i^{-1}(x_i), differentiable (see :func:`inverse`)."""
        return inverse(value, self.A, self.B, self.g, self.k, self.c, validate=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = _tensor(value, "value")
        if self._validate_args:
            self._validate_sample(value)
        z, _ = _inverse64(value, self.A, self.B, self.g, self.k, self.c, validate=False)
        f64 = torch.float64
        ok = torch.isfinite(z)
        zs = torch.where(ok, z, 0.0)
        white = zs @ self._tril_inv.to(f64).T
        d = self.dim
        log_norm = (-0.5 * (white * white).sum(-1) - torch.log(torch.diagonal(self._scale_tril.to(f64))).sum()
                    - d * _LOG_SQRT_2PI)
        log_jac = _log_dq(zs, self.B.to(f64), self.g.to(f64), self.k.to(f64), self.c).sum(-1)
        lp = torch.where(ok.all(-1), log_norm - log_jac, -math.inf)
        return lp.to(torch.promote_types(self._dtype, value.dtype))

    def marginal_cdf(self, value: torch.Tensor) -> torch.Tensor:
        """Per-margin CDFs Phi(z_i), shape like ``value``."""
        return torch.special.ndtr(self.scores(value))

    def marginal_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Per-margin log densities, shape like ``value``."""
        return log_prob(value, self.A, self.B, self.g, self.k, self.c, validate=False)

    def __repr__(self) -> str:
        return f"MultivariateGK(d={self.dim}, c={self.c})"


# ------------------------------------------------------------------------------------------------------
# fitting (numpy / scipy)
# ------------------------------------------------------------------------------------------------------

_OCT_Z = np.array([-1.1503493803760079, -0.6744897501960817, -0.31863936396437514, 0.0,
                   0.31863936396437514, 0.6744897501960817, 1.1503493803760079])  # Phi^-1(i/8), i=1..7
_K_TABLE = np.linspace(-0.5, 10.0, 4201)


def _oct_kurtosis(k):
    z5, z6, z7 = _OCT_Z[4], _OCT_Z[5], _OCT_Z[6]
    P = lambda z: np.exp(k * np.log1p(z * z)) * z  # noqa: E731
    return (P(z7) - P(z5)) / P(z6)


_KURT_TABLE = _oct_kurtosis(_K_TABLE)  # strictly increasing in k (checked in the tests)

#: Above this sample size the fit uses ``m = 1000`` empirical quantiles instead of all order statistics.
N_FULL = 2000
M_GRID = 1000


def _softplus(v):
    return np.logaddexp(0.0, v)


def _inv_softplus(y):
    return y + np.log(-np.expm1(-y))


def _sigmoid(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def _to_theta(A, B, g, k, k_floor=-0.5):
    return np.array([A, math.log(B), g, _inv_softplus(k - k_floor)])


def _from_theta(t, k_floor=-0.5):
    return float(t[0]), float(np.exp(t[1])), float(t[2]), float(k_floor + _softplus(t[3]))


def _q_np(z, A, B, g, k, c):
    return _q_x(z, A, B, g, k, c, _NP)


@dataclass
class GKFit:
    """Result of fitting a univariate g-and-k.

    ``params`` = (A, B, g, k); ``cost`` = 0.5 Σ r_j² at the solution (scipy's convention; r_j the weighted
    quantile residuals); ``nfev`` residual evaluations (``njev`` Jacobians); ``converged`` is False whenever the
    optimiser stopped without meeting its tolerances or ended at an invalid parameter set — ``message``
    says which. ``start`` are the octile estimates it started from; ``history`` the cost at every
    residual evaluation when ``trace=True``.
    """

    params: tuple[float, float, float, float]
    cost: float
    converged: bool
    message: str
    method: str
    nfev: int
    njev: int | None
    start: tuple[float, float, float, float]
    n: int
    n_residuals: int
    c: float = C_DEFAULT
    weights: str = "density"
    seconds: float = 0.0
    history: list[float] = field(default_factory=list, repr=False)

    @property
    def A(self) -> float:
        return self.params[0]

    @property
    def B(self) -> float:
        return self.params[1]

    @property
    def g(self) -> float:
        return self.params[2]

    @property
    def k(self) -> float:
        return self.params[3]

    @property
    def rmse(self) -> float:
        """Root mean square (weighted) quantile residual."""
        return math.sqrt(2.0 * self.cost / self.n_residuals)

    def summary(self, truth: Sequence[float] | None = None) -> "Any":
        """A pandas table with the columns A, B, g, k and the rows ``truth`` (when given), the octile start and
        this fit (labelled by its method, e.g. "LM fit")."""
        import pandas as pd

        rows = {} if truth is None else {"truth": tuple(float(v) for v in truth)}
        rows["octile start"] = self.start
        rows[f"{METHOD_LABELS[self.method]} fit"] = self.params
        return pd.DataFrame.from_dict(rows, orient="index", columns=list(PARAM_NAMES))


def _check_sample(x: Any, name: str = "x") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a 1-D array of numbers, got {type(x).__name__}") from err
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one variable), got shape {arr.shape}; "
                         "use fit_multivariate_lm for (n, d) data")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf value(s) (first at index "
                         f"{int(np.flatnonzero(bad)[0])}); remove them before fitting")
    if arr.size < 8:
        raise ValueError(f"{name} has {arr.size} points; fitting a g-and-k needs at least 8 "
                         "(the octile start uses 7 octiles)")
    if arr.min() == arr.max():
        raise ValueError(f"{name} is constant (all values {arr[0]:g}); a g-and-k needs B > 0 spread")
    return arr


def _quantile_targets(xs_sorted: np.ndarray, m: int, n_full: int):
    """(p, x_p): all order statistics at Hazen positions p_i = (i - 0.5)/n when n <= n_full, otherwise the
    Hazen-interpolated empirical quantiles at p_j = (j - 0.5)/m, j = 1..m."""
    n = xs_sorted.size
    if n <= n_full:
        p = (np.arange(1, n + 1) - 0.5) / n
        return p, xs_sorted
    p = (np.arange(1, m + 1) - 0.5) / m
    pos = n * p - 0.5  # 0-based position of the Hazen quantile
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    frac = np.clip(pos - lo, 0.0, 1.0)
    return p, xs_sorted[lo] + frac * (xs_sorted[hi] - xs_sorted[lo])


def _octiles(xs_sorted: np.ndarray) -> np.ndarray:
    n = xs_sorted.size
    pos = n * (np.arange(1, 8) / 8.0) - 0.5
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    frac = np.clip(pos - lo, 0.0, 1.0)
    return xs_sorted[lo] + frac * (xs_sorted[hi] - xs_sorted[lo])


def _octile_from_sorted(xs: np.ndarray, c: float) -> tuple[float, float, float, float]:
    E = _octiles(xs)
    z6 = _OCT_Z[5]
    spread = E[5] - E[1]
    if not spread > 0:  # heavy ties: fall back on a robust spread of the whole sample
        spread = max(float(np.subtract(*np.percentile(xs, [95, 5]))) / 2.0, float(xs[-1] - xs[0]) / 4.0)
        skew, kurt = 0.0, float(_oct_kurtosis(0.0))
    else:
        skew = (E[5] + E[1] - 2.0 * E[3]) / spread
        kurt = (E[6] - E[4] + E[2] - E[0]) / spread
    k = float(np.interp(kurt, _KURT_TABLE, _K_TABLE))  # clips to [-0.5, 10]
    s = float(np.clip(skew / c, -0.999, 0.999)) if c > 0 else 0.0
    g = float(2.0 / z6 * math.atanh(s))
    B = spread / (2.0 * z6 * (1.0 + z6 * z6) ** k)
    return float(E[3]), float(B), g, k


def octile_estimate(x: Any, c: float = C_DEFAULT) -> tuple[float, float, float, float]:
    r"""Closed-form octile estimator of (A, B, g, k) (the fit's starting point).

    With octiles :math:`E_i` (Hazen, :math:`i/8`) and :math:`z_i = \Phi^{-1}(i/8)` the g-and-k gives exactly
    :math:`E_4 = A`; :math:`E_6 - E_2 = 2B z_6 (1+z_6^2)^k` (independent of g, since tanh is odd);
    skewness :math:`(E_6+E_2-2E_4)/(E_6-E_2) = c\tanh(g z_6/2)`; kurtosis
    :math:`(E_7-E_5+E_3-E_1)/(E_6-E_2) = [(1+z_7^2)^k z_7 - (1+z_5^2)^k z_5]/[(1+z_6^2)^k z_6]`, which
    depends on k alone and increases with it. So k comes from the kurtosis (interpolated in a table over
    k in [-0.5, 10], clipped there), then B from the spread, g = (2/z_6) artanh(skew/c) (skew/c clipped to
    ±0.999) and A = E_4: the robust octile summaries (:func:`octile_summaries`) inverted exactly.
    """
    xs = np.sort(_check_sample(x))
    return _octile_from_sorted(xs, c)


def octile_summaries(g: Any, k: Any, c: float = C_DEFAULT, *, validate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    r"""Octile skewness :math:`(E_6+E_2-2E_4)/(E_6-E_2)` (Bowley's) and kurtosis
    :math:`(E_7-E_5+E_3-E_1)/(E_6-E_2)` (Moors') of the g-and-k, elementwise in ``g`` and ``k`` (broadcast),
    from its quantile function at the octiles :math:`E_i = Q(\Phi^{-1}(i/8))`. They do not depend on A or B;
    the skewness depends on g alone and the kurtosis on k alone (see :func:`octile_estimate`).
    ``validate=False`` evaluates the formula also where Q is not increasing (no distribution there)."""
    g, k = np.broadcast_arrays(_np64(g, "g"), _np64(k, "k"))
    if validate:
        validate_params(0.0, 1.0, g, k, c)
    E = _q_np(_OCT_Z.reshape((7,) + (1,) * g.ndim), 0.0, 1.0, g, k, c)
    spread = E[5] - E[1]
    return (E[5] + E[1] - 2.0 * E[3]) / spread, (E[6] - E[4] + E[2] - E[0]) / spread


def qq_points(x: Any, params: Sequence[float], m: int = M_GRID, c: float = C_DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """The points of a quantile-quantile plot of the sample ``x`` against the g-and-k ``params`` = (A, B, g,
    k): the model's quantiles and the sample's (Hazen-interpolated) empirical quantiles at
    p_j = (j - 1/2)/m, j = 1..m."""
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m (number of quantiles) must be an integer >= 1, got {m!r}")
    A, B, g, k = params
    validate_params(A, B, g, k, c)
    p, emp = _quantile_targets(np.sort(_check_sample(x)), int(m), n_full=0)
    return _q_np(ndtri(p), A, B, g, k, c), emp


def _make_problem(z, xq, c, w, trace, k_floor=-0.5):
    """Weighted quantile residuals r_j = w_j (x_j - Q(z_j; theta)) in theta = (A, b, g, kappa), with
    k = k_floor + softplus(kappa), and their analytic Jacobian."""
    L = np.log1p(z * z)
    hist: list[float] = []

    def parts(t):
        A, b, g, kap = t
        with np.errstate(over="ignore", invalid="ignore"):
            B = np.exp(b)
            k = k_floor + _softplus(kap)
            th = np.tanh(0.5 * g * z)
            P = np.exp(k * L)
            core = (1.0 + c * th) * P * z  # Q = A + B core
        return A, B, g, k, kap, th, P, core

    def resid(t):
        A, B, g, k, kap, th, P, core = parts(t)
        with np.errstate(over="ignore", invalid="ignore"):
            r = w * (xq - (A + B * core))
        # a wild trial step (huge k) must not hand MINPACK inf/NaN: a huge finite cost makes it back off
        r = np.nan_to_num(r, nan=1e100, posinf=1e100, neginf=-1e100)
        if trace:
            hist.append(0.5 * float(r @ r))
        return r

    def jac(t):
        # dQ/dA = 1, dQ/db = B core, dQ/dg = B c (z/2) sech^2(gz/2) (1+z^2)^k z,
        # dQ/dkappa = B core log(1+z^2) sigmoid(kappa); r = w (x - Q) so J = -w dQ
        A, B, g, k, kap, th, P, core = parts(t)
        with np.errstate(over="ignore", invalid="ignore"):
            Bcore = B * core
            J = np.empty((z.size, 4))
            J[:, 0] = -w
            J[:, 1] = -w * Bcore
            J[:, 2] = -w * B * c * 0.5 * z * (1.0 - th * th) * P * z
            J[:, 3] = -w * Bcore * L * _sigmoid(kap)
        return np.nan_to_num(J, nan=0.0, posinf=1e100, neginf=-1e100)

    return resid, jac, hist


def _density_weights(z, p, start, c):
    """w_j = phi(z_j) / (sqrt(p_j (1 - p_j)) Q'(z_j; start)), scaled to mean 1: the reciprocal of the
    asymptotic standard deviation of the empirical p_j-quantile, sqrt(p(1-p)/n) / f(x_p), evaluated at the
    octile start and held fixed (so the problem stays ordinary least squares)."""
    _, B0, g0, k0 = start
    T = _bracket_term_np(z, g0, max(k0, -0.5), c)
    T = np.maximum(T, 1e-3 * T.max())  # an invalid start (k < 0, small |g|) must not give w <= 0
    with np.errstate(over="ignore", under="ignore"):
        w = np.exp(-0.5 * z * z - max(k0, -0.5) * np.log1p(z * z)) / (np.sqrt(p * (1.0 - p)) * T)
    if not np.all(np.isfinite(w)) or not w.max() > 0:
        return np.ones_like(z)
    return w / w.mean()


_METHODS = ("lm", "trf", "nelder-mead", "octile")
#: How tables and messages name each ``method`` of :func:`fit_quantiles`.
METHOD_LABELS = {"lm": "LM", "trf": "TRF", "nelder-mead": "Nelder-Mead", "octile": "octile"}
_WEIGHTS = ("density", "none")


def fit_quantiles(x: Any, method: str = "lm", c: float = C_DEFAULT, weights: str = "density",
                  max_nfev: int | None = None, m: int = M_GRID, n_full: int = N_FULL, trace: bool = False) -> GKFit:
    r"""Fit (A, B, g, k) by (weighted) least squares on quantiles.

    Residuals :math:`r_j = w_j\,[x_{(j)} - Q(\Phi^{-1}(p_j); \theta)]`: for :math:`n \le` ``n_full`` (2000)
    all order statistics at :math:`p_j = (j - 1/2)/n`; for larger n the ``m`` (1000) empirical quantiles at
    :math:`p_j = (j - 1/2)/m` (Hazen interpolation of the order statistics), which keeps the cost per
    iteration fixed whatever n.

    ``weights="density"`` (default): :math:`w_j \propto \varphi(z_j) / (\sqrt{p_j(1-p_j)}\,Q'(z_j;
    \theta_0))`, the reciprocal of the asymptotic standard deviation of an empirical quantile,
    :math:`\sqrt{p(1-p)/n}/f(x_p)`, at the octile start :math:`\theta_0` and then held fixed. Unweighted
    residuals (``weights="none"``) let the few, very noisy extreme order statistics of a heavy-tailed sample
    dominate: at n = 10,000 the weighting roughly halves the error of B, g and k (see the benchmark).

    The problem is unconstrained in :math:`\theta = (A, b, g, \kappa)` with :math:`B = e^b`,
    :math:`k = -1/2 + \mathrm{softplus}(\kappa)`; the Jacobian is analytic; the start is
    :func:`octile_estimate`.

    ``method``: ``"lm"`` (MINPACK Levenberg–Marquardt, ``scipy.optimize.least_squares(method="lm")``),
    ``"trf"`` (scipy's trust-region reflective, same residuals and Jacobian), ``"nelder-mead"``
    (``scipy.optimize.minimize`` on :math:`\sum_j r_j^2`) or ``"octile"`` (the start alone). ``cost`` is
    :math:`\tfrac12\sum_j r_j^2`. Bad input raises ``ValueError``; non-convergence is reported in the result
    (``converged=False`` and ``message``), never raised.
    """
    from scipy.optimize import least_squares, minimize

    t0 = time.perf_counter()
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if weights not in _WEIGHTS:
        raise ValueError(f"weights must be one of {_WEIGHTS}, got {weights!r}")
    for name, v, lo in (("m (number of quantiles)", m, 8), ("n_full", n_full, 8)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if max_nfev is not None and (isinstance(max_nfev, bool) or not isinstance(max_nfev, (int, np.integer))
                                 or max_nfev < 1):
        raise ValueError(f"max_nfev must be None or an integer >= 1, got {max_nfev!r}")
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not (0.0 <= float(c) < 1.0):
        raise ValueError(f"g-and-k parameter c must be in [0, 1) (conventionally 0.8), got {c!r}")
    c = float(c)
    xs = np.sort(_check_sample(x))
    start = _octile_from_sorted(xs, c)
    p, xq = _quantile_targets(xs, m, n_full)
    z = ndtri(p)
    w = _density_weights(z, p, start, c) if weights == "density" else np.ones_like(z)
    A0, B0, g0, k0 = start
    hist: list[float] = []

    def result(params, cost, converged, message, nfev, njev):
        return GKFit(params=params, cost=cost, converged=converged, message=message, method=method, nfev=nfev,
                     njev=njev, start=start, n=xs.size, n_residuals=xq.size, c=c, weights=weights,
                     seconds=time.perf_counter() - t0, history=list(hist))

    if method == "octile":
        r = w * (xq - _q_np(z, A0, B0, g0, k0, c))
        return result(start, 0.5 * float(r @ r), True, "closed-form octile estimator", 0, 0)

    def solve(k_floor: float):
        resid, jac, trace_hist = _make_problem(z, xq, c, w, trace, k_floor)
        theta0 = _to_theta(A0, B0, g0, max(k0, k_floor + 1e-3), k_floor)  # k = k_floor: kappa = -inf
        njev: int | None = None
        if method in ("lm", "trf"):
            res = least_squares(resid, theta0, jac=jac, method=method, max_nfev=max_nfev)
            theta, cost, nfev = res.x, float(res.cost), int(res.nfev)
            njev = None if res.njev is None else int(res.njev)
            converged = bool(res.status > 0)
            message = f"{METHOD_LABELS[method]} (status {res.status}): {res.message}"
        else:
            r0 = resid(theta0)
            if trace:
                trace_hist.clear()
            # fatol is absolute in scipy: make it relative to the starting sum of squares
            opts = {"xatol": 1e-8, "fatol": 1e-12 * max(float(r0 @ r0), 1e-300), "maxfev": max_nfev or 4000,
                    "maxiter": 4000}
            res = minimize(lambda t: float(np.square(resid(t)).sum()), theta0, method="Nelder-Mead",
                           options=opts)
            theta, cost, nfev = res.x, 0.5 * float(res.fun), int(res.nfev)
            converged = bool(res.success)
            message = f"Nelder-Mead: {res.message}"
        hist[:] = trace_hist
        return _from_theta(theta, k_floor), cost, converged, message, nfev, njev

    def invalid_reason(params) -> str | None:
        if not all(math.isfinite(v) for v in params):
            return "the solution is not finite"
        try:
            validate_params(*params, c)
        except ValueError as err:
            return f"it ended at an invalid g-and-k: {err}"
        return None

    params, cost, converged, message, nfev, njev = solve(-0.5)
    reason = invalid_reason(params)
    if reason is not None and c <= 0.83:
        # k >= 0 gives a valid g-and-k for every g when c <= 0.83 (Rayner & MacGillivray 2002), so refit
        # there rather than hand back parameters whose "density" would be negative somewhere.
        params, cost, converged, message, nfev2, njev2 = solve(0.0)
        message = f"first fit: {reason}; refitted with k >= 0: {message}"
        nfev += nfev2
        njev = None if njev is None or njev2 is None else njev + njev2
        reason = invalid_reason(params)
    if reason is not None:
        converged = False
        message += f"; {reason}"
    return result(params, cost, converged, message, nfev, njev)


def fit_lm(x: Any, c: float = C_DEFAULT, weights: str = "density", max_nfev: int | None = None, m: int = M_GRID,
           n_full: int = N_FULL, trace: bool = False) -> GKFit:
    """Levenberg–Marquardt (MINPACK) fit of a univariate g-and-k on quantile residuals: :func:`fit_quantiles`
    with ``method="lm"`` (all order statistics up to n = 2000, else 1000 empirical quantiles; residuals
    weighted by the inverse asymptotic standard deviation of each empirical quantile unless
    ``weights="none"``)."""
    return fit_quantiles(x, method="lm", c=c, weights=weights, max_nfev=max_nfev, m=m, n_full=n_full, trace=trace)


def nearest_correlation(S: Any, eps: float = 1e-6) -> np.ndarray:
    """Project a symmetric matrix onto valid correlation matrices: symmetrise, clip eigenvalues at ``eps``,
    rescale to a unit diagonal (a congruence with a positive diagonal, so it stays positive definite)."""
    S = np.asarray(S, dtype=np.float64)
    S = 0.5 * (S + S.T)
    w, V = np.linalg.eigh(S)
    R = (V * np.clip(w, eps, None)) @ V.T
    s = np.sqrt(np.diag(R))
    R = R / np.outer(s, s)
    R = 0.5 * (R + R.T)
    np.fill_diagonal(R, 1.0)
    return R


#: Normal scores are clipped to ±SCORE_CLIP before the correlation (only matters when a fitted margin has a
#: bounded support, k = -1/2, and data fall outside it).
SCORE_CLIP = 8.5


@dataclass
class MultivariateGKFit:
    """Per-margin :class:`GKFit` results, the correlation ``R`` of the normal scores (projected to a valid
    correlation matrix; ``R_raw`` before projection), and ``converged`` (all margins converged)."""

    marginals: list[GKFit]
    R: np.ndarray
    R_raw: np.ndarray
    converged: bool
    message: str
    c: float = C_DEFAULT

    @property
    def params(self) -> np.ndarray:
        """(d, 4) array of (A, B, g, k) per margin."""
        return np.array([m.params for m in self.marginals])

    def distribution(self) -> MultivariateGK:
        """The fitted :class:`MultivariateGK` (float64 tensors)."""
        P = torch.as_tensor(self.params)
        return MultivariateGK(P[:, 0], P[:, 1], P[:, 2], P[:, 3], torch.as_tensor(self.R), c=self.c)

    def summary(self, truth: MultivariateGK | None = None) -> "Any":
        """A pandas table with one column per parameter and margin (A₁, A₂, ..., B₁, ..., k_d) and per
        correlation (ρ when d = 2, else ρ₁,₂, ρ₁,₃, ...), and the rows ``truth`` (when given) and "LM fit"."""
        import pandas as pd

        def row(P: np.ndarray, R: np.ndarray) -> list[float]:
            return [float(v) for v in P.T.ravel()] + [float(R[i, j]) for i, j in zip(*np.triu_indices(d, 1))]

        d = self.params.shape[0]
        sub = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
        columns = [f"{name}{str(j + 1).translate(sub)}" for name in PARAM_NAMES for j in range(d)]
        columns += ["ρ"] if d == 2 else [f"ρ{str(i + 1).translate(sub)},{str(j + 1).translate(sub)}"
                                          for i, j in zip(*np.triu_indices(d, 1))]
        rows = {}
        if truth is not None:
            P = torch.stack([t.detach().to(torch.float64).cpu() for t in (truth.A, truth.B, truth.g, truth.k)], -1)
            rows["truth"] = row(P.numpy(), truth.R.detach().to(torch.float64).cpu().numpy())
        rows["LM fit"] = row(self.params, self.R)
        return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


def fit_multivariate_lm(X: Any, c: float = C_DEFAULT, **kwargs: Any) -> MultivariateGKFit:
    """Fit a multivariate g-and-k to ``X`` of shape (n, d): :func:`fit_lm` on each margin, then R = the
    Pearson correlation of the normal scores z_ij = Q_j^{-1}(x_ij) under the fitted margins, projected by
    :func:`nearest_correlation`. ``kwargs`` go to :func:`fit_lm`."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"X must be an (n, d) array of numbers, got {type(X).__name__}") from err
    if X.ndim != 2 or X.shape[1] < 1:
        raise ValueError(f"X must be 2-D with shape (n, d), got shape {X.shape}")
    for j in range(X.shape[1]):
        _check_sample(X[:, j], name=f"X[:, {j}]")
    fits = [fit_lm(X[:, j], c=c, **kwargs) for j in range(X.shape[1])]
    P = torch.as_tensor(np.array([f.params for f in fits]))
    with torch.no_grad():
        Z = inverse(torch.as_tensor(X), P[:, 0], P[:, 1], P[:, 2], P[:, 3], c, validate=False).numpy()
    Z = np.clip(np.nan_to_num(Z, nan=0.0), -SCORE_CLIP, SCORE_CLIP)
    if X.shape[1] == 1:
        R_raw = np.ones((1, 1))
    else:
        R_raw = np.corrcoef(Z, rowvar=False)
    R = nearest_correlation(R_raw)
    bad = [j for j, f in enumerate(fits) if not f.converged]
    message = "all margins converged" if not bad else f"margins {bad} did not converge: " + "; ".join(
        fits[j].message for j in bad)
    return MultivariateGKFit(marginals=fits, R=R, R_raw=R_raw, converged=not bad, message=message, c=float(c))


# ------------------------------------------------------------------------------------------------------
# recovery study (the benchmark and the book chapter share it)
# ------------------------------------------------------------------------------------------------------

#: label: (``fit_quantiles`` method, weights)
RECOVERY_METHODS = {
    "LM": ("lm", "density"),
    "LM unweighted": ("lm", "none"),
    "TRF": ("trf", "density"),
    "Nelder-Mead": ("nelder-mead", "density"),
    "octile": ("octile", "density"),
}


def recovery_errors(theta: Sequence[float] = CLASSIC, ns: Sequence[int] = (1_000, 10_000, 100_000),
                    n_seeds: int = 20, methods: dict[str, tuple[str, str]] | None = None, seed: int = 0,
                    c: float = C_DEFAULT) -> "Any":
    """Simulate ``n_seeds`` samples of each size in ``ns`` from the g-and-k ``theta`` (seeds ``seed``,
    ``seed + 1``, ...; the same samples for every method) and fit each with every method of ``methods``
    (label: (``fit_quantiles`` method, weights); default :data:`RECOVERY_METHODS`).

    Returns a pandas DataFrame with one row per fit: ``n``, ``method``, ``seed``, the signed errors
    ``A``, ``B``, ``g``, ``k`` (estimate minus truth), the wall time ``ms`` of the fit (sorting, start and
    optimisation; not the simulation), the CPU time ``cpu_ms`` of this process (less sensitive to other
    load on a shared machine) and ``converged``. :func:`recovery_summary` condenses it into a table."""
    import pandas as pd

    methods = RECOVERY_METHODS if methods is None else methods
    theta = tuple(float(v) for v in theta)
    validate_params(*theta, c)
    rows = []
    for n in ns:
        for i in range(n_seeds):
            x = sample(int(n), *theta, c=c, generator=torch.Generator().manual_seed(seed + i),
                       validate=False).numpy()
            for label, (method, weights) in methods.items():
                t0, c0 = time.perf_counter(), time.process_time()
                res = fit_quantiles(x, method=method, c=c, weights=weights)
                ms, cpu_ms = 1e3 * (time.perf_counter() - t0), 1e3 * (time.process_time() - c0)
                err = np.array(res.params) - theta
                rows.append({"n": int(n), "method": label, "seed": seed + i,
                             **dict(zip(PARAM_NAMES, (float(e) for e in err))),
                             "ms": ms, "cpu_ms": cpu_ms, "converged": bool(res.converged)})
    return pd.DataFrame(rows)


def recovery_summary(errors: "Any") -> "Any":
    """Condense :func:`recovery_errors` into a table indexed by (n, method), in the order of first
    appearance: the median absolute error of A, B, g and k over the samples (``|A err|`` ...), the median
    wall time per fit in ms (``ms/fit``), the median CPU time (``cpu ms/fit``) and the number of fits that
    reported convergence (``converged``, e.g. "10/10")."""
    import pandas as pd

    rows = []
    for (n, method), grp in errors.groupby(["n", "method"], sort=False):
        med = np.median(np.abs(grp[list(PARAM_NAMES)].to_numpy(float)), axis=0)
        rows.append({"n": int(n), "method": method, **{f"|{p} err|": float(m) for p, m in zip(PARAM_NAMES, med)},
                     "ms/fit": float(np.median(grp["ms"])), "cpu ms/fit": float(np.median(grp["cpu_ms"])),
                     "converged": f"{int(grp['converged'].sum())}/{len(grp)}"})
    return pd.DataFrame(rows).set_index(["n", "method"])


def recovery_study(theta: Sequence[float] = CLASSIC, ns: Sequence[int] = (1_000, 10_000, 100_000),
                   n_seeds: int = 20, methods: dict[str, tuple[str, str]] | None = None, seed: int = 0,
                   c: float = C_DEFAULT) -> "Any":
    """Simulate ``n_seeds`` samples of each size in ``ns`` from the g-and-k ``theta`` (seeds ``seed``,
    ``seed + 1``, ...), fit each with every method, and return a pandas DataFrame indexed by (n, method):
    the median absolute error of A, B, g and k over the seeds, the median wall time per fit in ms
    (sorting, start and optimisation; not the simulation), the median CPU time of this process per fit
    (less sensitive to other load on a shared machine) and the number of fits that reported
    convergence: :func:`recovery_summary` of :func:`recovery_errors`."""
    return recovery_summary(recovery_errors(theta, ns, n_seeds=n_seeds, methods=methods, seed=seed, c=c))


def recovery_slopes(summary: "Any", method: str = "LM") -> dict[str, float]:
    """Least-squares slope of log(median absolute error) against log(n) for each parameter of ``method``
    in a :func:`recovery_summary` table (needs at least two sample sizes): -0.5 is the 1/sqrt(n) rate of a
    regular estimator."""
    rows = summary.xs(method, level="method")
    if len(rows) < 2:
        raise ValueError(f"recovery_slopes needs at least two sample sizes for {method!r}, got {len(rows)}")
    log_n = np.log(rows.index.to_numpy(float))
    return {p: float(np.polyfit(log_n, np.log(rows[f"|{p} err|"].to_numpy(float)), 1)[0]) for p in PARAM_NAMES}


def lower_error(summary: "Any", method: str, other: str) -> dict[int, tuple[str, ...]]:
    """For each sample size n of a :func:`recovery_summary` table: the parameters (in the order A, B, g, k)
    whose median absolute error is strictly lower for ``method`` than for ``other``."""
    out = {}
    for n in summary.index.get_level_values("n").unique():
        a, b = summary.loc[(n, method)], summary.loc[(n, other)]
        out[int(n)] = tuple(p for p in PARAM_NAMES if a[f"|{p} err|"] < b[f"|{p} err|"])
    return out


def error_ratios(summary: "Any", method: str, other: str) -> "Any":
    """Median absolute error of ``method`` divided by that of ``other`` in a :func:`recovery_summary` table:
    a DataFrame indexed by n with one column per parameter (A, B, g, k); above 1, ``method`` is worse."""
    import pandas as pd

    ns = summary.index.get_level_values("n").unique()
    cols = [f"|{p} err|" for p in PARAM_NAMES]
    ratio = {int(n): summary.loc[(n, method), cols].to_numpy(float) / summary.loc[(n, other), cols].to_numpy(float)
             for n in ns}
    return pd.DataFrame.from_dict(ratio, orient="index", columns=list(PARAM_NAMES)).rename_axis("n")


def paired_wins(errors: "Any", method: str, other: str) -> tuple[int, int]:
    """Sample by sample: in how many (n, seed, parameter) triples of a :func:`recovery_errors` table is
    ``method``'s estimate strictly closer to the truth than ``other``'s; returns (wins, triples)."""
    cols = list(PARAM_NAMES)
    a = errors[errors.method == method].set_index(["n", "seed"])[cols].abs()
    b = errors[errors.method == other].set_index(["n", "seed"])[cols].abs()
    if a.empty or b.empty:
        raise ValueError(f"the recovery table has no fits for {method!r} or {other!r}; its methods are "
                         f"{sorted(errors.method.unique())}")
    b = b.loc[a.index]
    return int((a.to_numpy() < b.to_numpy()).sum()), int(a.size)


@dataclass(frozen=True)
class RecoveryVerdict:
    """Whether one row of a :func:`recovery_study` table meets an accuracy and a speed target."""

    n: int
    method: str
    errors: tuple[float, float, float, float]  # median |error| of A, B, g, k over the seeds
    ms_per_fit: float                          # median wall time per fit
    max_error: float
    max_ms: float

    @property
    def accurate(self) -> bool:
        """Every parameter's median absolute error is below ``max_error``."""
        return all(e < self.max_error for e in self.errors)

    @property
    def fast(self) -> bool:
        """The median fit takes less than ``max_ms`` milliseconds."""
        return self.ms_per_fit < self.max_ms

    def __str__(self) -> str:
        errs = ", ".join(f"{e:.4f}" for e in self.errors)
        return (f"{'PASS' if self.accurate and self.fast else 'FAIL'}: {self.method} at n={self.n:,} recovers "
                f"every parameter within {self.max_error} (median errors {errs}: "
                f"{'ok' if self.accurate else 'NOT met'}) in under {self.max_ms:g} ms per marginal "
                f"(median {self.ms_per_fit:.2f} ms: {'ok' if self.fast else 'NOT met'})")


def recovery_verdict(table: "Any", n: int = 10_000, method: str = "LM", max_error: float = 0.05,
                     max_ms: float = 20.0) -> RecoveryVerdict:
    """Judge the row (``n``, ``method``) of a :func:`recovery_study` table against the targets: every
    median absolute error below ``max_error`` and the median wall time per fit below ``max_ms`` (the
    defaults: within 0.05 in under 20 ms at n = 10,000, the targets of ``bench/bench_gk.py``)."""
    if (n, method) not in table.index:
        raise ValueError(f"the recovery table has no row (n={n!r}, method={method!r}); its rows are "
                         f"{list(table.index)}")
    row = table.loc[(n, method)]
    errors = tuple(float(row[f"|{name} err|"]) for name in PARAM_NAMES)
    return RecoveryVerdict(n=int(n), method=method, errors=errors, ms_per_fit=float(row["ms/fit"]),
                           max_error=float(max_error), max_ms=float(max_ms))
