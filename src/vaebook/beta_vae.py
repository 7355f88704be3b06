"""β-VAE analysis: the source study's effective β, per-digit quality, decoder-only reconstruction (the
amortisation gap), rate–distortion numbers, latent traversals and a numeric measure of digit separation.

The β-VAE (Higgins et al. 2017) minimises, per image, the negative ELBO with a weighted KL term,

    L_β(x) = E_q[-log p(x|z)] + β · KL(q(z|x) || p(z)),

with both terms **summed** (over pixels and latent dimensions), so β = 1 is the ELBO. The source study
(REFERENCE.md §3.4) wrote its loss with Keras-style *means* instead, which hides a β that changes with the
latent size d; :func:`source_effective_beta` derives it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import ParameterError
from .metrics import mse, psnr
from .models import IMAGE_PIXELS, gaussian_kl, reconstruction_nll

SOURCE_KL_COEFFICIENT = 0.0005   # the source's weight on mean_d(1 + log σ² − μ² − σ²)
SOURCE_BETA = "source"           # the name that selects the source's effective β in a β grid


# --- the source's loss and its effective β ----------------------------------------------------------

def source_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The source study's per-image loss, written as it wrote it (Keras):

        L_src = mean_i BCE(x_i, π_i) − 0.0005 · mean_j (1 + log σ_j² − μ_j² − σ_j²),

    with i over the 784 pixels and j over the d latent dimensions. Returns shape (N,).
    """
    bce = reconstruction_nll(logits, x, "bernoulli") / IMAGE_PIXELS
    return bce - SOURCE_KL_COEFFICIENT * (1 + logvar - mu.pow(2) - logvar.exp()).mean(1)


def source_effective_beta(latent_size: int) -> float:
    """The β of the source's loss relative to the standard summed ELBO: β_eff = 784 · 0.001 / d.

    Derivation. The closed-form KL of a diagonal Gaussian to N(0, I) is
    KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²), so Σ_j (1 + log σ_j² − μ_j² − σ_j²) = −2 KL and

        L_src = (1/784) Σ_i BCE_i − 0.0005 · (1/d) · (−2 KL) = recon / 784 + (0.001 / d) · KL,

    where recon = Σ_i BCE_i = −log p(x|z) is the summed reconstruction term. A positive constant factor
    does not change the minimiser, so multiplying by 784,

        784 · L_src = recon + (784 · 0.001 / d) · KL = recon + β_eff · KL,

    the β-VAE objective with β_eff = 0.784 / d: 0.157, 0.078, 0.052, 0.039 for d = 5, 10, 15, 20. The
    source's latent-size comparison therefore changed β at the same time as d (and every β_eff ≪ 1,
    i.e. far weaker regularisation than the ELBO).
    """
    if isinstance(latent_size, bool) or not isinstance(latent_size, int) or latent_size < 1:
        raise ParameterError(f"latent_size must be an integer >= 1, got {latent_size!r}")
    return IMAGE_PIXELS * 2 * SOURCE_KL_COEFFICIENT / latent_size


def resolve_beta(beta: float | str, latent_size: int) -> float:
    """A β-grid entry as a number: ``"source"`` becomes :func:`source_effective_beta`, numbers stay."""
    if isinstance(beta, str):
        if beta != SOURCE_BETA:
            raise ParameterError(f"unknown named beta {beta!r}; use a number >= 0 or {SOURCE_BETA!r}")
        return source_effective_beta(latent_size)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (0 <= beta < math.inf):
        raise ParameterError(f"beta must be a finite number >= 0 or {SOURCE_BETA!r}, got {beta!r}")
    return float(beta)


def validate_betas(name: str, value: Any) -> None:
    """Chapter validator for a β grid: a non-empty list of numbers >= 0 and/or ``"source"``."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if len(values) == 0:
        raise ParameterError(f"{name} must be a non-empty list such as ['source', 1.0], got {value!r}")
    for item in values:
        try:
            resolve_beta(item, 1)
        except ParameterError as exc:
            raise ParameterError(f"{name}: {exc} (in {value!r}); pass e.g. -p {name} \"['source', 1.0]\"") from None
    if len(set(map(str, values))) != len(values):
        raise ParameterError(f"{name} has repeated entries: {value!r}")


def beta_label(beta: float | str, latent_size: int) -> str:
    """A short label: 'source (0.157)' or '1'."""
    value = resolve_beta(beta, latent_size)
    return f"source ({value:.3f})" if beta == SOURCE_BETA else f"{value:g}"


# --- representative images and per-digit tables -----------------------------------------------------

def representative_indices(labels: torch.Tensor, per_digit: int = 10, seed: int = 0,
                           digits: Sequence[int] | None = None) -> torch.Tensor:
    """Indices of ``per_digit`` representative images per digit, by a stated, seeded rule.

    Rule: for each digit c (in increasing order), take the indices of the images labelled c in their
    original order, permute them with ``torch.randperm`` from a generator seeded with ``seed + c``, and
    keep the first ``per_digit``. Each digit's choice depends only on the seed and that digit's images, so
    it is a uniform random sample without replacement, reproducible and independent of the other digits.
    Returns one LongTensor, digit-major (all of digit 0's, then digit 1's, ...), each digit's in the
    permuted order.
    """
    if isinstance(per_digit, bool) or not isinstance(per_digit, int) or per_digit < 1:
        raise ParameterError(f"per_digit must be an integer >= 1, got {per_digit!r}")
    labels = torch.as_tensor(labels).cpu()
    digits = sorted(int(d) for d in torch.unique(labels)) if digits is None else list(digits)
    out = []
    for c in digits:
        idx = torch.nonzero(labels == c)[:, 0]
        if len(idx) < per_digit:
            raise ParameterError(f"digit {c} has {len(idx)} images, fewer than per_digit={per_digit}; "
                                 "use a larger test subset or a smaller per_digit")
        g = torch.Generator().manual_seed(seed + c)
        out.append(idx[torch.randperm(len(idx), generator=g)[:per_digit]])
    return torch.cat(out)


def per_digit_metrics(x: torch.Tensor, x_hat: torch.Tensor, labels: torch.Tensor) -> pd.DataFrame:
    """Mean per-image MSE and PSNR (dB) for each digit, with the number of images.

    PSNR is computed per image (10 log10(1/MSE)) and then averaged, as the source did; this is higher than
    10 log10(1/mean MSE) by Jensen's inequality. Index: digit; columns: images, mse, psnr.
    """
    if len(x) != len(labels):
        raise ValueError(f"got {len(x)} images but {len(labels)} labels")
    labels = torch.as_tensor(labels).cpu()
    m, p = mse(x, x_hat).cpu(), psnr(x, x_hat).cpu()
    rows = {}
    for c in sorted(int(d) for d in torch.unique(labels)):
        keep = labels == c
        rows[c] = {"images": int(keep.sum()), "mse": m[keep].mean().item(), "psnr": p[keep].mean().item()}
    frame = pd.DataFrame(rows).T
    frame["images"] = frame["images"].astype(int)
    frame.index.name = "digit"
    return frame


def summarise_per_digit(frame: pd.DataFrame) -> dict[str, float]:
    """The source's summary: the unweighted mean over digits of the per-digit means."""
    return {"mse": float(frame["mse"].mean()), "psnr": float(frame["psnr"].mean())}


# --- decoder-only reconstruction: the amortisation gap ---------------------------------------------

def decoder_only_objective(model: nn.Module, z: torch.Tensor, x: torch.Tensor, prior_weight: float) -> torch.Tensor:
    """Per image: −log p(x|z) + prior_weight · ½‖z‖², i.e. the reconstruction NLL plus a weighted
    −log p(z) (up to its constant ½ d log 2π) under the prior N(0, I)."""
    logits = model.decoder(z)
    recon = reconstruction_nll(logits, x, model.config.likelihood, model.config.sigma)
    return recon + prior_weight * 0.5 * z.pow(2).sum(1)


def decoder_only_latents(model: nn.Module, x: torch.Tensor, *, steps: int = 300, lr: float = 0.05,
                         prior_weight: float = 1.0, init: str = "zeros", seed: int = 0,
                         batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Find a latent code for each image by gradient descent through the frozen decoder, no encoder.

    For each image x, minimise J(z) = −log p(x|z) + w · ½‖z‖² over z with Adam (``steps`` steps, step size
    ``lr``), starting from z = 0 (the prior mean; ``init="zeros"``) or from a prior sample
    (``init="prior"``, drawn from a generator seeded with ``seed``). With w = β this is the β-VAE objective
    with the posterior shrunk to a point (a MAP code); with w = 0 it is the best reconstruction the decoder
    can give. The objective is summed over the batch, so each image's code gets its own gradient; Adam
    normalises per coordinate, so the result does not depend on how images are batched. The decoder's
    weights are never updated (gradients are taken with respect to z only). Deterministic given ``seed``
    (on CPU). Returns (z of shape (N, d), final objective J per image).
    """
    if init not in ("zeros", "prior"):
        raise ParameterError(f"init must be 'zeros' or 'prior', got {init!r}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{name} must be an integer >= 1, got {value!r}")
    if not (lr > 0 and math.isfinite(lr)) or not (prior_weight >= 0 and math.isfinite(prior_weight)):
        raise ParameterError(f"need lr > 0 and prior_weight >= 0, got lr={lr!r}, prior_weight={prior_weight!r}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    d = model.config.latent_size
    gen = torch.Generator().manual_seed(seed)
    codes, objectives = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device)
        z0 = torch.zeros(len(xb), d) if init == "zeros" else torch.randn(len(xb), d, generator=gen)
        z = z0.to(device).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        with torch.enable_grad():
            for _ in range(steps):
                loss = decoder_only_objective(model, z, xb, prior_weight).sum()
                (grad,) = torch.autograd.grad(loss, z)
                z.grad = grad
                opt.step()
        with torch.no_grad():
            objectives.append(decoder_only_objective(model, z, xb, prior_weight).cpu())
        codes.append(z.detach().cpu())
    model.train(was_training)
    return torch.cat(codes), torch.cat(objectives)


@torch.no_grad()
def decode_codes(model: nn.Module, z: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Decoder means (pixel probabilities) for codes ``z``, on the model's device, returned on the CPU."""
    device = next(model.parameters()).device
    return torch.cat([model.decode(z[i:i + batch_size].to(device)).cpu() for i in range(0, len(z), batch_size)])


@torch.no_grad()
def encoder_objective(model: nn.Module, x: torch.Tensor, prior_weight: float) -> torch.Tensor:
    """:func:`decoder_only_objective` at the encoder's mean code, per image (the amortised solution)."""
    device = next(model.parameters()).device
    x = x.to(device)
    mu = model.encode(x)[0]
    return decoder_only_objective(model, mu, x, prior_weight).cpu()


def amortisation_gap(x: torch.Tensor, full: torch.Tensor, decoder_only: torch.Tensor) -> dict[str, float]:
    """Mean MSE and PSNR of the full VAE (encode → mean → decode) and of the decoder-only reconstruction,
    and the gaps (full − decoder-only for MSE; decoder-only − full for PSNR: positive = the encoder
    leaves quality on the table)."""
    m_full, m_dec = mse(x, full).mean().item(), mse(x, decoder_only).mean().item()
    p_full, p_dec = psnr(x, full).mean().item(), psnr(x, decoder_only).mean().item()
    return {"full MSE": m_full, "decoder-only MSE": m_dec, "MSE gap": m_full - m_dec,
            "full PSNR": p_full, "decoder-only PSNR": p_dec, "PSNR gap (dB)": p_dec - p_full}


# --- training curves, rate and distortion -----------------------------------------------------------

def loss_tracker(sets: Mapping[str, torch.Tensor], batch_size: int = 1000):
    """An ``epoch_end`` hook for :func:`vaebook.train.fit`: on each named set, the model's own training
    loss (recon + β·KL, per image) and its terms, one Monte-Carlo sample of z per image."""

    def epoch_end(model: nn.Module, epoch: int) -> dict[str, float]:
        out = {}
        for split, x in sets.items():
            terms = model.evaluate(x, batch_size=batch_size)
            out[f"{split}_loss"] = terms["recon"] + model.config.beta * terms["kl"]
            out[f"{split}_recon"] = terms["recon"]
            out[f"{split}_kl"] = terms["kl"]
            out[f"{split}_neg_elbo"] = terms["neg_elbo"]
        return out

    return epoch_end


@torch.no_grad()
def rate_distortion(model: nn.Module, x: torch.Tensor, x_hat: torch.Tensor | None = None, seed: int = 0,
                    batch_size: int = 1000) -> dict[str, float]:
    """Rate = mean KL(q(z|x) || p(z)) in nats; distortion = mean −log p(x|z) (one seeded sample of z) in
    nats, and the mean MSE of the deterministic reconstruction. Negative ELBO = rate + distortion.

    In the rate–distortion reading of the β-VAE (Alemi et al. 2018), the KL is the information the code
    carries about the image and the reconstruction NLL the distortion; β sets the trade-off's slope.
    ``x_hat``: the model's mean reconstructions of ``x`` if already computed (saves a pass).
    """
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        terms = model.evaluate(x.to(device), batch_size=batch_size)
    if x_hat is None:
        x_hat = model.reconstruct(x.to(device), batch_size=batch_size)
    x, x_hat = x.cpu(), x_hat.cpu()
    return {"rate": terms["kl"], "distortion": terms["recon"], "neg_elbo": terms["neg_elbo"],
            "mse": mse(x, x_hat).mean().item(), "psnr": psnr(x, x_hat).mean().item()}


def suboptimal_models(rd: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    """Models beaten on their own objective by another model of the same latent size.

    ``rd`` has columns "latent size", "β value", "rate", "distortion" (one row per model, all measured on
    the same images). Model a minimises D + β_a R; if another model b with the same latent size has
    D_b + β_a R_b < D_a + β_a R_a, then b's parameters are a better solution of a's own problem, so a's
    training stopped in a worse optimum (or short of one). At the optimum, lowering β can only raise
    the rate and lower the distortion; a point that breaks this is caught here. Returns one row per
    such model: its objective and the best other model's value of that same objective. ``tolerance``
    (nats): only excesses larger than this count, since D and R are Monte-Carlo estimates.
    """
    rows = []
    for d, part in rd.groupby("latent size"):
        for _, a in part.iterrows():
            own = a["distortion"] + a["β value"] * a["rate"]
            others = part[part.index != a.name]
            if others.empty:
                continue
            values = others["distortion"] + a["β value"] * others["rate"]
            best = values.idxmin()
            if values[best] < own - tolerance:
                rows.append({"latent size": d, "β": a["β value"], "own objective": own,
                             "beaten by β": others.loc[best, "β value"], "its value": values[best],
                             "excess (nats)": own - values[best]})
    return pd.DataFrame(rows, columns=["latent size", "β", "own objective", "beaten by β", "its value",
                                       "excess (nats)"])


@torch.no_grad()
def kl_per_dimension(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Mean KL of each latent dimension over ``x``: ½(μ_j² + σ_j² − 1 − log σ_j²); near 0 = unused."""
    device = next(model.parameters()).device
    total = None
    for i in range(0, len(x), batch_size):
        mu, logvar = model.encode(x[i:i + batch_size].to(device))
        part = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(0).cpu()
        total = part if total is None else total + part
    return total / len(x)


@torch.no_grad()
def latent_traversal(model: nn.Module, z0: torch.Tensor, dims: Sequence[int],
                     values: Sequence[float]) -> torch.Tensor:
    """Decode z0 with one coordinate at a time replaced by each of ``values``.

    Returns (len(dims) · len(values), 1, 28, 28), row-major: one row per dimension in ``dims``.
    """
    z0 = torch.as_tensor(z0, dtype=torch.float32).flatten()
    d = model.config.latent_size
    if len(z0) != d:
        raise ValueError(f"z0 has {len(z0)} coordinates but the model's latent size is {d}")
    bad = [j for j in dims if not 0 <= j < d]
    if bad:
        raise ValueError(f"dimensions {bad} are outside 0..{d - 1}")
    rows = []
    for j in dims:
        z = z0.repeat(len(values), 1)
        z[:, j] = torch.as_tensor(list(values), dtype=torch.float32)
        rows.append(z)
    return decode_codes(model, torch.cat(rows))


# --- separation of digits in latent space -----------------------------------------------------------

def separation_scores(codes: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, k: int = 5,
                      folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Two numbers for how well the digits separate in latent space (not in a 2-D picture of it):

    * ``knn_accuracy``: accuracy of a k-nearest-neighbour classifier (Euclidean) on the codes, by
      stratified ``folds``-fold cross-validation (shuffled with ``seed``); chance is about 10%.
    * ``silhouette``: mean silhouette coefficient of the digit labels (Rousseeuw 1987), in [−1, 1];
      1 = tight, far-apart clusters, 0 = overlapping.
    """
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    z = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    acc = cross_val_score(KNeighborsClassifier(n_neighbors=k), z, y, cv=cv).mean()
    return {"knn_accuracy": float(acc), "silhouette": float(silhouette_score(z, y))}


def tsne_embedding(codes: torch.Tensor | np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (van der Maaten & Hinton 2008) of latent codes, PCA-initialised, seeded."""
    from sklearn.manifold import TSNE

    z = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    perplexity = min(perplexity, max(2.0, (len(z) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
