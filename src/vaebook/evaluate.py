"""Per-epoch evaluation hooks for :func:`vaebook.train.fit` and summary tables of trained VAEs."""

from __future__ import annotations

from typing import Callable, Mapping

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
