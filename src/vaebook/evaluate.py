"""Per-epoch evaluation hooks for :func:`vaebook.train.fit` and summary tables of trained VAEs."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from .metrics import mse, psnr, ssim


def reconstruction_tracker(sets: Mapping[str, torch.Tensor], elbo: bool = True
                           ) -> Callable[[nn.Module, int], dict[str, float]]:
    """An ``epoch_end`` hook: MSE, PSNR, SSIM of mean reconstructions (and the ELBO) on each named set."""

    def epoch_end(model: nn.Module, epoch: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for split, x in sets.items():
            x_hat = model.reconstruct(x)
            out[f"{split}_mse"] = mse(x, x_hat).mean().item()
            out[f"{split}_psnr"] = psnr(x, x_hat).mean().item()
            out[f"{split}_ssim"] = ssim(x, x_hat).mean().item()
            if elbo:
                out[f"{split}_neg_elbo"] = model.evaluate(x)["neg_elbo"]
        return out

    return epoch_end


def latent_snapshot(codes_x: torch.Tensor, recon_x: torch.Tensor | None = None
                    ) -> Callable[[nn.Module, int], dict[str, torch.Tensor]]:
    """A ``snapshot`` hook: latent means of ``codes_x`` and reconstructions of ``recon_x`` each epoch."""

    def snapshot(model: nn.Module, epoch: int) -> dict[str, torch.Tensor]:
        out = {"codes": model.latent_means(codes_x).cpu()}
        if recon_x is not None:
            out["recons"] = model.reconstruct(recon_x).cpu()
        return out

    return snapshot


def metrics_long(histories: Mapping[object, pd.DataFrame], by: str = "latent size") -> pd.DataFrame:
    """Stack per-epoch histories into long form: one row per (model, epoch, split, metric)."""
    rows = []
    for key, hist in histories.items():
        for col in hist.columns:
            split, _, metric = col.partition("_")
            if split in ("train", "test", "val") and metric:
                for epoch, value in zip(hist["epoch"], hist[col]):
                    rows.append({by: key, "epoch": int(epoch), "split": split, "metric": metric,
                                 "value": float(value)})
    return pd.DataFrame(rows)


# --- one batched-apply helper, one decode helper, one latent-separation measure -----------------------

@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 1000, *,
            module: nn.Module | None = None, device: torch.device | str | None = None,
            width: int | None = None) -> torch.Tensor:
    """``fn`` applied to ``x`` in batches of ``batch_size`` on ``device`` (default: ``module``'s device, else
    ``x``'s), without gradients; the results concatenated on the CPU.

    With ``module``, it is put in eval mode for the call (no dropout, no augmentation) and its mode is
    restored afterwards, also on error. ``width`` gives the shape (0, width) of the result for empty ``x``.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if device is None:
        device = next(module.parameters()).device if module is not None else x.device
    was_training = module.training if module is not None else None
    if module is not None:
        module.eval()
    try:
        out = [fn(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    finally:
        if module is not None:
            module.train(was_training)
    if out:
        return torch.cat(out)
    return torch.empty(0, width) if width is not None else torch.empty(0)


def decode(model: nn.Module, z: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Decoder means (pixel probabilities) of codes ``z``, computed in batches on the model's device and
    returned on the CPU; the model's mode is left as it was."""
    return batched(lambda b: model.decode(b.float()), z, batch_size, module=model)


SEPARATION_PROTOCOL = ("k-nearest-neighbour accuracy (k = 5, Euclidean) by stratified 5-fold "
                       "cross-validation, shuffled with the seed; silhouette of the digit labels (Euclidean) "
                       "on a seeded subset of at most 5,000 codes")


def latent_separation(codes: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, *, k: int = 5,
                      folds: int = 5, seed: int = 0, silhouette_max: int = 5000) -> dict[str, float]:
    """How well digits separate in a latent space, as two numbers (the book's one protocol, stated in
    :data:`SEPARATION_PROTOCOL`):

    * ``knn_accuracy``: accuracy of a k-nearest-neighbour classifier on the codes, by stratified
      ``folds``-fold cross-validation; chance is about 1 / (number of classes);
    * ``silhouette``: mean silhouette coefficient with the labels as clusters (Rousseeuw 1987), in [−1, 1];
      1 = tight, far-apart clusters, 0 = overlapping.
    """
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    z = codes.detach().cpu().double().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes, float)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if z.ndim != 2 or len(z) != len(y):
        raise ValueError(f"latent_separation needs an (N, d) code matrix and N labels, got {z.shape} and {y.shape}")
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) < 2 or counts.min() < folds:
        raise ValueError(f"latent_separation needs at least two classes with >= {folds} codes each "
                         f"(the folds), got class sizes {sorted(counts.tolist())}")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    knn = cross_val_score(KNeighborsClassifier(n_neighbors=k), z, y, cv=cv).mean()
    sil = silhouette_score(z, y, sample_size=min(silhouette_max, len(z)), random_state=seed)
    return {"knn_accuracy": float(knn), "silhouette": float(sil)}
