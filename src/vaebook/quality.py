"""Sample-quality measures for generative models (GAN-vs-VAE and flow-VAE chapters).

Inception-v3 weights cannot be downloaded here, and Inception features (ImageNet photographs) are a
poor fit for 28x28 digits anyway. Every measure below therefore works in the feature space of a small
MNIST classifier trained by this library (:mod:`vaebook.classifier`). The Fréchet distance in that space
is called "FID (MNIST classifier features)" in the book: it is NOT comparable with Inception FID numbers
from papers, and only means something next to calibration baselines (real vs real, real vs corrupted).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .classifier import MNISTClassifier, classifier_features, classifier_probs
from .metrics import as_nchw

def _as_feature_matrix(f, name: str) -> np.ndarray:
    arr = f.detach().cpu().double().numpy() if isinstance(f, torch.Tensor) else np.asarray(f, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, F) feature matrix, got shape {arr.shape}")
    if len(arr) < 2:
        raise ValueError(f"{name} needs at least 2 rows to estimate a covariance, got {len(arr)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def frechet_distance_gaussians(mu1, cov1, mu2, cov2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2):

        d^2 = |mu1 - mu2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1^{1/2} cov2 cov1^{1/2})^{1/2}).

    The trace term is computed from the eigenvalues of the symmetric PSD matrix
    cov1^{1/2} cov2 cov1^{1/2} (float64, tiny negative round-off clipped to 0), which avoids the complex
    round-off of ``scipy.linalg.sqrtm(cov1 @ cov2)``; both give tr((cov1 cov2)^{1/2}).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    cov1, cov2 = (cov1 + cov1.T) / 2, (cov2 + cov2.T) / 2
    w, v = np.linalg.eigh(cov1)
    sqrt1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = sqrt1 @ cov2 @ sqrt1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    d2 = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)
    return max(d2, 0.0)


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017's FID formula).

    In this book the features are :class:`MNISTClassifier` features, so the number is an
    "FID (MNIST classifier features)", not Inception FID. Like FID it is biased upwards for small sets:
    compare numbers computed with the same sample sizes.
    """
    a, b = _as_feature_matrix(feats_a, "feats_a"), _as_feature_matrix(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def _kth_neighbour_radii(feats: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the row itself, distance 0, excluded)."""
    radii = []
    for i in range(0, len(feats), batch_size):
        d = torch.cdist(feats[i:i + batch_size], feats)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # value k+1 counts the point itself
    return torch.cat(radii)


def _inside_manifold(queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor,
                     batch_size: int) -> torch.Tensor:
    """For each query: is it within radius_j of some support point j?"""
    inside = []
    for i in range(0, len(queries), batch_size):
        d = torch.cdist(queries[i:i + batch_size], support)
        inside.append((d <= radii[None, :]).any(1))
    return torch.cat(inside)


def precision_recall(real_feats, fake_feats, k: int = 3, batch_size: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-nearest-neighbour manifolds.

    Each set's manifold is the union of balls around its points, each ball reaching that point's k-th
    nearest neighbour in the same set. Precision is the fraction of fake samples inside the real manifold
    (are samples realistic?); recall is the fraction of real samples inside the fake manifold (does the
    model cover the data?). The paper uses k = 3.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    real = torch.as_tensor(_as_feature_matrix(real_feats, "real_feats"))
    fake = torch.as_tensor(_as_feature_matrix(fake_feats, "fake_feats"))
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: {real.shape[1]} and {fake.shape[1]}")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"each set needs more than k = {k} points, got {len(real)} real and {len(fake)} fake")
    real_radii = _kth_neighbour_radii(real, k, batch_size)
    fake_radii = _kth_neighbour_radii(fake, k, batch_size)
    precision = _inside_manifold(fake, real, real_radii, batch_size).double().mean().item()
    recall = _inside_manifold(real, fake, fake_radii, batch_size).double().mean().item()
    return precision, recall


def class_coverage(classifier: MNISTClassifier, x: torch.Tensor) -> dict:
    """How the classifier labels a set of images: which digits, how evenly, how confidently.

    ``hist``: fraction of images per predicted digit (10 numbers summing to 1); ``entropy``: its Shannon
    entropy in nats (ln 10 = 2.303 for a perfectly even spread, 0 for one digit only); ``confidence``:
    mean of the largest softmax probability (near 1 for clear digits, lower for ambiguous scribbles).
    """
    probs = classifier_probs(classifier, x)
    if len(probs) == 0:
        raise ValueError("class_coverage needs at least one image")
    hist = np.bincount(probs.argmax(1).numpy(), minlength=10).astype(np.float64) / len(probs)
    nz = hist[hist > 0]
    return {"hist": hist, "entropy": float(-(nz * np.log(nz)).sum()) + 0.0,  # + 0.0: no "-0.0" for one class
            "confidence": probs.max(1).values.double().mean().item()}


def sample_quality(classifier: MNISTClassifier, real_x: torch.Tensor, fake_x: torch.Tensor, k: int = 3) -> dict:
    """All sample-quality numbers of ``fake_x`` against ``real_x`` in one dict.

    Keys: "fid" (Fréchet distance of MNIST-classifier features), "precision", "recall" (k-NN manifolds),
    "coverage_entropy" (nats), "confidence", "class_hist" (np.ndarray of 10 fractions).
    """
    real_f, fake_f = classifier_features(classifier, real_x), classifier_features(classifier, fake_x)
    precision, recall = precision_recall(real_f, fake_f, k=k)
    cov = class_coverage(classifier, fake_x)
    return {"fid": frechet_distance(real_f, fake_f), "precision": precision, "recall": recall,
            "coverage_entropy": cov["entropy"], "confidence": cov["confidence"], "class_hist": cov["hist"]}


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur images with a normalised Gaussian kernel (radius 3 sigma, zero padding), for calibration."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    x = as_nchw(x, "x")
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    channels = x.shape[1]
    kx = g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    x = F.conv2d(x, kx, padding=(0, radius), groups=channels)
    return F.conv2d(x, ky, padding=(radius, 0), groups=channels)


def add_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images plus N(0, std^2) pixel noise, clipped back to [0, 1], for calibration."""
    x = as_nchw(x, "x")
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    return (x + std * noise).clamp(0, 1)
