"""Per-epoch evaluation hooks for :func:`vaebook.train.fit` and summary tables of trained VAEs."""

from __future__ import annotations

import math
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


# --- how well the aggregate posterior fills the prior --------------------------------------------------

@torch.no_grad()
def aggregate_posterior_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                                    batch_size: int = 1000) -> torch.Tensor:
    r"""Log density at each row of ``z`` (M, d) of the aggregate posterior
    :math:`\bar q(z) = \frac1N \sum_i \mathcal N(z;\, \mu_i, \operatorname{diag}\sigma_i^2)` of N encoded
    images (``mu``, ``logvar``: (N, d)), in float64. The squared distances are expanded into matrix
    products, so memory is (batch, N), not (batch, N, d)."""
    mu, logvar = mu.detach().cpu().double(), logvar.detach().cpu().double()
    z = z.detach().cpu().double()
    if mu.shape != logvar.shape or mu.dim() != 2 or z.dim() != 2 or z.shape[1] != mu.shape[1]:
        raise ValueError(f"need z (M, d) and mu, logvar (N, d) with the same d, got {tuple(z.shape)}, "
                         f"{tuple(mu.shape)}, {tuple(logvar.shape)}")
    prec = torch.exp(-logvar)                                      # 1 / sigma^2
    const = -0.5 * ((mu * mu * prec).sum(1) + logvar.sum(1) + mu.shape[1] * math.log(2 * math.pi))
    out = []
    for zb in z.split(batch_size):
        quad = (zb * zb) @ prec.T - 2.0 * zb @ (mu * prec).T     # sum_j (z_j^2 - 2 z_j mu_ij) / sigma_ij^2
        out.append(torch.logsumexp(const - 0.5 * quad, dim=1) - math.log(len(mu)))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


@torch.no_grad()
def prior_coverage(mu: torch.Tensor, logvar: torch.Tensor, n_prior: int = 2000, seed: int = 0,
                   ratio: float = 0.1, active_threshold: float = 0.01) -> dict[str, float]:
    r"""How well the aggregate posterior :math:`\bar q(z)` of N encoded images (``mu``, ``logvar``: (N, d))
    fills the prior :math:`p(z) = \mathcal N(0, I_d)` that sampling draws from. Returns

    * ``kl_prior_aggregate``: :math:`\mathrm{KL}(p \,\|\, \bar q) = \mathbb E_{z\sim p}[\log p(z) - \log\bar q(z)]`
      in nats, by Monte Carlo over ``n_prior`` prior draws (seeded): large when the prior puts mass where
      no image's posterior does;
    * ``uncovered_fraction``: the fraction of those prior draws where :math:`\bar q(z) < \text{ratio}\cdot p(z)`;
    * ``marginal_kl``: :math:`\sum_j \mathrm{KL}(\mathcal N(m_j, v_j) \,\|\, \mathcal N(0, 1))` with
      :math:`m_j, v_j` the mean and variance of :math:`\bar q`'s j-th coordinate
      (:math:`v_j = \operatorname{Var}_i \mu_{ij} + \operatorname{mean}_i \sigma^2_{ij}`): only the
      per-dimension moments, blind to how the codes fill the space jointly;
    * ``active_dims``: the number of coordinates with :math:`\operatorname{Var}_i \mu_{ij}` above
      ``active_threshold`` (Burda et al. 2016's activity; an inactive coordinate ignores the image);
    * ``mean_posterior_sd``: the mean of :math:`\sigma_{ij}` over images and coordinates, how wide one
      image's posterior is against the prior's 1.

    With every posterior equal to the prior the first four are 0. The estimate of :math:`\bar q` is the mixture
    over these N images, so it is sparser, and the first two numbers larger, for a small N.
    """
    mu, logvar = mu.detach().cpu().double(), logvar.detach().cpu().double()
    if mu.dim() != 2 or mu.shape != logvar.shape or len(mu) < 2:
        raise ValueError(f"need mu and logvar of the same shape (N, d) with N >= 2, got {tuple(mu.shape)} "
                         f"and {tuple(logvar.shape)}")
    d = mu.shape[1]
    z = torch.randn(n_prior, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    log_p = -0.5 * (z * z).sum(1) - 0.5 * d * math.log(2 * math.pi)
    log_ratio = aggregate_posterior_log_density(z, mu, logvar) - log_p
    m = mu.mean(0)
    var_mu = mu.var(0, unbiased=False)
    v = var_mu + logvar.exp().mean(0)
    marginal_kl = 0.5 * (v + m * m - 1.0 - v.log()).sum()
    return {"kl_prior_aggregate": float(-log_ratio.mean()),
            "uncovered_fraction": float((log_ratio < math.log(ratio)).double().mean()),
            "marginal_kl": float(marginal_kl), "active_dims": int((var_mu > active_threshold).sum()),
            "mean_posterior_sd": float((0.5 * logvar).exp().mean())}
