"""What a generative model's samples say about it (the GAN-versus-VAE chapter): per-epoch hooks that score
samples while a model trains, the table of sample-quality numbers, walks through a latent space, the
nearest-neighbour check for memorised training images, and the verdicts the chapter prints.

Every verdict's threshold is a named module constant with its reason beside it, and every verdict
function takes it as an argument, so a reader can see (and a test can check) where the line is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from .classifier import MNISTClassifier, classifier_features
from .evaluate import batched, decode
from .quality import add_noise, frechet_distance, gaussian_blur

# Samples whose median distance to their nearest training image is at most this fraction of the same
# median for unseen real digits are flagged for inspection. A model that generalises draws digits about as
# far from its training set as new real digits are (ratio near 1, or above 1 for noisy or odd samples);
# copies and near-copies sit far closer. The margin below 1 absorbs the sampling noise of two medians
# and the smoothness of averaged samples (a blurred digit is closer in pixel distance to many training
# digits than a sharp one), so a ratio just under 1 is not read as copying.
COPYING_RATIO = 0.8

# Mode-collapse diagnostic: samples are called collapsed when they hardly differ from one another or are
# nearly blank. Spread is the per-pixel standard deviation across samples, averaged over pixels: about
# 0.19 for real MNIST digits, 0 for identical images; 0.02 is a tenth of the real value. Ink is the mean
# pixel intensity (about 0.13 for real digits); a generator whose outputs went black after its sigmoid
# saturated draws under a fifth of the real ink.
MIN_SAMPLE_SPREAD = 0.02
MIN_INK_RATIO = 0.2

# Class-coverage target: every digit between half and one and a half times its even share (10%) of the
# samples. Real MNIST test digits range from 8.9% (fives) to 11.4% (ones), well inside.
COVERAGE_RANGE = (0.05, 0.15)

# Two scores closer than this are a tie (the quality numbers are printed with three decimals).
TIE_TOLERANCE = 1e-3

EpochEnd = Callable[[nn.Module, int], dict[str, float]]
Snapshot = Callable[[nn.Module, int], dict[str, torch.Tensor]]


def _check_count(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# --- hooks for vaebook.train.fit (through a Job's hooks factory) --------------------------------------

def fid_tracker(classifier: MNISTClassifier, reference: torch.Tensor, n_samples: int = 500,
                seed: int = 0) -> EpochEnd:
    """An ``epoch_end`` hook: the Fréchet distance in classifier features between ``n_samples`` seeded
    samples of the model (``model.sample(n, generator=...)``, the same noise every epoch) and the images
    ``reference``, logged as ``fid_<n_samples>``. The reference features are computed once, here."""
    _check_count("n_samples", n_samples, 2)
    if len(reference) < 2:
        raise ValueError(f"reference needs at least 2 images to fit a Gaussian, got {len(reference)}")
    reference_features = classifier_features(classifier, reference)
    key = f"fid_{n_samples}"

    def epoch_end(model: nn.Module, epoch: int) -> dict[str, float]:
        fake = model.sample(n_samples, generator=torch.Generator().manual_seed(seed))
        return {key: frechet_distance(reference_features, classifier_features(classifier, fake))}

    return epoch_end


def samples_snapshot(n: int = 64, seed: int = 0) -> Snapshot:
    """A ``snapshot`` hook: ``n`` samples from the same seeded noise after every epoch (key ``samples``),
    so the grids and animations of a model's samples show one set of noise vectors learning."""
    _check_count("n", n, 1)

    def snapshot(model: nn.Module, epoch: int) -> dict[str, torch.Tensor]:
        return {"samples": model.sample(n, generator=torch.Generator().manual_seed(seed)).cpu()}

    return snapshot


# --- calibration and the quality table ------------------------------------------------------------------

def calibration_sets(real: torch.Tensor, noise_seed: int = 1) -> dict[str, torch.Tensor]:
    """Real images, untouched and spoiled by defects of known size, to calibrate the quality scores: pixel
    noise of standard deviation 0.1 and 0.3 (one generator seeded with ``noise_seed``, drawn in that
    order) and Gaussian blur of 0.7 and 1.5 pixels."""
    noise = torch.Generator().manual_seed(noise_seed)
    return {"real (training images)": real,
            "real + noise σ=0.1": add_noise(real, 0.1, noise),
            "real + noise σ=0.3": add_noise(real, 0.3, noise),
            "real, blurred σ=0.7": gaussian_blur(real, 0.7),
            "real, blurred σ=1.5": gaussian_blur(real, 1.5)}


QUALITY_COLUMNS = ("FID (MNIST classifier features)", "precision", "recall", "coverage entropy (nats)",
                   "rarest digit share", "commonest digit share", "classifier confidence")


def quality_table(rows: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per scored image set, from :func:`vaebook.quality.sample_quality` results keyed by name;
    the columns are :data:`QUALITY_COLUMNS` (digit shares from the class histogram)."""
    table = {}
    for name, q in rows.items():
        missing = {"fid", "precision", "recall", "coverage_entropy", "class_hist", "confidence"} - set(q)
        if missing:
            raise ValueError(f"quality row {name!r} lacks {sorted(missing)}; pass sample_quality results")
        hist = np.asarray(q["class_hist"])
        table[name] = dict(zip(QUALITY_COLUMNS, (q["fid"], q["precision"], q["recall"], q["coverage_entropy"],
                                                 hist.min(), hist.max(), q["confidence"])))
    return pd.DataFrame(table, index=list(QUALITY_COLUMNS)).T


# --- walks through a latent space -----------------------------------------------------------------------

def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from ``a`` (t = 0) to ``b`` (t = 1) along the great circle through them,

        slerp(a, b, t) = (sin((1 - t) ω) a + sin(t ω) b) / sin ω,   ω = angle between a and b.

    For unit vectors every point has norm 1 (a straight line between two long random vectors passes
    through points of smaller norm). ``t`` is a number (result (d,)) or a 1-D tensor (result (len(t), d)).
    When ``a`` and ``b`` are (anti)parallel, sin ω vanishes and the great circle is the straight line or
    not unique; the result is then linear interpolation, the formula's limit as ω → 0, instead of NaN.
    """
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"slerp needs two vectors of the same length, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a.norm() == 0 or b.norm() == 0:
        raise ValueError("slerp needs non-zero vectors (the angle to a zero vector is undefined)")
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    if t.ndim > 1:
        raise ValueError(f"t must be a number or a 1-D tensor, got shape {tuple(t.shape)}")
    t = t[:, None] if t.ndim == 1 else t
    omega = torch.arccos(torch.clamp((a / a.norm()) @ (b / b.norm()), -1, 1))
    if torch.sin(omega) < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def latent_walks(model: nn.Module, ends: torch.Tensor, steps: int = 10, spherical: bool = False) -> torch.Tensor:
    """Decoded paths between pairs of latent points: ``ends`` is (rows, 2, d); each row becomes ``steps``
    images from ``ends[i, 0]`` to ``ends[i, 1]`` (straight line, or :func:`slerp` with ``spherical``),
    returned as (rows * steps, 1, 28, 28) on the CPU, row after row."""
    if ends.ndim != 3 or ends.shape[1] != 2:
        raise ValueError(f"ends must be (rows, 2, latent size), got shape {tuple(ends.shape)}")
    _check_count("steps", steps, 2)
    t = torch.linspace(0, 1, steps)
    ends = ends.cpu().float()
    paths = [slerp(a, b, t) if spherical else (1 - t[:, None]) * a + t[:, None] * b for a, b in ends]
    return decode(model, torch.cat(paths))


# --- memorisation: nearest training images ---------------------------------------------------------------

def nearest(queries: torch.Tensor, pool: torch.Tensor, batch_size: int = 500,
            device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For every query image, the Euclidean pixel distance to its nearest image in ``pool`` and that
    image's index, computed in batches of ``batch_size`` queries on ``device`` (default: the pool's);
    both returned on the CPU (float32 distances, int64 indices). ``torch.cdist`` computes the distances
    through a matrix product (fast on large pools): for 28x28 images in [0, 1] they are accurate to about
    1e-5 at typical distances and about 0.01 near 0, so an exact copy shows a distance below 0.01."""
    if len(pool) == 0:
        raise ValueError("nearest needs a non-empty pool of images")
    if queries.shape[1:].numel() != pool.shape[1:].numel():
        raise ValueError(f"queries and pool images differ in size: {tuple(queries.shape[1:])} and "
                         f"{tuple(pool.shape[1:])}")
    pool_flat = pool.flatten(1).float().to(device if device is not None else pool.device)

    def best(chunk: torch.Tensor) -> torch.Tensor:
        found = torch.cdist(chunk.flatten(1).float(), pool_flat).min(1)
        # one tensor for batched(): float64 holds float32 distances and integer indices below 2^53 exactly
        return torch.stack([found.values.double(), found.indices.double()], 1)

    out = batched(best, queries, batch_size, device=pool_flat.device, width=2)
    return out[:, 0].float(), out[:, 1].long()


@dataclass(frozen=True)
class Memorisation:
    """Nearest-training-image distances of a model's samples and of unseen real digits (same pool)."""

    pool_size: int
    sample_distances: torch.Tensor   # (n_samples,)
    real_distances: torch.Tensor     # (n_real,)
    neighbours: torch.Tensor         # index in the pool of each sample's nearest training image

    @property
    def ratio(self) -> float:
        """Median sample distance over median real-digit distance: about 1 or more without copying."""
        return self.sample_distances.median().item() / self.real_distances.median().item()

    def row(self) -> dict[str, float]:
        """The chapter's table row: pool size, both medians, and the share of samples closer to the
        training set than the closest 1% of real test digits."""
        return {"training images searched": self.pool_size,
                "median distance, samples": self.sample_distances.median().item(),
                "median distance, real test digits": self.real_distances.median().item(),
                "samples closer than the 1% closest test digit":
                    (self.sample_distances < self.real_distances.quantile(0.01)).float().mean().item()}


def memorisation(samples: torch.Tensor, real: torch.Tensor, pool: torch.Tensor, *, batch_size: int = 500,
                 device: torch.device | str | None = None) -> Memorisation:
    """Distances from ``samples`` and from unseen ``real`` images to their nearest image in ``pool`` (the
    images the model was trained on), for :func:`copying_verdict`."""
    if len(samples) == 0 or len(real) == 0:
        raise ValueError(f"memorisation needs samples and real images, got {len(samples)} and {len(real)}")
    d_fake, idx = nearest(samples, pool, batch_size, device)
    d_real, _ = nearest(real, pool, batch_size, device)
    return Memorisation(len(pool), d_fake, d_real, idx)


# --- verdicts -------------------------------------------------------------------------------------------

def copying_verdict(ratio: float, threshold: float = COPYING_RATIO) -> str:
    """"no sign of copying" when samples lie more than ``threshold`` times as far from their nearest
    training image as real test digits do (:attr:`Memorisation.ratio`); else a call to inspect them.
    See :data:`COPYING_RATIO` for why the line is below 1."""
    if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and ratio >= 0):
        raise ValueError(f"ratio must be a finite number >= 0, got {ratio!r}")
    return "no sign of copying" if ratio > threshold else "closer than new real digits: inspect for copying"


def collapse_check(samples: torch.Tensor, real: torch.Tensor, min_spread: float = MIN_SAMPLE_SPREAD,
                   min_ink_ratio: float = MIN_INK_RATIO) -> dict:
    """Whether samples collapsed to near-identical or nearly blank images.

    Returns ``ink`` and ``real_ink`` (mean pixel intensity of the samples and of the real images),
    ``spread`` (per-pixel standard deviation across samples, averaged over pixels), ``collapsed``
    (spread < ``min_spread`` or ink < ``min_ink_ratio`` · real ink; reasons at :data:`MIN_SAMPLE_SPREAD`)
    and ``verdict`` (a phrase for the page).
    """
    if len(samples) < 2 or len(real) == 0:
        raise ValueError(f"collapse_check needs at least 2 samples and 1 real image, got {len(samples)} and "
                         f"{len(real)}")
    ink, real_ink = samples.mean().item(), real.mean().item()
    spread = samples.std(0).mean().item()
    collapsed = spread < min_spread or ink < min_ink_ratio * real_ink
    return {"ink": ink, "real_ink": real_ink, "spread": spread, "collapsed": collapsed,
            "verdict": "collapsed (near-identical or blank samples)" if collapsed else "not collapsed"}


def coverage_met(class_hist, low: float = COVERAGE_RANGE[0], high: float = COVERAGE_RANGE[1]) -> bool:
    """Whether every class's share of the samples lies in [``low``, ``high``] (see :data:`COVERAGE_RANGE`)."""
    hist = np.asarray(class_hist, dtype=np.float64)
    if hist.ndim != 1 or len(hist) == 0 or not np.isfinite(hist).all() or abs(hist.sum() - 1) > 1e-6:
        raise ValueError(f"class_hist must be a 1-D histogram of shares summing to 1, got {class_hist!r}")
    return bool(((hist >= low) & (hist <= high)).all())


def leader(scores: Mapping[str, float], higher_is_better: bool = True,
           tie_tolerance: float = TIE_TOLERANCE) -> str:
    """The name with the best score, or "tie" when the best two are within ``tie_tolerance``."""
    if len(scores) < 2:
        raise ValueError(f"leader needs at least two scores to compare, got {dict(scores)!r}")
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=higher_is_better)
    (best, first), (_, second) = ranked[0], ranked[1]
    return "tie" if abs(first - second) < tie_tolerance else best


def fid_standing(fid: float, calibration: Mapping[str, float]) -> str:
    """Where a Fréchet distance falls among calibration rows (name -> distance; lower is better): "worse
    than every calibration row", or how many rows it is worse than and which it is at least as good as."""
    if not calibration:
        raise ValueError("fid_standing needs at least one calibration row")
    worse_than = [k for k, v in calibration.items() if v < fid]
    if len(worse_than) == len(calibration):
        return "worse than every calibration row"
    as_good_as = [k for k, v in calibration.items() if v >= fid]
    return f"worse than {len(worse_than)} calibration row(s) and at least as good as: {', '.join(as_good_as)}"
