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
