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


def as_nchw(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(f"{name} must be shaped (N, 28, 28) or (N, 1, H, W), got {tuple(x.shape)}")
    return x.float()


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = as_nchw(x, "x"), as_nchw(y, "y")
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
