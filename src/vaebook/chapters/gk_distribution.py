"""Chapter "The g-and-k distribution and Levenberg–Marquardt fitting": no models are trained (so no
``jobs``); the parameters size the recovery study and the bivariate example, and one helper reproduces the
source project's one-residual "LM fit" to show why it cannot run."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .. import gk
from ..config import ChapterParams, integer, integers

THETA = gk.CLASSIC  # the classic test case (A, B, g, k) = (3, 1, 2, 0.5)


@dataclass(frozen=True)
class Params(ChapterParams):
    n_seeds: int = integer(10, "simulated samples (seeds) per sample size in the recovery study")
    sample_sizes: tuple[int, ...] = integers((1000, 10000, 100000), "sample sizes of the recovery study "
                                             "(a g-and-k fit needs at least 8 points)", minimum=8)
    n_bivariate: int = integer(10000, "size of the bivariate example's sample", minimum=100)


DEFAULT = Params()
PROFILES = {
    "smoke": replace(DEFAULT, n_seeds=3, sample_sizes=(1000, 10000), n_bivariate=2000),
    "default": DEFAULT,
    "full": replace(DEFAULT, n_seeds=20, n_bivariate=50000),
}


def one_residual_lm_error(n_codes: int = 500, seed: int = 0) -> str:
    """Run the source project's shape of "LM fit" and return the error scipy raises.

    Its residual was a single number: the difference between the mean of fresh g-and-k draws and the mean
    of the latent codes (here ``n_codes`` standard-normal stand-ins), with no pairing between draws and
    codes. MINPACK's Levenberg–Marquardt needs at least as many residuals as parameters (four), so
    ``scipy.optimize.least_squares(method="lm")`` refuses the problem before iterating.
    """
    from scipy.optimize import least_squares

    codes = np.random.default_rng(seed).standard_normal(n_codes)

    def scalar_residual(t: np.ndarray) -> np.ndarray:
        # B = e^b; the draws are not checked for validity: LM would probe invalid (g, k) on its way
        draws = gk.sample(n_codes, t[0], np.exp(t[1]), t[2], t[3], validate=False).numpy()
        return np.array([np.mean(draws) - np.mean(codes)])

    try:
        least_squares(scalar_residual, np.zeros(4), method="lm")
    except ValueError as err:
        return str(err)
    raise AssertionError("scipy's LM accepted one residual for four parameters")  # scipy changed its rule


def log_density_grid(dist: gk.MultivariateGK, x1_limits: tuple[float, float], x2_limits: tuple[float, float],
                     points: int = 160) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X1, X2, log p)`` of a bivariate ``dist`` on a ``points`` × ``points`` grid spanning the limits, for a
    contour plot: ``X1`` varies along the columns and ``X2`` along the rows (``torch.meshgrid`` "xy")."""
    if dist.dim != 2:
        raise ValueError(f"log_density_grid needs a bivariate distribution, got dimension {dist.dim}")
    x1 = torch.linspace(*x1_limits, points, dtype=torch.float64)
    x2 = torch.linspace(*x2_limits, points, dtype=torch.float64)
    X1, X2 = torch.meshgrid(x1, x2, indexing="xy")
    return X1, X2, dist.log_prob(torch.stack([X1.reshape(-1), X2.reshape(-1)], -1)).reshape(X1.shape)


# --- sentences from the recovery study: the prose states what this run measured ----------------------

def param_phrase(params: tuple[str, ...] | list[str]) -> str:
    """Markdown naming parameters of (A, B, g, k): "all four parameters", "no parameter", "*g*",
    "*A* and *g*", "*A*, *B* and *k*"."""
    params = [p for p in gk.PARAM_NAMES if p in params]
    if len(params) == len(gk.PARAM_NAMES):
        return "all four parameters"
    if not params:
        return "no parameter"
    names = [f"*{p}*" for p in params]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def lower_error_phrase(by_n: dict[int, tuple[str, ...]], skip_empty: bool = False) -> str:
    """Markdown for :func:`vaebook.gk.lower_error`'s result, one clause per set of parameters, naming the
    sample sizes that have it: e.g. "all four parameters at *n* = 1,000 and 10,000, and *B* and *g* at
    *n* = 100,000". With ``skip_empty`` the sizes with no parameter are left out ("no parameter at any
    sample size" when none has one)."""
    if all(not ps for ps in by_n.values()) and (skip_empty or not by_n):
        return "no parameter at any sample size"
    if by_n and all(len(ps) == len(gk.PARAM_NAMES) for ps in by_n.values()):
        return "all four parameters at every sample size"
    groups: dict[tuple[str, ...], list[int]] = {}
    for n, ps in by_n.items():
        if ps or not skip_empty:
            groups.setdefault(tuple(p for p in gk.PARAM_NAMES if p in ps), []).append(n)
    clauses = []
    for ps, sizes in groups.items():
        sizes_text = [f"{n:,}" for n in sizes]
        listed = sizes_text[0] if len(sizes) == 1 else ", ".join(sizes_text[:-1]) + " and " + sizes_text[-1]
        clauses.append(f"{param_phrase(ps)} at *n* = {listed}")
    if len(clauses) == 1:
        return clauses[0]
    if len(clauses) == 2:
        return f"{clauses[0]}, and {clauses[1]}"
    return "; ".join(clauses[:-1]) + "; and " + clauses[-1]


def max_estimate_difference(errors, method: str, other: str) -> float:
    """Largest absolute difference between the estimates of ``method`` and ``other`` over every fitted
    sample and parameter of a :func:`vaebook.gk.recovery_errors` table (the same samples are fitted by
    every method, so errors of the same (n, seed) differ exactly as the estimates do)."""
    cols = list(gk.PARAM_NAMES)
    a = errors[errors.method == method].set_index(["n", "seed"])[cols]
    b = errors[errors.method == other].set_index(["n", "seed"])[cols]
    if a.empty or b.empty:
        raise ValueError(f"the recovery table has no fits for {method!r} or {other!r}; its methods are "
                         f"{sorted(errors.method.unique())}")
    return float((a - b.loc[a.index]).abs().to_numpy().max())
