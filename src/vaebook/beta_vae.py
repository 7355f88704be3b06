"""β-VAE analysis: the source study's effective β, the grid of (latent size, β) settings and its tables,
per-digit quality, encoder codes against codes optimised per image through the frozen decoder
("decoder-only"), the latent-size check of the validation −ELBO, rate–distortion numbers, latent
traversals, and the comparison with the source study's reported numbers.

The β-VAE (Higgins et al. 2017) minimises, per image, the negative ELBO with a weighted KL term,

    L_β(x) = E_q[-log p(x|z)] + β · KL(q(z|x) || p(z)),

with both terms **summed** (over pixels and latent dimensions), so β = 1 is the ELBO. The source study (a
Keras β-VAE project comparing latent sizes 5, 10, 15 and 20 on MNIST) wrote its loss with *means* instead,
which hides a β that changes with the latent size d; :func:`source_effective_beta` derives it from the
source's code, and :data:`SOURCE_RESULTS` holds the per-digit numbers it reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import ParameterError
from .evaluate import batched, decode
from .metrics import mse, psnr
from .models import IMAGE_PIXELS, reconstruction_nll

SOURCE_KL_COEFFICIENT = 0.0005   # the source's weight on mean_d(1 + log σ² − μ² − σ²)
SOURCE_BETA = "source"           # the name that selects the source's effective β in a β grid

# What the source study reported for its models (trained with β_eff(d), 15 epochs, batch 32, 20% validation
# split): per latent size d, the unweighted mean over the ten digits of the per-digit mean MSE and PSNR (dB)
# over all test images of each digit. (Its table labels them "decoder-only"; in its code they are the
# ordinary encode-decode reconstruction.) It found d = 15 best, digit 1 the easiest and digit 8 the hardest.
SOURCE_RESULTS: dict[int, tuple[float, float]] = {5: (0.0239, 16.67), 10: (0.0132, 19.17),
                                                  15: (0.0091, 20.77), 20: (0.0143, 18.88)}
SOURCE_BEST_LATENT_SIZE = 15
SOURCE_EASIEST_DIGIT, SOURCE_HARDEST_DIGIT = 1, 8


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


def beta_label(beta: float | str, latent_size: int) -> str:
    """A short label: 'source (0.157)' or '1'."""
    value = resolve_beta(beta, latent_size)
    return f"source ({value:.3f})" if beta == SOURCE_BETA else f"{value:g}"


@dataclass(frozen=True)
class Setting:
    """One model of the β-VAE grid: latent size ``d``; ``name``, the β entry as written in the parameters
    (``"source"`` or a number); ``value``, the β it resolves to at this ``d``; ``label``, its display form
    (:func:`beta_label`). Build one with :meth:`of`, or the whole grid with :func:`beta_grid`."""

    d: int
    name: str | float
    value: float
    label: str

    @classmethod
    def of(cls, d: int, name: str | float) -> "Setting":
        """The setting of latent size ``d`` and β entry ``name`` (checked by :func:`resolve_beta`)."""
        return cls(d, name, resolve_beta(name, d), beta_label(name, d))

    @property
    def is_source(self) -> bool:
        return self.name == SOURCE_BETA


def beta_grid(latent_sizes: Sequence[int], betas: Sequence[float | str]) -> list[Setting]:
    """Every (latent size, β entry) pair, latent size by latent size, each in the order given."""
    return [Setting.of(d, b) for d in latent_sizes for b in betas]


GRID_INDEX = ["latent size", "β"]


def grid_table(rows: Mapping[Setting, Mapping[str, Any]], beta_value: bool = False) -> pd.DataFrame:
    """One row per setting, indexed by (latent size, β label), with the given columns; ``beta_value``
    adds the numeric β as the first column."""
    records = [{"latent size": s.d, "β": s.label, **({"β value": s.value} if beta_value else {}), **dict(r)}
               for s, r in rows.items()]
    return pd.DataFrame(records).set_index(GRID_INDEX)


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


def digit_by_size(tables: Mapping[Setting, pd.DataFrame], metric: str, name: str | float) -> pd.DataFrame:
    """The digit × latent size table of one column (``"mse"``, ``"psnr"``) of :func:`per_digit_metrics`
    tables, for the settings whose β entry is ``name`` (e.g. ``"source"`` or 1.0), in the tables' order."""
    columns = {s.d: t[metric] for s, t in tables.items() if s.name == name and metric in t}
    if not columns:
        raise ValueError(f"no table with β entry {name!r} and column {metric!r}; the β entries are "
                         f"{sorted({repr(s.name) for s in tables})}")
    return pd.DataFrame(columns).rename_axis(index="digit", columns="latent size")


def per_digit_long(all_images: Mapping[Setting, pd.DataFrame],
                   representatives: Mapping[Setting, pd.DataFrame]) -> pd.DataFrame:
    """One row per (model, digit): per-digit mean PSNR and MSE over all test images of the digit and over
    its representatives (both :func:`per_digit_metrics` tables, keyed by the same settings)."""
    if set(all_images) != set(representatives):
        raise ValueError("all_images and representatives must hold the same settings")
    rows = []
    for s, table in all_images.items():
        reps = representatives[s]
        for digit in table.index:
            rows.append({"latent size": s.d, "β": s.label, "digit": digit,
                         "PSNR all": table.loc[digit, "psnr"], "MSE all": table.loc[digit, "mse"],
                         "PSNR 10 reps": reps.loc[digit, "psnr"], "MSE 10 reps": reps.loc[digit, "mse"],
                         "test images": table.loc[digit, "images"]})
    return pd.DataFrame(rows)


def digit_difficulty(long: pd.DataFrame, images: torch.Tensor, labels: torch.Tensor) -> tuple[pd.DataFrame, float]:
    """Which digits are easy to reconstruct, and how much of that the amount of ink explains.

    ``long`` is :func:`per_digit_long`'s table. Returns, per digit, the mean over all its models of the
    per-digit mean PSNR and MSE (all test images) beside the mean pixel intensity of the digit's
    ``images`` (its "ink"), sorted from the easiest digit (highest PSNR) to the hardest; and the Spearman
    rank correlation between a digit's ink and its mean MSE.
    """
    from scipy.stats import spearmanr

    labels = torch.as_tensor(labels).cpu()
    mean_psnr = long.groupby("digit")["PSNR all"].mean()
    mean_mse = long.groupby("digit")["MSE all"].mean()
    ink = pd.Series({c: images[labels == c].mean().item() for c in mean_psnr.index})
    table = pd.DataFrame({"mean PSNR over models (dB)": mean_psnr, "mean MSE over models": mean_mse,
                          "mean pixel intensity": ink}).sort_values("mean PSNR over models (dB)", ascending=False)
    rho = spearmanr(table["mean pixel intensity"], table["mean MSE over models"]).statistic
    return table, float(rho)


# --- encoder codes versus codes optimised per image (decoder-only) ----------------------------------
#
# This is *not* the amortisation gap of Cremer et al. (2018), which compares the ELBO of the encoder's
# q(z|x) with that of the best Gaussian q fitted to each image (both distributions, entropy included).
# Here both sides are single points z scored on the same point objective J(z) = −log p(x|z) + w·½‖z‖²,
# with no entropy term; the search minimises J itself, the encoder's mean was never trained to, so the
# search wins on J by construction (up to a search that stops short of its minimum).

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
def encoder_objective(model: nn.Module, x: torch.Tensor, prior_weight: float) -> torch.Tensor:
    """:func:`decoder_only_objective` at the encoder's mean code, per image (the amortised solution)."""
    device = next(model.parameters()).device
    x = x.to(device)
    mu = model.encode(x)[0]
    return decoder_only_objective(model, mu, x, prior_weight).cpu()


def optimised_code_gap(x: torch.Tensor, full: torch.Tensor, decoder_only: torch.Tensor) -> dict[str, float]:
    """Mean MSE and PSNR of the encoder's reconstruction (``full``: encode → mean → decode) and of the
    reconstruction from codes optimised per image (``decoder_only``), and the gains of the optimised codes
    (encoder − optimised for MSE; optimised − encoder for PSNR: positive = the optimised code reconstructs
    better)."""
    m_full, m_dec = mse(x, full).mean().item(), mse(x, decoder_only).mean().item()
    p_full, p_dec = psnr(x, full).mean().item(), psnr(x, decoder_only).mean().item()
    return {"encoder MSE": m_full, "optimised MSE": m_dec, "MSE gain": m_full - m_dec,
            "encoder PSNR": p_full, "optimised PSNR": p_dec, "PSNR gain (dB)": p_dec - p_full}


def optimised_code_table(models: Mapping[int, nn.Module], x: torch.Tensor, full: Mapping[int, torch.Tensor], *,
                       steps: int, lr: float, seed: int = 0) -> tuple[pd.DataFrame, dict[int, torch.Tensor]]:
    """Encoder codes versus codes optimised per image, for the images ``x``, one row per latent size.

    ``models`` and ``full`` (each model's mean reconstructions of ``x``) are keyed by latent size. For
    each model the optimised codes minimise J(z) = −log p(x|z) + β·½‖z‖² with the model's own β, from
    z = 0 (:func:`decoder_only_latents`). A row holds :func:`optimised_code_gap`'s numbers, the mean J at
    the encoder's mean code and at the optimised code, and the share of images the optimised code
    reconstructs with a lower MSE. Returns the table and the reconstructions from the optimised codes.
    """
    if set(models) != set(full):
        raise ValueError(f"models and full must have the same latent sizes, got {sorted(models)} and {sorted(full)}")
    rows, recon = [], {}
    for d, model in models.items():
        beta = model.config.beta
        z, objective = decoder_only_latents(model, x, steps=steps, lr=lr, prior_weight=beta, init="zeros", seed=seed)
        recon[d] = decode(model, z)
        gap = optimised_code_gap(x, full[d], recon[d])
        gap["J at encoder code"] = encoder_objective(model, x, beta).mean().item()
        gap["J at optimised code"] = objective.mean().item()
        gap["share optimised better (MSE)"] = (mse(x, recon[d]) < mse(x, full[d])).float().mean().item()
        rows.append({"latent size": d, **gap})
    return pd.DataFrame(rows).set_index("latent size"), recon


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


def model_selection(histories: Mapping[Setting, pd.DataFrame]) -> tuple[pd.DataFrame, Setting]:
    """The validation −ELBO (β = 1, whatever β the model was trained with) and the validation loss L_β
    after the last epoch of each model (histories with :func:`loss_tracker`'s ``val_`` columns), and the
    setting with the lowest validation −ELBO: the chosen model."""
    if not histories:
        raise ValueError("model_selection needs at least one model's history")
    missing = [s.label for s, h in histories.items() if not {"val_neg_elbo", "val_loss"} <= set(h.columns)]
    if missing:
        raise ValueError(f"histories without val_neg_elbo/val_loss columns (no loss_tracker on 'val'): {missing}")
    final = {s: {"validation −ELBO (nats)": float(h["val_neg_elbo"].iloc[-1]),
                 "validation loss L_β": float(h["val_loss"].iloc[-1])} for s, h in histories.items()}
    chosen = min(final, key=lambda s: final[s]["validation −ELBO (nats)"])
    return grid_table(final, beta_value=True), chosen


def larger_latent_worse(neg_elbo: Mapping[int, float], tolerance: float = 0.0) -> pd.DataFrame:
    """Latent sizes whose −ELBO (at one β) is higher than that of a smaller latent size.

    At the optimum this cannot happen. A VAE with d' > d latent dimensions contains every d-dimensional
    one of the same architecture: give the extra coordinates zero weights in the decoder's first layer
    and let the encoder output the prior N(0, 1) for them; the reconstruction is unchanged and their KL
    is 0, so the best −ELBO at d' is at most the best at d. A larger latent size that does worse has
    therefore not reached its optimum (under-training, or a worse local optimum), which says nothing
    about the latent size itself.

    ``neg_elbo`` maps latent size to −ELBO (nats, lower is better). Returns one row per latent size
    whose −ELBO exceeds the lowest −ELBO of the smaller sizes by more than ``tolerance`` nats: the
    latent size, its −ELBO, the smaller size it is compared with (the best of them), that size's
    −ELBO and the excess; in increasing latent size.
    """
    columns = ["latent size", "−ELBO", "smaller size", "its −ELBO", "excess (nats)"]
    rows, best = [], None
    for d in sorted(neg_elbo):
        value = float(neg_elbo[d])
        if best is not None and value > neg_elbo[best] + tolerance:
            rows.append(dict(zip(columns, [d, value, best, float(neg_elbo[best]), value - neg_elbo[best]])))
        if best is None or value < neg_elbo[best]:
            best = d
    return pd.DataFrame(rows, columns=columns)


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


def rate_distortion_table(models: Mapping[Setting, nn.Module], x: torch.Tensor,
                          x_hat: Mapping[Setting, torch.Tensor] | None = None, seed: int = 0) -> pd.DataFrame:
    """:func:`rate_distortion` of every model on the same images ``x`` (``x_hat``: each model's mean
    reconstructions of them, if already computed), one row per setting with its numeric β."""
    return grid_table({s: rate_distortion(m, x, x_hat=None if x_hat is None else x_hat[s], seed=seed)
                       for s, m in models.items()}, beta_value=True)


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


def kl_per_dimension(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Mean KL of each latent dimension over ``x``: ½(μ_j² + σ_j² − 1 − log σ_j²); near 0 = unused."""

    def per_image(batch: torch.Tensor) -> torch.Tensor:
        mu, logvar = model.encode(batch)
        return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)

    return batched(per_image, x, batch_size, module=model).mean(0)


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
    return decode(model, torch.cat(rows))


# --- t-SNE -----------------------------------------------------------------------------------------

def tsne_embedding(codes: torch.Tensor | np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (van der Maaten & Hinton 2008) of latent codes, PCA-initialised, seeded."""
    from sklearn.manifold import TSNE

    z = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    perplexity = min(perplexity, max(2.0, (len(z) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)


# --- comparison with the source study ---------------------------------------------------------------

def source_comparison(all_images: Mapping[Setting, pd.DataFrame],
                      representatives: Mapping[Setting, pd.DataFrame]) -> pd.DataFrame:
    """Our models trained with the source's β_eff(d) against :data:`SOURCE_RESULTS`, one row per latent
    size the source reported: the mean over digits of the per-digit mean MSE and PSNR over all test
    images (:func:`summarise_per_digit`), our PSNR on the representatives, the PSNR difference, and
    whether ours is higher. ``all_images`` and ``representatives`` hold :func:`per_digit_metrics` tables
    keyed by setting; settings with another β, or another latent size, are left out."""
    rows = {}
    for s, table in all_images.items():
        if not s.is_source or s.d not in SOURCE_RESULTS:
            continue
        ours, ours_reps = summarise_per_digit(table), summarise_per_digit(representatives[s])
        source_mse, source_psnr = SOURCE_RESULTS[s.d]
        rows[s.d] = {"β_eff": s.value, "source MSE": source_mse, "our MSE": ours["mse"],
                     "source PSNR (dB)": source_psnr, "our PSNR (dB)": ours["psnr"],
                     "our PSNR, 10 reps (dB)": ours_reps["psnr"],
                     "PSNR difference (dB)": ours["psnr"] - source_psnr, "beats source": ours["psnr"] > source_psnr}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("latent size")


def source_verdict(comparison: pd.DataFrame, all_images: Mapping[Setting, pd.DataFrame]) -> dict[str, Any]:
    """What :func:`source_comparison`'s table says: ``holds`` (ours beats the source's PSNR at every
    compared latent size), ``beats`` (at how many of ``sizes``), our ``best latent size`` by PSNR (the
    source's was :data:`SOURCE_BEST_LATENT_SIZE`), and our ``easiest`` / ``hardest`` digit (highest /
    lowest per-digit PSNR, all test images) at each compared latent size (the source's: 1 and 8)."""
    if comparison.empty:
        raise ValueError("the comparison is empty: the grid has no 'source' β at latent sizes "
                         f"{sorted(SOURCE_RESULTS)}")
    tables = {s.d: t for s, t in all_images.items() if s.is_source and s.d in comparison.index}
    return {"holds": bool(comparison["beats source"].all()), "beats": int(comparison["beats source"].sum()),
            "sizes": len(comparison), "best latent size": int(comparison["our PSNR (dB)"].idxmax()),
            "easiest": {d: int(t["psnr"].idxmax()) for d, t in tables.items()},
            "hardest": {d: int(t["psnr"].idxmin()) for d, t in tables.items()}}
