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

The multivariate g-and-k (Drovandi & Pettitt 2011, "Likelihood-free Bayesian estimation of multivariate
quantile distributions", Computational Statistics & Data Analysis 55) draws :math:`z \sim N(0, R)` with
:math:`R` a correlation matrix and applies a g-and-k quantile to each margin (a Gaussian copula):
:class:`MultivariateGK`.

Fitting (:func:`fit_lm`, :func:`fit_quantiles`, :func:`fit_multivariate_lm`) is least squares on
quantiles, started from the closed-form octile estimator (:func:`octile_estimate`).

Everything in the distribution part is pure torch and differentiable in ``x`` and the four parameters (the
flows and priors elsewhere in the library rely on that); the fitting part uses numpy and scipy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch.distributions import Distribution, constraints

__all__ = [
    "C_DEFAULT", "quantile", "quantile_dz", "log_quantile_dz", "inverse", "cdf", "icdf", "log_prob", "sample",
    "validate_params", "validate_correlation", "MultivariateGK", "GKFit", "MultivariateGKFit",
    "octile_estimate", "fit_quantiles", "fit_lm", "fit_multivariate_lm", "nearest_correlation",
]

C_DEFAULT = 0.8
#: Largest |z| the inverse searches. Q(±1e150) covers every finite x except for k within ~1e-3 of -1/2
#: (where Q grows like |z|^(2k+1)); beyond it the root is reported as ±inf (so F(x) is 0 or 1 and the
#: density 0, which is what they are in float64 anyway: Phi(-38) already underflows).
Z_MAX = 1e150
_W_MAX = math.asinh(Z_MAX)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_N_BISECT = 12         # bisection steps in w = asinh(z) on [-W_MAX, W_MAX]: bracket width 0.17 in w
_NEWTON_TOL = 1e-12    # stop when a Newton step in w is below this (relative to 1 + |w|)
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
    return A + B * (1.0 + c * torch.tanh(0.5 * g * z)) * torch.exp(k * torch.log1p(z * z)) * z


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
# covers g = 0 and anything the u grid might miss.
_U_GRID = -torch.logspace(-4.0, math.log10(40.0), 1500, dtype=torch.float64)
_Z_GRID = torch.sinh(torch.linspace(-12.0, 12.0, 1201, dtype=torch.float64))


def _describe(t: torch.Tensor) -> str:
    t = t.detach()
    return f"{t.item():g}" if t.numel() == 1 else f"tensor of shape {tuple(t.shape)}"


def validate_params(A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT) -> None:
    """Raise ``ValueError`` (naming the parameter and its allowed range) unless (A, B, g, k, c) is valid.

    Rules: all finite; ``B > 0``; ``k >= -0.5``; ``0 <= c < 1``; and ``Q'(z) > 0`` on a dense grid (the
    numerical check of Prangle's R package ``gk``, ``isValid``). With c = 0.8, ``k >= 0`` is always valid;
    ``k < 0`` fails for small non-zero ``|g|`` (the dip of ``c u sech^2 u`` at ``z ~ -2/g`` where
    ``(1+(2k+1)z^2)/(1+z^2)`` has fallen to ~2k+1). Tensors are checked elementwise (after broadcasting).
    """
    A, B, g, k, c = _tensors(A=A, B=B, g=g, k=k, c=c)
    A, B, g, k, c = (t.detach().to(torch.float64).cpu() for t in (A, B, g, k, c))
    for name, t in (("A", A), ("B", B), ("g", g), ("k", k), ("c", c)):
        if not torch.isfinite(t).all():
            raise ValueError(f"g-and-k parameter {name} must be finite, got {_describe(t)} with "
                             f"{int((~torch.isfinite(t)).sum())} NaN/inf value(s)")
    if (B <= 0).any():
        raise ValueError(f"g-and-k parameter B (scale) must be > 0, got min B = {B.min().item():g}")
    if (k < -0.5).any():
        raise ValueError(f"g-and-k parameter k (tail weight) must be >= -0.5, got min k = {k.min().item():g}")
    if ((c < 0) | (c >= 1)).any():
        raise ValueError(f"g-and-k parameter c must be in [0, 1) (conventionally 0.8), got {_describe(c)}")
    try:
        g, k, c = torch.broadcast_tensors(g, k, c)
    except RuntimeError as err:
        raise ValueError(f"g-and-k parameters g, k, c do not broadcast: shapes {tuple(g.shape)}, "
                         f"{tuple(k.shape)}, {tuple(c.shape)}") from err
    gkc = torch.unique(torch.stack([g.reshape(-1), k.reshape(-1), c.reshape(-1)], dim=-1), dim=0)
    for chunk in torch.split(gkc, 2048):
        gg, kk, cc = (chunk[:, i:i + 1] for i in range(3))
        nz = gg != 0
        z_u = torch.where(nz, 2.0 * _U_GRID / torch.where(nz, gg, 1.0), 0.0)
        z_all = torch.cat([z_u, _Z_GRID.expand(len(chunk), -1)], dim=1)
        T = _bracket_term(z_all, gg, kk, cc)
        tmin, imin = T.min(dim=1)
        bad = ~(tmin > 0)
        if bad.any():
            j = int(torch.nonzero(bad)[0])
            raise ValueError(
                f"g-and-k parameters (g={gg[j].item():g}, k={kk[j].item():g}, c={cc[j].item():g}) are invalid: "
                f"Q'(z) <= 0 near z = {z_all[j, imin[j]].item():.3g}, so Q is not monotone and there is no "
                f"density. For k < 0 small non-zero |g| is invalid (with c=0.8: |g| <= ~1.9 at k=-0.1, "
                f"~6.5 at k=-0.5); use k >= 0, g = 0, or a larger |g|.")


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

def quantile(z: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT) -> torch.Tensor:
    r"""g-and-k quantile :math:`Q(z) = A + B[1 + c\tanh(gz/2)](1+z^2)^k z` at standard-normal scores ``z``.

    Elementwise with broadcasting; differentiable in ``z`` and all parameters. No validation (a flow layer
    calls this in its inner loop); see :func:`validate_params`. For a probability ``p`` use :func:`icdf`.
    """
    z, A, B, g, k = _tensors(z=z, A=A, B=B, g=g, k=k)
    return _q(z, A, B, g, k, c)


def quantile_dz(z: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT) -> torch.Tensor:
    r"""Closed-form :math:`dQ/dz = B(1+z^2)^k[(1+c\tanh(gz/2))\frac{1+(2k+1)z^2}{1+z^2}
    + \frac{c g z}{2\cosh^2(gz/2)}]`, elementwise, differentiable."""
    z, A, B, g, k = _tensors(z=z, A=A, B=B, g=g, k=k)
    return _dq(z, A, B, g, k, c)


def log_quantile_dz(z: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT) -> torch.Tensor:
    r""":math:`\log Q'(z) = \log B + k\log(1+z^2) + \log T(z)`, computed in log space (finite in far tails)."""
    z, A, B, g, k = _tensors(z=z, A=A, B=B, g=g, k=k)
    return _log_dq(z, B, g, k, c)


@torch.no_grad()
def _solve(x: torch.Tensor, A, B, g, k, c) -> torch.Tensor:
    """Root of Q(z) = x, float64, no autograd. Returns a tensor of the broadcast shape.

    Method: 12 bisection steps in w = asinh(z) on [-asinh(1e150), asinh(1e150)] (every element at once),
    then Newton in w safeguarded by the bracket (a step leaving it is replaced by the bracket's midpoint);
    converged elements drop out of the working set. Working in w makes the far tails, where Q grows like
    |z|^(2k+1) (very flat for k near -1/2), nearly linear, so Newton converges there too.
    """
    shape = torch.broadcast_shapes(x.shape, A.shape, B.shape, g.shape, k.shape,
                                   c.shape if isinstance(c, torch.Tensor) else ())
    f64 = torch.float64
    x = x.to(f64).expand(shape).reshape(-1)
    ps = []
    for p in (A, B, g, k, c):
        p = p if isinstance(p, torch.Tensor) else torch.tensor(float(p), dtype=f64)
        p = p.to(device=x.device, dtype=f64)
        # scalars stay 0-dim (never copied or indexed); others are materialised at the full size
        ps.append(p.reshape(()) if p.numel() == 1 else p.expand(shape).reshape(-1))
    out = torch.full_like(x, float("nan"))

    def sub(p, idx):
        return p if p.dim() == 0 else p[idx]

    zmax = torch.tensor(Z_MAX, dtype=f64, device=x.device)
    qhi = _q(zmax, *ps)
    qlo = _q(-zmax, *ps)
    hi_out = (x > qhi) | (x == math.inf)
    lo_out = (x < qlo) | (x == -math.inf)
    out = torch.where(hi_out, math.inf, out)
    out = torch.where(lo_out, -math.inf, out)
    idx = torch.nonzero(~(hi_out | lo_out | torch.isnan(x))).reshape(-1)
    if idx.numel() == 0:
        return out.reshape(shape)
    xa = x[idx]
    pa = [sub(p, idx) for p in ps]
    wl = torch.full_like(xa, -_W_MAX)
    wh = torch.full_like(xa, _W_MAX)
    for _ in range(_N_BISECT):
        wm = 0.5 * (wl + wh)
        up = _q(torch.sinh(wm), *pa) > xa
        wh = torch.where(up, wm, wh)
        wl = torch.where(up, wl, wm)
    w = 0.5 * (wl + wh)
    for it in range(_NEWTON_MAX_ITER):
        z = torch.sinh(w)
        F = _q(z, *pa) - xa
        dF = _dq(z, *pa) * torch.cosh(w)
        wl = torch.where(F < 0, w, wl)
        wh = torch.where(F > 0, w, wh)
        wn = w - F / dF
        bad = ~((wn > wl) & (wn < wh))  # also catches NaN from inf/inf far out
        wn = torch.where(bad, 0.5 * (wl + wh), wn)
        exact = F == 0
        wn = torch.where(exact, w, wn)
        scale = 1.0 + w.abs()
        done = exact | ((wn - w).abs() <= _NEWTON_TOL * scale) | ((wh - wl) <= _NEWTON_TOL * scale)
        if it == _NEWTON_MAX_ITER - 1:
            done = torch.ones_like(done)
        if bool(done.all()):
            out[idx] = torch.sinh(wn)
            break
        if bool(done.any()):
            out[idx[done]] = torch.sinh(wn[done])
            keep = ~done
            idx, xa, wn, wl, wh = idx[keep], xa[keep], wn[keep], wl[keep], wh[keep]
            pa = [sub(p, keep) for p in pa]
        w = wn
    return out.reshape(shape)


def _inverse64(x, A, B, g, k, c, validate: bool):
    """(z in float64 with exact first derivatives, result dtype)."""
    x, A, B, g, k = _tensors(x=x, A=A, B=B, g=g, k=k)
    if validate:
        validate_params(A, B, g, k, c)
    dtype = _promote(x, A, B, g, k)
    zstar = _solve(x.detach(), A.detach(), B.detach(), g.detach(), k.detach(),
                   c.detach() if isinstance(c, torch.Tensor) else c)
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (x, A, B, g, k))
            or (isinstance(c, torch.Tensor) and c.requires_grad)):
        return zstar, dtype
    # Implicit differentiation: one Newton step from the detached root, z = z* - (Q(z*) - x)/Q'(z*),
    # has value z* (to rounding) and gradients dz/dx = 1/Q', dz/dθ = -(dQ/dθ)/Q' at the root. Elements
    # whose root is ±inf or NaN keep z* and get safe stand-ins so that no NaN leaks into the gradient.
    f64 = torch.float64
    finite = torch.isfinite(zstar)
    zs = torch.where(finite, zstar, 0.0)
    x64 = x.to(f64)
    xs = torch.where(finite, x64, _q(zs, A.to(f64), B.to(f64), g.to(f64), k.to(f64), c).detach())
    A64, B64, g64, k64 = (t.to(f64) for t in (A, B, g, k))
    step = zs - (_q(zs, A64, B64, g64, k64, c) - xs) / _dq(zs, A64, B64, g64, k64, c)
    return torch.where(finite, step, zstar), dtype


def inverse(x: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *, validate: bool = True) -> torch.Tensor:
    r"""Normal score :math:`z = Q^{-1}(x)`, vectorised, float64 internally, with exact first derivatives.

    The root is found under ``no_grad`` (bisection in :math:`w = \operatorname{asinh} z`, then bracketed
    Newton; relative accuracy ~1e-12 for :math:`|z| \le 10^{150}`), then one Newton step with autograd on
    gives :math:`\partial z/\partial x = 1/Q'(z)` and :math:`\partial z/\partial\theta = -\partial_\theta
    Q / Q'`. ``x`` beyond :math:`Q(\pm 10^{150})` (only reachable for bounded support, :math:`k = -1/2`, or
    :math:`k` within ~1e-3 of it) gives :math:`\pm\infty`. Returns the promoted dtype of the inputs.
    """
    z, dtype = _inverse64(x, A, B, g, k, c, validate)
    return z.to(dtype)


def cdf(x: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *, validate: bool = True) -> torch.Tensor:
    r"""CDF :math:`F(x) = \Phi(Q^{-1}(x))`."""
    z, dtype = _inverse64(x, A, B, g, k, c, validate)
    return torch.special.ndtr(z).to(dtype)


def icdf(p: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT) -> torch.Tensor:
    r"""Quantile at probability ``p``: :math:`Q(\Phi^{-1}(p))`."""
    p = _tensor(p, "p")
    return quantile(torch.special.ndtri(p), A, B, g, k, c)


def log_prob(x: Any, A: Any, B: Any, g: Any, k: Any, c: Any = C_DEFAULT, *, validate: bool = True) -> torch.Tensor:
    r"""Log density :math:`\log f(x) = \log\varphi(z) - \log Q'(z)` with :math:`z = Q^{-1}(x)`.

    Differentiable in ``x`` and the parameters (see :func:`inverse`); ``-inf`` outside a bounded support.
    """
    z, dtype = _inverse64(x, A, B, g, k, c, validate)
    _, A, B, g, k = _tensors(x=0.0, A=A, B=B, g=g, k=k)
    finite = torch.isfinite(z)
    zs = torch.where(finite, z, 0.0)
    f64 = torch.float64
    lp = -0.5 * zs * zs - _LOG_SQRT_2PI - _log_dq(zs, B.to(f64), g.to(f64), k.to(f64), c)
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

    def __init__(self, A: Any, B: Any, g: Any, k: Any, R: Any, c: float = C_DEFAULT, validate_args: bool | None = None):
        R = validate_correlation(R)
        d = R.shape[0]
        params = []
        for name, v in (("A", A), ("B", B), ("g", g), ("k", k)):
            t = _tensor(v, name)
            if t.dim() == 0:
                t = t.expand(d)
            if t.shape != (d,):
                raise ValueError(f"{name} must have shape ({d},) to match R of shape ({d}, {d}), got {tuple(t.shape)}")
            params.append(t)
        validate_params(*params, c)
        self.A, self.B, self.g, self.k = params
        self.R = R
        self.c = c
        dtype = _promote(*params, R)
        self._dtype = dtype if dtype.is_floating_point else torch.float64
        self._scale_tril = torch.linalg.cholesky(R.to(self._dtype))
        eye = torch.eye(d, dtype=self._dtype, device=R.device)
        self._tril_inv = torch.linalg.solve_triangular(self._scale_tril, eye, upper=False)
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([d]), validate_args=validate_args)

    @property
    def dim(self) -> int:
        return self.event_shape[0]

    @property
    def median(self) -> torch.Tensor:
        return self.A.to(self._dtype)

    def rsample(self, sample_shape: Sequence[int] = torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self._dtype, device=self.R.device, generator=generator)
        z = eps @ self._scale_tril.T
        return _q(z, self.A, self.B, self.g, self.k, self.c)

    def sample(self, sample_shape: Sequence[int] = torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
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


def _to_theta(A, B, g, k):
    return np.array([A, math.log(B), g, _inv_softplus(k + 0.5)])


def _from_theta(t):
    return float(t[0]), float(np.exp(t[1])), float(t[2]), float(-0.5 + _softplus(t[3]))


def _q_np(z, A, B, g, k, c):
    return A + B * (1.0 + c * np.tanh(0.5 * g * z)) * np.exp(k * np.log1p(z * z)) * z


@dataclass
class GKFit:
    """Result of fitting a univariate g-and-k.

    ``params`` = (A, B, g, k); ``cost`` = 0.5 Σ r_i² at the solution (scipy's convention; r_i the quantile
    residuals); ``nfev`` residual evaluations (``njev`` Jacobians); ``converged`` is False whenever the
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
        """Root mean square quantile residual."""
        return math.sqrt(2.0 * self.cost / self.n_residuals)


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
    g = 2.0 / z6 * math.atanh(s)
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
    ±0.999) and A = E_4. These are the robust octile summaries of the issue, inverted exactly.
    """
    xs = np.sort(_check_sample(x))
    return _octile_from_sorted(xs, c)


def _make_problem(p, xq, c, trace):
    z = np.sqrt(2.0) * _erfinv(2.0 * p - 1.0)
    L = np.log1p(z * z)
    hist: list[float] = []

    def parts(t):
        A, b, g, kap = t
        with np.errstate(over="ignore", invalid="ignore"):
            B = np.exp(b)
            k = -0.5 + _softplus(kap)
            th = np.tanh(0.5 * g * z)
            core = (1.0 + c * th) * np.exp(k * L) * z  # Q = A + B core
        return A, B, g, k, kap, th, core

    def resid(t):
        A, B, g, k, kap, th, core = parts(t)
        with np.errstate(over="ignore", invalid="ignore"):
            r = xq - (A + B * core)
        r = np.nan_to_num(r, nan=1e100, posinf=1e100, neginf=-1e100)
        if trace:
            hist.append(0.5 * float(r @ r))
        return r

    def jac(t):
        # d r / d(A, b, g, kappa) = -(1, B core, B c (z/2) sech^2(gz/2) (1+z^2)^k z, B core log(1+z^2) sigmoid(kappa))
        A, B, g, k, kap, th, core = parts(t)
        with np.errstate(over="ignore", invalid="ignore"):
            Bcore = B * core
            J = np.empty((z.size, 4))
            J[:, 0] = -1.0
            J[:, 1] = -Bcore
            J[:, 2] = -B * c * 0.5 * z * (1.0 - th * th) * np.exp(k * L) * z
            J[:, 3] = -Bcore * L * _sigmoid(kap)
        return np.nan_to_num(J, nan=0.0, posinf=1e100, neginf=-1e100)

    return resid, jac, hist


def _erfinv(y):
    from scipy.special import erfinv

    return erfinv(y)


_METHODS = ("lm", "trf", "nelder-mead", "octile")


def fit_quantiles(x: Any, method: str = "lm", c: float = C_DEFAULT, max_nfev: int | None = None,
                  m: int = M_GRID, n_full: int = N_FULL, trace: bool = False) -> GKFit:
    r"""Fit (A, B, g, k) by least squares on quantiles.

    Residuals :math:`r_i = x_{(i)} - Q(\Phi^{-1}(p_i); \theta)`: for :math:`n \le` ``n_full`` (2000) all
    order statistics at :math:`p_i = (i - 1/2)/n`; for larger n the ``m`` (1000) empirical quantiles at
    :math:`p_j = (j - 1/2)/m` (Hazen interpolation), which keeps the cost per iteration fixed. The problem is
    unconstrained in :math:`\theta = (A, b, g, \kappa)` with :math:`B = e^b`, :math:`k = -1/2 +
    \mathrm{softplus}(\kappa)`; the Jacobian is analytic. Started at :func:`octile_estimate`.

    ``method``: ``"lm"`` (MINPACK Levenberg–Marquardt, ``scipy.optimize.least_squares(method="lm")``),
    ``"trf"`` (scipy's trust-region reflective, same residuals and Jacobian), ``"nelder-mead"``
    (``scipy.optimize.minimize`` on :math:`\sum r_i^2`) or ``"octile"`` (the start alone). Bad input raises
    ``ValueError``; non-convergence is reported in the result (``converged=False``, ``message``), never
    raised.
    """
    from scipy.optimize import least_squares, minimize

    t0 = time.perf_counter()
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 8:
        raise ValueError(f"m (number of quantiles) must be an integer >= 8, got {m!r}")
    if max_nfev is not None and (isinstance(max_nfev, bool) or not isinstance(max_nfev, (int, np.integer))
                                 or max_nfev < 1):
        raise ValueError(f"max_nfev must be None or an integer >= 1, got {max_nfev!r}")
    if not (0.0 <= float(c) < 1.0):
        raise ValueError(f"g-and-k parameter c must be in [0, 1) (conventionally 0.8), got {c!r}")
    xs = np.sort(_check_sample(x))
    start = _octile_from_sorted(xs, c)
    p, xq = _quantile_targets(xs, m, n_full)
    resid, jac, hist = _make_problem(p, xq, c, trace)
    # a start at k = -0.5 exactly has kappa = -inf: nudge it inside
    A0, B0, g0, k0 = start
    theta0 = _to_theta(A0, B0, g0, max(k0, -0.5 + 1e-3))

    njev: int | None = None
    if method == "octile":
        r = resid(theta0) if k0 > -0.5 else xq - _q_np(np.sqrt(2.0) * _erfinv(2.0 * p - 1.0), A0, B0, g0, k0, c)
        return GKFit(params=start, cost=0.5 * float(r @ r), converged=True, message="closed-form octile estimator",
                     method=method, nfev=0, njev=0, start=start, n=xs.size, n_residuals=xq.size, c=float(c),
                     seconds=time.perf_counter() - t0, history=list(hist))
    if method in ("lm", "trf"):
        res = least_squares(resid, theta0, jac=jac, method=method, max_nfev=max_nfev)
        theta, cost, nfev, njev = res.x, float(res.cost), int(res.nfev), (None if res.njev is None else int(res.njev))
        converged = bool(res.status > 0)
        message = f"{'LM' if method == 'lm' else 'TRF'} (status {res.status}): {res.message}"
    else:
        f0 = float(resid(theta0) @ resid(theta0))
        if trace:
            hist.clear()
        opts = {"xatol": 1e-8, "fatol": 1e-12 * max(f0, 1e-300), "maxfev": max_nfev or 4000, "maxiter": 4000}
        res = minimize(lambda t: float(np.square(resid(t)).sum()), theta0, method="Nelder-Mead", options=opts)
        theta, cost, nfev = res.x, 0.5 * float(res.fun), int(res.nfev)
        converged = bool(res.success)
        message = f"Nelder-Mead: {res.message}"
    params = _from_theta(theta)
    if trace and method == "nelder-mead":
        hist[:] = [0.5 * h for h in hist]  # resid's trace is already 0.5 r.r; NM's objective is r.r
    if not all(math.isfinite(v) for v in params):
        converged = False
        message += "; the solution is not finite"
    else:
        try:
            validate_params(*params, c)
        except ValueError as err:
            converged = False
            message += f"; it ended at an invalid g-and-k: {err}"
    return GKFit(params=params, cost=cost, converged=converged, message=message, method=method, nfev=nfev,
                 njev=njev, start=start, n=xs.size, n_residuals=xq.size, c=float(c),
                 seconds=time.perf_counter() - t0, history=list(hist))


def fit_lm(x: Any, c: float = C_DEFAULT, max_nfev: int | None = None, m: int = M_GRID, n_full: int = N_FULL,
           trace: bool = False) -> GKFit:
    """Levenberg–Marquardt fit of a univariate g-and-k on quantile residuals: :func:`fit_quantiles` with
    ``method="lm"`` (all order statistics up to n = 2000, else 1000 empirical quantiles)."""
    return fit_quantiles(x, method="lm", c=c, max_nfev=max_nfev, m=m, n_full=n_full, trace=trace)


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
