"""Chapter "β-VAE: latent size and β, untangled": one convolutional VAE per (latent size, β) pair, and the
models at the source's β of the latent sizes its headline compares (a PSNR drop from d = 15 to d = 20)
trained again with further seeds, so that comparison is judged over several training runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import Any

import pandas as pd
import torch

from .. import data
from ..beta_vae import (Setting, beta_grid, loss_tracker, per_digit_metrics, representative_indices,
                        resolve_beta, summarise_per_digit)
from ..config import SeededParams, ParameterError, custom, fraction, integer, integers, number
from ..jobs import Hooks, Job
from ..models import VAE, VAEConfig
from ..train import FitResult

CHAPTER = "beta_vae"
SOURCE = "source"   # the β entry of the source's β_eff(d), the only one trained with every seed


def check_betas(name: str, value: Any) -> tuple[str | float, ...]:
    """A β grid: a non-empty list of numbers >= 0 and/or ``"source"`` (the source's β_eff(d)), no entry
    twice; returned as a tuple with the numbers as floats (a single entry is a list of one)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ParameterError(f"{name} must be a non-empty list such as ['source', 1.0], got {value!r}; "
                             f"pass e.g. -p {name} \"['source', 1.0]\"")
    out = []
    for item in values:
        try:
            resolve_beta(item, 1)
        except ParameterError as exc:
            raise ParameterError(f"{name}: {exc} (in {value!r}); pass e.g. -p {name} \"['source', 1.0]\"") from None
        out.append(item if isinstance(item, str) else float(item))
    if len(set(out)) != len(out):
        raise ParameterError(f"{name} has repeated entries: {value!r}; pass e.g. -p {name} \"['source', 1.0]\"")
    return tuple(out)


@dataclass(frozen=True)
class Params(SeededParams):
    latent_sizes: tuple[int, ...] = integers((5, 10, 15, 20), "latent sizes d, one model per (d, β)")
    betas: tuple[str | float, ...] = custom(("source", 1.0), "β grid against the summed ELBO; 'source' means "
                                            "the source's 784·0.001/d", check_betas)
    epochs: int = integer(5, "training epochs per model")
    batch_size: int = integer(32, "images per mini-batch")
    lr: float = number(1e-3, "Adam learning rate")
    train_subset: int | None = integer(24000, "training images drawn before the validation split",
                                       optional=True, none_means="all 60,000")
    val_fraction: float = fraction(0.2, "share of those held out for validation curves and model selection")
    test_subset: int | None = integer(None, "test images", optional=True, none_means="all 10,000")
    representatives: int = integer(10, "representative test images per digit")
    decoder_steps: int = integer(100, "Adam steps of the per-image code search (decoder-only)")
    decoder_lr: float = number(0.1, "Adam step size of the per-image code search")
    tsne_points: int = integer(2000, "test images embedded by t-SNE (and scored for rate and separation)",
                               minimum=50)
    # Only the two sizes of the source's headline: with all four the chapter took 563 s instead of 453 s
    # (measured cold on 2 cores) and the book 30.1 minutes, while no claim rests on the others' spread.
    seed_sizes: tuple[int, ...] = integers((15, 20), "latent sizes whose model at the source's β is also "
                                           "trained with every further seed (those not in latent_sizes are "
                                           "skipped)")


DEFAULT = Params()
PROFILES = {
    "smoke": replace(DEFAULT, seeds=2, latent_sizes=(5, 20), seed_sizes=(5, 20), epochs=1, train_subset=1000,
                     test_subset=500, decoder_steps=10, tsne_points=200),
    "default": DEFAULT,
    "full": replace(DEFAULT, betas=("source", 0.5, 1.0, 2.0), epochs=15, train_subset=None, decoder_steps=300,
                    tsne_points=5000),
}


@dataclass(frozen=True)
class ChapterData:
    train: data.Split
    val: data.Split
    test: data.Split
    reps: torch.Tensor        # representative test images, digit-major (see representative_indices)
    sample_idx: torch.Tensor  # the seeded random test images of the t-SNE, separation and rate numbers


@lru_cache(maxsize=2)
def chapter_data(p: Params) -> ChapterData:
    splits = data.mnist_splits(train_subset=p.train_subset, test_subset=p.test_subset,
                               val_fraction=p.val_fraction, seed=p.seed)
    test = splits["test"]
    reps = representative_indices(test.y, p.representatives, seed=p.seed)
    g = torch.Generator().manual_seed(p.seed)
    sample_idx = torch.randperm(len(test), generator=g)[:min(p.tsne_points, len(test))]
    return ChapterData(splits["train"], splits["val"], test, reps, sample_idx)


def settings(run) -> list[Setting]:
    """The grid of models, latent size by latent size, in the order of the parameters."""
    return beta_grid(run.params.latent_sizes, run.params.betas)


def replicated_sizes(p: Params) -> tuple[int, ...]:
    """The latent sizes trained with every seed at the source's β: those of ``latent_sizes`` that are in
    ``seed_sizes``, in the order of ``latent_sizes``; none when the β grid lacks ``"source"``."""
    return tuple(d for d in p.latent_sizes if d in p.seed_sizes) if SOURCE in p.betas else ()


def n_models(p: Params) -> int:
    """How many models :func:`jobs` trains: the grid with the own seed, plus one model per latent size of
    :func:`replicated_sizes` for each further seed."""
    return len(p.latent_sizes) * len(p.betas) + len(replicated_sizes(p)) * (p.seeds - 1)


def _training_data(p: Params, seed: int):
    d = chapter_data(p.replicate(seed))
    return d.train.x, d.train.y


def _hooks(p: Params, device: torch.device) -> Hooks:
    return Hooks(epoch_end=loss_tracker({"val": chapter_data(p).val.x.to(device)}))


def _job_name(s: Setting) -> str:
    return f"{CHAPTER}-d{s.d}-beta{s.value:.4f}"


def jobs(run) -> list[Job]:
    """One conv VAE per grid setting with the own seed, trained on L_β = recon + β·KL with the validation
    loss tracked (names and cache keys as before the seeds), then, for each further seed of
    ``seed_values()``, one per latent size of :func:`replicated_sizes` at the source's β:
    [grid (seed), source d... (seed + 1), ...].

    A replicate trains on its own seed's draw of the training images (and its own initial weights and
    batch order). It has no per-epoch hooks: all the chapter reads from it is its test PSNR, computed by
    :func:`seed_psnr` after training, on the own seed's test images, exactly as for the own seed's models."""
    p: Params = run.params
    n_val = len(chapter_data(p).val)
    own = [_job(p, s, p.seed, extra_key={"tracker": "beta-vae-loss-v1", "val": n_val}, hooks=partial(_hooks, p))
           for s in settings(run)]
    return own + [_job(p, Setting.of(d, SOURCE), seed, extra_key={"tracker": "none-v1", "replicate_of_seed": p.seed})
                  for seed in p.seed_values()[1:] for d in replicated_sizes(p)]


def _job(p: Params, s: Setting, seed: int, **tracking) -> Job:
    """The conv VAE of setting ``s`` trained with ``seed`` (its data draw, weights and batch order)."""
    return Job(name=p.job_name(_job_name(s), seed),
               model=partial(VAE, VAEConfig(latent_size=s.d, arch="conv", beta=s.value)),
               data=partial(_training_data, p, seed), epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
               **p.replicate(seed).job_settings(), chapter=CHAPTER, **tracking)


def split_fits(p: Params, fits: list[FitResult]) -> tuple[dict[Setting, FitResult], dict[int, dict[int, FitResult]]]:
    """``train_all(jobs(run))`` as (the own seed's grid {setting: fit}, in grid order; the source-β models
    {seed: {latent size: fit}} for every seed of ``seed_values()``, the own seed's taken from the grid).
    The second is empty when the β grid lacks ``"source"``."""
    grid = beta_grid(p.latent_sizes, p.betas)
    sizes = replicated_sizes(p)
    if len(fits) != n_models(p):
        raise ValueError(f"expected {len(grid)} grid fits ({len(p.latent_sizes)} latent sizes × {len(p.betas)} β) "
                         f"plus {len(sizes)} source-β fits for each of {p.seeds - 1} further seeds, i.e. "
                         f"{n_models(p)} fits, got {len(fits)}")
    own = dict(zip(grid, fits[:len(grid)]))
    if not sizes:
        return own, {}
    by_seed = {p.seed: {d: own[Setting.of(d, SOURCE)] for d in sizes}}
    rest = fits[len(grid):]
    for i, seed in enumerate(p.seed_values()[1:]):
        by_seed[seed] = dict(zip(sizes, rest[i * len(sizes):(i + 1) * len(sizes)]))
    return own, by_seed


PSNR = "test PSNR (dB)"


def seed_psnr(by_seed: dict[int, dict[int, FitResult]], x: torch.Tensor, labels: torch.Tensor,
              device: torch.device | str = "cpu") -> pd.DataFrame:
    """The test PSNR of every (seed, latent size) model of ``by_seed`` (:func:`split_fits`), computed as the
    page's ``psnr_source_beta`` (the own seed's): reconstruct every image of ``x`` (encode, posterior mean,
    decode), PSNR per image, mean per digit of ``labels``, then the unweighted mean over digits. The same images for every
    seed (the page passes the own seed's test set). One row per (seed, latent size), column :data:`PSNR`."""
    rows = []
    for seed, by_size in by_seed.items():
        for d, fit in by_size.items():
            x_hat = fit.model.reconstruct(x.to(device)).cpu()
            rows.append({"seed": seed, "latent size": d,
                         PSNR: summarise_per_digit(per_digit_metrics(x, x_hat, labels))["psnr"]})
    index = pd.MultiIndex.from_tuples([], names=["seed", "latent size"])
    return pd.DataFrame(rows).set_index(["seed", "latent size"]) if rows else pd.DataFrame({PSNR: []}, index=index)


def psnr_drop(scores: pd.DataFrame, d_from: int = 15, d_to: int = 20) -> dict:
    """The claim's evidence in a :func:`seed_psnr` table: per seed the PSNR at ``d_from`` minus that at
    ``d_to`` (``drops``: {seed: dB}; positive: the PSNR dropped), whether it dropped (``dropped``: {seed:
    bool}), on how many seeds (``n_dropped``) of ``n_seeds``, and ``measured`` (False when either size is
    missing: then ``drops`` is empty). Also the mean and standard deviation (ddof 1; NaN with one seed)
    over the seeds per latent size (``mean``, ``sd``: {d: dB}, sizes in the table's order)."""
    wide = scores[PSNR].unstack("latent size") if len(scores) else pd.DataFrame()
    sizes = list(dict.fromkeys(scores.index.get_level_values("latent size"))) if len(scores) else []
    mean = {d: float(wide[d].mean()) for d in sizes}
    sd = {d: float(wide[d].std(ddof=1)) if wide[d].count() > 1 else math.nan for d in sizes}
    measured = d_from in sizes and d_to in sizes
    drops = ({seed: float(wide.loc[seed, d_from] - wide.loc[seed, d_to]) for seed in
              dict.fromkeys(scores.index.get_level_values("seed"))} if measured else {})
    dropped = {seed: v > 0 for seed, v in drops.items()}
    return {"drops": drops, "dropped": dropped, "n_dropped": sum(dropped.values()), "n_seeds": len(wide),
            "measured": measured, "mean": mean, "sd": sd}
