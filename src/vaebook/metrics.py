"""Image reconstruction metrics per image: MSE, PSNR and SSIM.

Images are batches in [0, 1] shaped (N, 1, 28, 28) or (N, 28, 28); every function returns a tensor of
shape (N,), one value per image, so callers can average per digit, per set, or however they need.

SSIM definition used in this book: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, data range 1, averaged over the pixels whose window lies wholly inside the image
(a 5-pixel border is left out). That is the reference code's and scikit-image's definition. torchmetrics
averages its map over the whole reflect-padded image instead, which on 28x28 digits differs by up to 0.3,
so we take torchmetrics' full SSIM map and average its interior ourselves.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_BORDER = (SSIM_WINDOW - 1) // 2


def _as_nchw(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(f"{name} must be shaped (N, 28, 28) or (N, 1, H, W), got {tuple(x.shape)}")
    return x.float()


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _as_nchw(x, "x"), _as_nchw(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pixels of each image."""
    x, y = _pair(x, y)
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, 10 log10(range^2 / MSE), in dB (inf for identical images)."""
    return 10.0 * torch.log10(data_range ** 2 / mse(x, y))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, batch_size: int = 2048) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004; the interior average, as scikit-image)."""
    x, y = _pair(x, y)
    if min(x.shape[-2:]) <= 2 * _BORDER:
        raise ValueError(f"images must be larger than {2 * _BORDER} pixels per side for SSIM")
    out = []
    for i in range(0, len(x), batch_size):
        _, full = structural_similarity_index_measure(
            x[i:i + batch_size], y[i:i + batch_size], gaussian_kernel=True, sigma=SSIM_SIGMA,
            kernel_size=SSIM_WINDOW, data_range=data_range, reduction="none", return_full_image=True)
        out.append(full[..., _BORDER:-_BORDER, _BORDER:-_BORDER].mean(dim=(1, 2, 3)))
    return torch.cat(out) if out else torch.empty(0)


def reconstruction_metrics(x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, float]:
    """Mean MSE, PSNR (mean of per-image dB) and SSIM of a batch of reconstructions."""
    return {"mse": mse(x, x_hat).mean().item(), "psnr": psnr(x, x_hat).mean().item(),
            "ssim": ssim(x, x_hat).mean().item()}


# =====================================================================================================
# Sample-quality metrics for generative models (GAN-vs-VAE and flow-VAE chapters)
# =====================================================================================================
#
# Inception-v3 weights cannot be downloaded here, and Inception features (ImageNet photographs) are a
# poor fit for 28x28 digits anyway. Every measure below therefore works in the feature space of a small
# MNIST classifier trained by this library. The Fréchet distance in that space is called
# "FID (MNIST classifier features)" in the book: it is NOT comparable with Inception FID numbers from
# papers, and only means something next to calibration baselines (real vs real, real vs corrupted).

import math as _math  # noqa: E402

import numpy as _np  # noqa: E402
import torch.nn.functional as _F  # noqa: E402
from torch import nn as _nn  # noqa: E402

CLASSIFIER_NAME = "mnist-classifier"


class MNISTClassifier(_nn.Module):
    """A small CNN digit classifier whose penultimate layer is the feature space of the quality metrics.

    28x28x1 -> Conv 32, 3x3, stride 2, ReLU -> 14x14x32 -> Conv 64, 3x3, stride 2, ReLU -> 7x7x64 ->
    flatten 3136 -> Dense 128, ReLU (the features, F = 128) -> Dropout 0.3 -> Dense 10 (logits).
    Strided convolutions instead of convolution + max-pooling cost a third of the arithmetic, which
    matters on a CPU. Training shifts each image by a random offset of up to ``augment_pixels`` pixels
    (:func:`vaebook.data.random_translate`). Measured on this book's machine: a constant learning rate
    without shifts reaches 98.84% test accuracy in 10 epochs; the one-cycle schedule of
    :func:`get_classifier` gives 99.06% in 6, and adding the shifts 99.22% in 6 (99.11% in 5).
    """

    feature_size = 128

    def __init__(self, augment_pixels: float = 2.0):
        super().__init__()
        if not augment_pixels >= 0:
            raise ValueError(f"augment_pixels must be >= 0, got {augment_pixels!r}")
        self.augment_pixels = float(augment_pixels)
        self.body = _nn.Sequential(
            _nn.Conv2d(1, 32, 3, stride=2, padding=1), _nn.ReLU(),
            _nn.Conv2d(32, 64, 3, stride=2, padding=1), _nn.ReLU(),
            _nn.Flatten(), _nn.Linear(7 * 7 * 64, self.feature_size), _nn.ReLU())
        self.head = _nn.Sequential(_nn.Dropout(0.3), _nn.Linear(self.feature_size, 10))

    def cache_key(self) -> dict:
        return {"class": type(self).__name__, "version": 3, "features": self.feature_size,
                "augment_pixels": self.augment_pixels}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations, (N, 128)."""
        return self.body(_as_nchw(x, "x"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    # the training engine's contract (see vaebook.train)
    def training_loss(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        if y is None:
            raise ValueError("MNISTClassifier.training_loss needs labels y; pass train_y to fit")
        if self.training and self.augment_pixels > 0:
            from .data import random_translate
            x = random_translate(_as_nchw(x, "x"), self.augment_pixels)
        logits = self(x)
        loss = _F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return loss, {"loss": loss.item(), "accuracy": acc.item()}


def _model_device(model: _nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _batched_eval(classifier: MNISTClassifier, fn, x: torch.Tensor, batch_size: int, width: int) -> torch.Tensor:
    """``fn(batch)`` over ``x`` in eval mode (no dropout, no augmentation), as one (N, width) CPU tensor;
    the classifier's train/eval mode is restored afterwards."""
    x = _as_nchw(x, "x")
    was_training = classifier.training
    classifier.eval()
    dev = _model_device(classifier)
    try:
        out = [fn(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]
    finally:
        classifier.train(was_training)
    return torch.cat(out) if out else torch.empty(0, width)


def classifier_features(classifier: MNISTClassifier, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate features of images ``x`` ((N, 1, 28, 28) in [0, 1]), as a (N, F) CPU tensor."""
    return _batched_eval(classifier, classifier.features, x, batch_size, classifier.feature_size)


def _classifier_probs(classifier: MNISTClassifier, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    return _batched_eval(classifier, lambda b: torch.softmax(classifier(b), 1), x, batch_size, 10)


def classifier_accuracy(classifier: MNISTClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of images whose most probable class is the label."""
    return (_classifier_probs(classifier, x).argmax(1) == y.cpu()).float().mean().item()


def get_classifier(epochs: int = 5, train_subset: int | None = None, seed: int = 0,
                   device: str = "auto", batch_size: int = 128, lr: float = 3e-3
                   ) -> tuple[MNISTClassifier, float]:
    """The book's MNIST classifier, trained once through the load-or-train cache; and its test accuracy.

    Trained with Adam on cross-entropy over randomly shifted MNIST training images (all 60,000, or a
    seeded subset of ``train_subset``), the learning rate following a one-cycle schedule that peaks at
    ``lr``; the accuracy is measured on all 10,000 test images. Chapters that pass the same
    arguments share one checkpoint (name ``"mnist-classifier"``), so their metrics use the same features.
    """
    from .data import mnist_splits
    from .train import fit

    splits = mnist_splits(train_subset=train_subset, seed=seed)
    train, test = splits["train"], splits["test"]
    result = fit(MNISTClassifier, train.x, train.y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                 device=device, name=CLASSIFIER_NAME, lr_schedule="onecycle",
                 data_key={"set": train.description, "subset": train_subset, "n": len(train)})
    classifier = result.model.eval()
    return classifier, classifier_accuracy(classifier, test.x, test.y)


def _as_feature_matrix(f, name: str) -> _np.ndarray:
    arr = f.detach().cpu().double().numpy() if isinstance(f, torch.Tensor) else _np.asarray(f, dtype=_np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, F) feature matrix, got shape {arr.shape}")
    if len(arr) < 2:
        raise ValueError(f"{name} needs at least 2 rows to estimate a covariance, got {len(arr)}")
    if not _np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def frechet_distance_gaussians(mu1, cov1, mu2, cov2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2):

        d^2 = |mu1 - mu2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1^{1/2} cov2 cov1^{1/2})^{1/2}).

    The trace term is computed from the eigenvalues of the symmetric PSD matrix
    cov1^{1/2} cov2 cov1^{1/2} (float64, tiny negative round-off clipped to 0), which avoids the complex
    round-off of ``scipy.linalg.sqrtm(cov1 @ cov2)``; both give tr((cov1 cov2)^{1/2}).
    """
    mu1, mu2 = _np.asarray(mu1, _np.float64), _np.asarray(mu2, _np.float64)
    cov1, cov2 = _np.asarray(cov1, _np.float64), _np.asarray(cov2, _np.float64)
    cov1, cov2 = (cov1 + cov1.T) / 2, (cov2 + cov2.T) / 2
    w, v = _np.linalg.eigh(cov1)
    sqrt1 = (v * _np.sqrt(_np.clip(w, 0, None))) @ v.T
    middle = sqrt1 @ cov2 @ sqrt1
    eig = _np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_sqrt = _np.sqrt(_np.clip(eig, 0, None)).sum()
    d2 = float(((mu1 - mu2) ** 2).sum() + _np.trace(cov1) + _np.trace(cov2) - 2 * tr_sqrt)
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
    return frechet_distance_gaussians(a.mean(0), _np.cov(a, rowvar=False), b.mean(0), _np.cov(b, rowvar=False))


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
    probs = _classifier_probs(classifier, x)
    if len(probs) == 0:
        raise ValueError("class_coverage needs at least one image")
    hist = _np.bincount(probs.argmax(1).numpy(), minlength=10).astype(_np.float64) / len(probs)
    nz = hist[hist > 0]
    return {"hist": hist, "entropy": float(-(nz * _np.log(nz)).sum()) + 0.0,  # + 0.0: no "-0.0" for one class
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
    x = _as_nchw(x, "x")
    radius = max(1, int(_math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    channels = x.shape[1]
    kx = g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    x = _F.conv2d(x, kx, padding=(0, radius), groups=channels)
    return _F.conv2d(x, ky, padding=(radius, 0), groups=channels)


def add_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images plus N(0, std^2) pixel noise, clipped back to [0, 1], for calibration."""
    x = _as_nchw(x, "x")
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    return (x + std * noise).clamp(0, 1)
