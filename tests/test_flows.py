"""Flows: every layer's log|det J| against the autograd Jacobian, invertibility for any raw parameters.

One parametrisation (``CASES``) checks every flow, global and amortised, single layers and stacks, the same
way: float64, per sample, ``torch.linalg.slogdet(torch.autograd.functional.jacobian(...))``.
"""

import pytest
import torch
from torch.autograd.functional import jacobian

from vaebook.flows import FLOW_KINDS, FlowStack, GKTransform, Planar, Radial, make_flow

# name -> (factory(dim, amortized), std of the random raw parameters). The g-and-k layer gets a smaller
# spread: raw log-scale ~ N(0, 1) already means B between e^-3 and e^3 and heavy tails compound quickly.
CASES = {
    "planar": (lambda d, a: Planar(d, amortized=a), 2.0),
    "radial": (lambda d, a: Radial(d, amortized=a), 2.0),
    "gk": (lambda d, a: GKTransform(d, amortized=a), 0.7),
    "stack-combined": (lambda d, a: make_flow("combined", d, 4, amortized=a), 1.5),
    "stack-gk": (lambda d, a: make_flow("gk", d, 3, amortized=a), 0.7),
    # part global, part amortised (amortized=False: the amortised layers come first instead)
    "stack-mixed": (lambda d, a: FlowStack([Planar(d, amortized=not a), Radial(d, amortized=True),
                                            GKTransform(d), Planar(d, amortized=a)]), 0.7),
}


def _randomise(flow, std, batch, gen):
    """Random raw parameters: set the global ones in place, return the amortised (batch, n_params) tensor."""
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(std * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    n = flow.n_params if isinstance(flow, FlowStack) else (flow.n_params if flow.amortized else 0)
    return std * torch.randn(batch, n, generator=gen, dtype=torch.float64) if n else None


def _autograd_logdet(flow, z, params):
    out = []
    for i in range(len(z)):
        p = None if params is None else params[i:i + 1]
        J = jacobian(lambda zi: flow(zi[None], p)[0][0], z[i])
        sign, logabs = torch.linalg.slogdet(J)
        out.append((sign, logabs))
    return torch.stack([s for s, _ in out]), torch.stack([v for _, v in out])


@pytest.mark.parametrize("amortized", [False, True], ids=["global", "amortised"])
@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("case", list(CASES))
def test_log_det_matches_autograd_jacobian(case, dim, amortized):
    factory, std = CASES[case]
    gen = torch.Generator().manual_seed(100 * list(CASES).index(case) + 10 * dim + amortized)
    flow = factory(dim, amortized).double()
    for trial in range(3):
        batch = 7
        params = _randomise(flow, std, batch, gen)
        z = 1.5 * torch.randn(batch, dim, generator=gen, dtype=torch.float64)
        z_new, log_det = flow(z, params)
        assert z_new.shape == (batch, dim) and log_det.shape == (batch,)
        sign, ref = _autograd_logdet(flow, z, params)
        assert (sign > 0).all(), "an invertible flow with these constraints keeps orientation"
        torch.testing.assert_close(log_det, ref, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("dim", [1, 3, 8])
def test_planar_constraint_holds_for_extreme_raw_parameters(dim):
    gen = torch.Generator().manual_seed(dim)
    for scale in (1.0, 10.0, 100.0):
        u = scale * torch.randn(2000, dim, generator=gen, dtype=torch.float64)
        w = scale * torch.randn(2000, dim, generator=gen, dtype=torch.float64)
        u_hat = Planar.constrained_u(u, w)
        wu_hat = (w * u_hat).sum(-1)
        assert torch.isfinite(u_hat).all()
        assert (wu_hat >= -1 - 1e-9).all(), wu_hat.min()
    # the raw u that violates it most (w^T u very negative) is moved onto w^T u_hat ~ -1, not beyond
    w = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    u = torch.tensor([[-50.0, 3.0]], dtype=torch.float64)
    assert torch.allclose((w * Planar.constrained_u(u, w)).sum(-1), torch.tensor([-1.0], dtype=torch.float64))


@pytest.mark.parametrize("dim", [1, 4])
def test_radial_constraint_holds_for_extreme_raw_parameters(dim):
    gen = torch.Generator().manual_seed(10 + dim)
    raw = 60 * torch.randn(5000, 2, generator=gen, dtype=torch.float64)
    alpha, beta = Radial.constrained(raw[:, :1], raw[:, 1:])
    assert (alpha > 0).all() and (beta >= -alpha).all()
    # and the map's log-det stays finite with extreme parameters (random z, random centre)
    flow = Radial(dim, amortized=True).double()
    params = torch.cat([torch.randn(5000, dim, generator=gen, dtype=torch.float64), raw], dim=1)
    z, ld = flow(torch.randn(5000, dim, generator=gen, dtype=torch.float64), params)
    assert torch.isfinite(z).all() and torch.isfinite(ld).all()


@pytest.mark.parametrize("cls", [Planar, Radial, GKTransform])
def test_one_dimensional_flows_are_strictly_monotone_for_extreme_raw_parameters(cls):
    """In 1-D injective means monotone: check on a dense grid, for raw parameters up to +-30 (gk: +-3)."""
    gen = torch.Generator().manual_seed(3)
    flow = cls(1, amortized=True).double()
    grid = torch.linspace(-20, 20, 4001, dtype=torch.float64)[:, None]
    scale = 3.0 if cls is GKTransform else 30.0
    n_sets = 200
    p = scale * (2 * torch.rand(n_sets, flow.n_params, generator=gen, dtype=torch.float64) - 1)
    # all parameter sets at once: row (s, i) is grid point i under parameter set s
    y, ld = flow(grid.repeat(n_sets, 1), p.repeat_interleave(len(grid), dim=0))
    dy = torch.diff(y[:, 0].reshape(n_sets, len(grid)), dim=1)
    assert (dy > 0).all(), (cls.__name__, dy.min())
    assert torch.isfinite(ld).all()


def test_unconstrained_planar_would_fold_but_constrained_does_not():
    """The source's planar flow used u as is: with w^T u < -1 the 1-D map folds (is not injective)."""
    w, u, b = torch.tensor([[2.0]]), torch.tensor([[-3.0]]), torch.tensor([[0.0]])
    grid = torch.linspace(-3, 3, 601)[:, None]
    folded = grid + u * torch.tanh(grid * w + b)
    assert (torch.diff(folded[:, 0]) < 0).any()
    flow = Planar(1, amortized=True)
    y, _ = flow(grid, torch.cat([u, w, b], dim=1).expand(len(grid), -1))
    assert (torch.diff(y[:, 0]) > 0).all()


def test_identity_and_parameter_counts():
    z = torch.randn(4, 3)
    out, ld = FlowStack([])(z)
    assert torch.equal(out, z) and torch.equal(ld, torch.zeros(4))
    assert Planar(3).n_params == 7 and Radial(3).n_params == 5 and GKTransform(3).n_params == 12
    stack = make_flow("combined", 3, 4)
    assert stack.n_params == 2 * 7 + 2 * 5 and [type(f).__name__ for f in stack.flows] == [
        "Planar", "Radial", "Planar", "Radial"]
    assert sum(p.numel() for p in stack.parameters()) == 0   # amortised: no module parameters
    assert sum(p.numel() for p in make_flow("planar", 3, 2, amortized=False).parameters()) == 14
    assert set(FLOW_KINDS) >= {"none", "planar", "radial", "combined", "gk"}
    # raw zeros make the g-and-k layer a near-identity (k = softplus(-4)): f(z) ~ z
    y, _ = GKTransform(3, amortized=True)(z, torch.zeros(4, 12))
    assert torch.allclose(y, z, atol=0.03 * z.abs().max() ** 2 + 1e-3)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="amortised"):
        Planar(2, amortized=True)(torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"\(batch, 2\)"):
        Planar(2)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="global parameters"):
        Radial(2)(torch.randn(3, 2), torch.randn(3, 4))
    with pytest.raises(ValueError, match="need params"):
        make_flow("planar", 2, 2)(torch.randn(3, 2), torch.randn(3, 4))
    with pytest.raises(ValueError, match="unknown flow kind"):
        make_flow("coupling", 2, 2)
    with pytest.raises(ValueError, match="same dim"):
        FlowStack([Planar(2), Planar(3)])


def test_gradients_reach_raw_parameters():
    flow = make_flow("gk", 4, 4, amortized=False)
    z = torch.randn(16, 4)
    out, ld = flow(z)
    (out.pow(2).sum() - ld.sum()).backward()
    grads = [p.grad for p in flow.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


def test_gk_layer_takes_the_unvalidated_fast_path(monkeypatch):
    # the layer's (B, k) are valid by construction (B = e^b > 0, k >= 0), so it must not pay for the numerical
    # validity check in every forward pass; its output still equals the validated quantile function
    from vaebook import gk

    flow = GKTransform(3, amortized=True).double()
    z = torch.randn(5, 3, dtype=torch.float64)
    raw = 0.7 * torch.randn(5, 12, dtype=torch.float64)
    A, B, g, k = GKTransform.constrained(*raw.split(3, dim=1))
    expected = gk.quantile(z, A, B, g, k)                 # validated: these parameters are valid

    def refuse(*args, **kwargs):
        raise AssertionError("GKTransform called gk.validate_params")

    monkeypatch.setattr(gk, "validate_params", refuse)
    out, log_det = flow(z, raw)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(log_det, torch.log(gk.quantile_dz(z, A, B, g, k, validate=False)).sum(-1))
