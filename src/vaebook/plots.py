"""Figures for the book: image grids, latent scatter plots, and GIF animations over training."""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

DIGIT_COLORS = plt.get_cmap("tab10")

# The book's text column: 612 px in a 1200 px wide window (sphinx-book-theme 1.3, measured in Chromium by
# vaebook.browser_check). Figures are drawn at most COLUMN_WIDTH inches wide at DPI, so they are shown at
# their own size and 9-pt text stays 9 pt (12 px); a wider figure would be shrunk, text and all.
DPI = 100
COLUMN_WIDTH = 6.0  # inches: 600 px
BOOK_STYLE = {
    "figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (COLUMN_WIDTH, 3.6),
    "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "figure.titlesize": 10.5,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9, "legend.title_fontsize": 9,
}


def use_book_style() -> None:
    """Set matplotlib up for the book's column (:data:`BOOK_STYLE`); the chapters' first cell calls it."""
    plt.rcParams.update(BOOK_STYLE)  # pyplot is imported above, so the inline backend's defaults come first


def figure(nrows: int = 1, ncols: int = 1, height: float = 3.6, width: float = COLUMN_WIDTH, **kwargs):
    """``plt.subplots`` for the column: ``width`` at most :data:`COLUMN_WIDTH` inches."""
    if not 0 < width <= COLUMN_WIDTH:
        raise ValueError(f"width must be in (0, {COLUMN_WIDTH}] inches (the text column), got {width}")
    return plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)


def _images_np(images: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim == 4:
        arr = arr[:, 0]
    return arr


def grid_array(images: torch.Tensor | np.ndarray, nrow: int, pad: int = 2) -> np.ndarray:
    """Tile (N, [1,] H, W) images into one 2-D array, ``nrow`` images per row."""
    arr = _images_np(images)
    n, h, w = arr.shape
    ncol = nrow
    nrows = int(np.ceil(n / ncol))
    out = np.zeros((nrows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)  # white once inverted
    for i in range(n):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = arr[i]
    return out


def image_grid(images: torch.Tensor | np.ndarray, nrow: int = 10, ax=None, title: str | None = None):
    """Show images as one grid (white gaps, black digits on white background as in print)."""
    if ax is None:
        n = len(images)
        rows = int(np.ceil(n / nrow))
        width = min(nrow * 0.5 + 0.2, COLUMN_WIDTH)
        _, ax = plt.subplots(figsize=(width, rows * (width - 0.2) / nrow + 0.4))
    ax.imshow(1 - grid_array(images, nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def project_2d(z: torch.Tensor | np.ndarray, seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """2-D view of latent codes and its axis labels: as is for d <= 2, else the first two principal
    components, each labelled with its own share of the variance."""
    from sklearn.decomposition import PCA

    z = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    if z.shape[1] == 1:
        return np.c_[z[:, 0], np.zeros(len(z))], ("$z_1$", "")
    if z.shape[1] == 2:
        return z, ("$z_1$", "$z_2$")
    pca = PCA(n_components=2, random_state=seed).fit(z)
    share = pca.explained_variance_ratio_
    return pca.transform(z), (f"PC 1 ({share[0]:.0%} of variance)", f"PC 2 ({share[1]:.0%})")


def latent_scatter(z, labels, ax=None, title: str | None = None, s: float = 3, legend: bool = True,
                   limits: tuple[float, float, float, float] | None = None):
    """Scatter of latent codes coloured by digit (PCA for more than two dimensions)."""
    xy, (xlabel, ylabel) = project_2d(z)
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.2))
    for d in np.unique(labels):
        m = labels == d
        ax.scatter(xy[m, 0], xy[m, 1], s=s, color=DIGIT_COLORS(int(d) % 10), label=str(d), alpha=0.7,
                   linewidths=0, rasterized=True)
    if limits is not None:
        ax.set_xlim(limits[0], limits[1])
        ax.set_ylim(limits[2], limits[3])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(markerscale=4, fontsize=9, ncol=2, frameon=False, loc="best", handletextpad=0.1,
                  columnspacing=0.5)
    return ax


def figure_to_array(fig) -> np.ndarray:
    fig.canvas.draw()
    arr = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return arr


def gif_bytes(frames: Sequence[np.ndarray], duration_ms: int = 400, loop: int = 0) -> bytes:
    """Encode RGB (H, W, 3) uint8 frames, or grey (H, W) floats in [0, 1], as an animated GIF."""
    images = []
    for f in frames:
        if f.dtype != np.uint8:
            f = (np.clip(f, 0, 1) * 255).astype(np.uint8)
        images.append(Image.fromarray(f))
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms,
                   loop=loop, optimize=False)
    return buf.getvalue()


def latent_gif(codes_per_epoch: Sequence[torch.Tensor], labels, title: str = "", duration_ms: int = 500) -> bytes:
    """One frame per epoch of the latent codes coloured by digit, on fixed axes for the whole run."""
    projected = [project_2d(z)[0] for z in codes_per_epoch]
    allxy = np.concatenate(projected)
    lo, hi = np.percentile(allxy, 0.5, axis=0), np.percentile(allxy, 99.5, axis=0)
    margin = 0.05 * (hi - lo)
    limits = (lo[0] - margin[0], hi[0] + margin[0], lo[1] - margin[1], hi[1] + margin[1])
    frames = []
    for epoch, z in enumerate(codes_per_epoch, start=1):
        fig, ax = plt.subplots(figsize=(4.4, 4.2), dpi=DPI)
        latent_scatter(z, labels, ax=ax, limits=limits,
                       title=f"{title} epoch {epoch}".strip())
        fig.tight_layout()
        frames.append(figure_to_array(fig))
    return gif_bytes(frames, duration_ms)


def reconstruction_gif(recons_per_epoch: Sequence[torch.Tensor], originals: torch.Tensor, nrow: int = 8,
                       scale: int = 2, duration_ms: int = 500) -> bytes:
    """Frames of [originals; reconstructions at epoch e], enlarged ``scale`` times."""
    top = grid_array(originals, nrow)
    frames = []
    for recon in recons_per_epoch:
        frame = 1 - np.concatenate([top, grid_array(recon, nrow)], axis=0)
        frames.append(np.kron(frame, np.ones((scale, scale), dtype=np.float32)))
    return gif_bytes(frames, duration_ms)


def show_gif(payload: bytes):
    """Display GIF bytes in a notebook (embedded, so the built book needs no extra files)."""
    from IPython.display import Image as IPyImage

    return IPyImage(data=payload, format="gif")
