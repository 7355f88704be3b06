r"""Normalizing flows: invertible maps with a tractable log-determinant, for richer posteriors in a VAE.

A flow pushes a sample :math:`z_0 \sim q_0` through invertible, differentiable maps
:math:`z_K = f_K \circ \dots \circ f_1(z_0)`; by the change of variables

.. math::

    \log q_K(z_K) = \log q_0(z_0) - \sum_{k=1}^{K} \log \left|\det \frac{\partial f_k}{\partial z_{k-1}}\right| .

(Rezende & Mohamed 2015, "Variational inference with normalizing flows", ICML; Tabak & Turner 2013, "A
family of nonparametric density estimation algorithms", CPAM 66; Papamakarios et al. 2021, "Normalizing
flows for probabilistic modeling and inference", JMLR 22.)

**One contract.** Every flow module maps ``z`` of shape (batch, dim) to ``(z_new, log_abs_det)`` with
``log_abs_det`` of shape (batch,): ``forward(z, params=None)``. A flow's parameters are either

* **global** (``amortized=False``, the default): ``nn.Parameter`` s of the module, shared by every input;
  ``params`` must then be ``None``; or
* **amortised** (``amortized=True``, as Rezende & Mohamed do): the module holds no parameters, and
  ``params`` is a (batch, n_params) tensor of *raw* (unconstrained) values, e.g. output by a VAE encoder
  per image. ``n_params`` says how many each layer takes; :class:`FlowStack` slices a (batch,
  stack.n_params) tensor in layer order.

Raw parameters are unconstrained real numbers; each layer maps them to a valid (invertible) flow inside
``forward``, so any raw value, learnt or random, gives an invertible map with a correct log-determinant.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import gk

__all__ = ["Flow", "Planar", "Radial", "GKTransform", "FlowStack", "make_flow", "FLOW_KINDS"]

# A determinant factor that is exactly 0 only on a measure-zero set (e.g. planar with w^T u_hat = -1 at
# w^T z + b = 0); clamping keeps the log finite there without changing any other value.
_TINY = 1e-30


class Flow(nn.Module):
    """Base class: global or amortised raw parameters, shape checks, and the (z_new, log_abs_det) contract.

    Subclasses set ``self.dim``, list their raw parameter shapes in :meth:`raw_shapes` (name -> size), and
    implement :meth:`transform` (z, **raw) -> (z_new, log_abs_det) where every raw tensor has shape
    (batch or 1, size).
    """

    def __init__(self, dim: int, amortized: bool = False):
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"flow dimension must be an integer >= 1, got {dim!r}")
        self.dim = dim
        self.amortized = bool(amortized)
        if not self.amortized:
            for name, size in self.raw_shapes().items():
                self.register_parameter(name, nn.Parameter(torch.empty(1, size)))
            self.reset_parameters()

    def raw_shapes(self) -> dict[str, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        """Number of raw parameters of this layer (what an encoder outputs per input when amortised)."""
        return sum(self.raw_shapes().values())

    def reset_parameters(self) -> None:
        """Global parameters: small random values, so the flow starts near (not at) the identity."""
        for name in self.raw_shapes():
            nn.init.normal_(getattr(self, name), std=0.01)

    def _check(self, z: torch.Tensor, params: torch.Tensor | None) -> None:
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"{type(self).__name__}: z must be shaped (batch, {self.dim}), got {shape}")
        if self.amortized:
            if params is None:
                raise ValueError(f"{type(self).__name__} is amortised: pass params of shape "
                                 f"(batch, {self.n_params}) (e.g. from the encoder)")
            if params.dim() != 2 or params.shape != (z.shape[0], self.n_params):
                raise ValueError(f"{type(self).__name__}: params must be shaped ({z.shape[0]}, {self.n_params}), "
                                 f"got {tuple(params.shape)}")
        elif params is not None:
            raise ValueError(f"{type(self).__name__} has global parameters; params must be None "
                             "(build it with amortized=True to pass parameters per input)")

    def raw(self, params: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Raw parameters by name, each (batch, size) when amortised or (1, size) when global."""
        if not self.amortized:
            return {name: getattr(self, name) for name in self.raw_shapes()}
        out, start = {}, 0
        for name, size in self.raw_shapes().items():
            out[name] = params[:, start:start + size]
            start += size
        return out

    def forward(self, z: torch.Tensor, params: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(z, params)
        return self.transform(z, **self.raw(params))

    def transform(self, z: torch.Tensor, **raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"dim={self.dim}, amortized={self.amortized}"


class Planar(Flow):
    r"""Planar flow (Rezende & Mohamed 2015, section 4.1): :math:`f(z) = z + \hat u\, h(w^\top z + b)`, h = tanh.

    .. math::

        \log\left|\det \frac{\partial f}{\partial z}\right| = \log\left|1 + \hat u^\top \psi(z)\right|,
        \qquad \psi(z) = h'(w^\top z + b)\, w .

    **Invertibility** (their appendix A.1): f is invertible iff :math:`w^\top \hat u \ge -1`. The raw
    :math:`u` is mapped to

    .. math::

        \hat u = u + \bigl(m(w^\top u) - w^\top u\bigr)\frac{w}{\lVert w\rVert^2}, \qquad m(a) = -1 + \log(1 + e^a),

    so that :math:`w^\top \hat u = m(w^\top u) > -1` for every raw (u, w). Raw parameters: ``u`` (dim),
    ``w`` (dim), ``b`` (1); ``n_params = 2 dim + 1``.
    """

    def raw_shapes(self) -> dict[str, int]:
        return {"u": self.dim, "w": self.dim, "b": 1}

    @staticmethod
    def constrained_u(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The constrained û with wᵀû = −1 + softplus(wᵀu) ≥ −1 (row-wise)."""
        wu = (w * u).sum(-1, keepdim=True)
        # ||w||^2 floored: for ||w||^2 < 1e-12, |w^T u| is itself ~1e-6 ||u||, and the map is ~ a translation
        w_sq = (w * w).sum(-1, keepdim=True).clamp_min(1e-12)
        return u + (F.softplus(wu) - 1.0 - wu) * w / w_sq

    def transform(self, z, u, w, b):
        u_hat = self.constrained_u(u, w)
        a = (z * w).sum(-1, keepdim=True) + b
        h = torch.tanh(a)
        z_new = z + u_hat * h
        dh = 1.0 - h * h                                   # tanh'(a)
        det = 1.0 + dh * (w * u_hat).sum(-1, keepdim=True)  # 1 + û^T psi(z), >= 1 - dh >= 0
        return z_new, torch.log(det.abs().clamp_min(_TINY)).squeeze(-1)


class Radial(Flow):
    r"""Radial flow (Rezende & Mohamed 2015, section 4.1): :math:`f(z) = z + \beta\, h(\alpha, r)(z - z_0)`,

    with :math:`r = \lVert z - z_0\rVert`, :math:`h(\alpha, r) = 1/(\alpha + r)`, and

    .. math::

        \log\left|\det \frac{\partial f}{\partial z}\right| = (d-1)\log(1 + \beta h) + \log(1 + \beta h + \beta h' r),
        \qquad h' = -\frac{1}{(\alpha + r)^2} .

    **Invertibility** (their appendix A.2) needs :math:`\alpha > 0` and :math:`\beta \ge -\alpha`:
    raw values map to :math:`\alpha = \mathrm{softplus}(\tilde\alpha)` and
    :math:`\beta = -\alpha + \mathrm{softplus}(\tilde\beta)`. Then :math:`1 + \beta h \ge r/(\alpha+r) \ge 0`
    and :math:`1 + \beta h + \beta h' r = 1 + \beta\alpha/(\alpha+r)^2 \ge 0`. Raw parameters: ``z0`` (dim),
    ``alpha`` (1), ``beta`` (1); ``n_params = dim + 2``.
    """

    def raw_shapes(self) -> dict[str, int]:
        return {"z0": self.dim, "alpha": 1, "beta": 1}

    @staticmethod
    def constrained(alpha_raw: torch.Tensor, beta_raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, beta) with alpha > 0 and beta >= -alpha."""
        alpha = F.softplus(alpha_raw)
        return alpha, -alpha + F.softplus(beta_raw)

    def transform(self, z, z0, alpha, beta):
        alpha, beta = self.constrained(alpha, beta)
        diff = z - z0
        r = diff.norm(dim=-1, keepdim=True)
        h = 1.0 / (alpha + r)
        z_new = z + beta * h * diff
        first = 1.0 + beta * h                          # multiplicity d - 1 (directions orthogonal to z - z0)
        radial = 1.0 + beta * alpha * h * h             # = 1 + beta h + beta h' r
        log_det = (self.dim - 1) * torch.log(first.clamp_min(_TINY)) + torch.log(radial.clamp_min(_TINY))
        return z_new, log_det.squeeze(-1)


class GKTransform(Flow):
    r"""Elementwise g-and-k quantile transform: :math:`f(z)_i = Q(z_i; A_i, B_i, g_i, k_i)` (a flow layer).

    .. math::

        Q(z) = A + B\,[1 + c\tanh(g z/2)]\,(1+z^2)^k\, z, \qquad
        \log\left|\det \frac{\partial f}{\partial z}\right| = \sum_i \log Q_i'(z_i),

    with :math:`Q'` in closed form (:func:`vaebook.gk.log_quantile_dz`; c = 0.8). The Jacobian is diagonal.
    Viewed as a flow, the g-and-k distribution *is* this layer applied to a standard normal: stacking it on a
    Gaussian base gives a "g-and-k base" (Haynes et al. 1997; Rayner & MacGillivray 2002; as a flow layer
    cf. Papamakarios et al. 2021, elementwise bijections).

    **Validity** (Q' > 0 everywhere, so f is invertible): raw values map to :math:`B = e^{\tilde b}` (> 0),
    :math:`k = \mathrm{softplus}(\tilde\kappa - 4)` (≥ 0, a subset of the allowed k ≥ −1/2 on which every
    skewness g gives Q' > 0 for c = 0.8 < 0.83, Rayner & MacGillivray 2002), and g, A unconstrained. The
    shift by 4 makes raw zeros a near-identity layer (k ≈ 0.018). Raw parameters: ``A``, ``b``, ``g``,
    ``kappa`` (dim each); ``n_params = 4 dim``.
    """

    K_SHIFT = 4.0

    def raw_shapes(self) -> dict[str, int]:
        return {"A": self.dim, "b": self.dim, "g": self.dim, "kappa": self.dim}

    @classmethod
    def constrained(cls, A, b, g, kappa):
        """(A, B, g, k) with B > 0 and k >= 0."""
        return A, torch.exp(b), g, F.softplus(kappa - cls.K_SHIFT)

    def transform(self, z, A, b, g, kappa):
        A, B, g, k = self.constrained(A, b, g, kappa)
        # valid by construction (B > 0, k >= 0), so the numerical validity check is skipped in the inner loop
        z_new = gk.quantile(z, A, B, g, k, validate=False)
        log_det = gk.log_quantile_dz(z, A, B, g, k, validate=False).sum(-1)
        return z_new, log_det


class FlowStack(nn.Module):
    r"""A composition :math:`f_K \circ \dots \circ f_1`; the log-determinants add up:
    :math:`\log|\det J| = \sum_k \log|\det J_{f_k}(z_{k-1})|`.

    ``n_params`` is the number of raw parameters the *amortised* layers take per input, in layer order
    (global layers take none); ``forward(z, params)`` slices ``params`` accordingly. An empty stack is the
    identity with log-determinant 0.
    """

    def __init__(self, flows: Iterable[Flow] = ()):
        super().__init__()
        self.flows = nn.ModuleList(list(flows))
        dims = {f.dim for f in self.flows}
        if len(dims) > 1:
            raise ValueError(f"all flows in a stack must have the same dim, got {sorted(dims)}")

    def __len__(self) -> int:
        return len(self.flows)

    @property
    def n_params(self) -> int:
        return sum(f.n_params for f in self.flows if f.amortized)

    def forward(self, z: torch.Tensor, params: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(z, torch.Tensor) or z.dim() != 2:
            raise ValueError(f"FlowStack: z must be shaped (batch, dim), got "
                             f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        n = self.n_params
        if n == 0 and params is not None and params.numel() > 0:
            raise ValueError("FlowStack has no amortised layers; params must be None")
        if n > 0 and (params is None or params.dim() != 2 or params.shape != (z.shape[0], n)):
            got = None if params is None else tuple(params.shape)
            raise ValueError(f"FlowStack: its amortised layers need params shaped ({z.shape[0]}, {n}), got {got}")
        log_det = z.new_zeros(z.shape[0])
        start = 0
        for f in self.flows:
            p = None
            if f.amortized:
                p = params[:, start:start + f.n_params]
                start += f.n_params
            z, ld = f(z, p)
            log_det = log_det + ld
        return z, log_det


FLOW_KINDS = ("none", "planar", "radial", "combined", "gk")


def make_flow(kind: str, dim: int, n_flows: int, amortized: bool = True) -> FlowStack:
    """A stack of ``n_flows`` layers of one kind:

    * ``"none"``: the identity (a plain VAE);
    * ``"planar"`` / ``"radial"``: K planar / radial layers;
    * ``"combined"``: planar and radial interleaved (planar, radial, planar, ...);
    * ``"gk"``: g-and-k elementwise transforms interleaved with planar layers (GK, planar, GK, ...), so the
      axis-aligned g-and-k layers are mixed by the planar ones.
    """
    if kind not in FLOW_KINDS:
        raise ValueError(f"unknown flow kind {kind!r}; choose one of {FLOW_KINDS}")
    if not isinstance(n_flows, int) or isinstance(n_flows, bool) or n_flows < 0:
        raise ValueError(f"n_flows must be an integer >= 0, got {n_flows!r}")
    if kind == "none" or n_flows == 0:
        return FlowStack([])
    cycle: Sequence[type[Flow]] = {"planar": (Planar,), "radial": (Radial,), "combined": (Planar, Radial),
                                   "gk": (GKTransform, Planar)}[kind]
    return FlowStack([cycle[i % len(cycle)](dim, amortized=amortized) for i in range(n_flows)])

