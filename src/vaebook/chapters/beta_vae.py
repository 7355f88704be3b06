"""Chapter "β-VAE: latent size and β, untangled": one convolutional VAE per (latent size, β) pair."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import Any

import torch

from .. import data
from ..beta_vae import Setting, beta_grid, loss_tracker, representative_indices, resolve_beta
from ..config import TrainingParams, ParameterError, custom, fraction, integer, integers, number
from ..jobs import Hooks, Job
from ..models import VAE, VAEConfig


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
class Params(TrainingParams):
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


DEFAULT = Params()
PROFILES = {
    "smoke": replace(DEFAULT, latent_sizes=(5, 20), epochs=1, train_subset=1000, test_subset=500,
                     decoder_steps=10, tsne_points=200),
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


def _training_data(p: Params):
    d = chapter_data(p)
    return d.train.x, d.train.y


def _hooks(p: Params, device: torch.device) -> Hooks:
    return Hooks(epoch_end=loss_tracker({"val": chapter_data(p).val.x.to(device)}))


def jobs(run) -> list[Job]:
    """One conv VAE per grid setting, trained on L_β = recon + β·KL with the validation loss tracked."""
    p: Params = run.params
    n_val = len(chapter_data(p).val)
    return [Job(name=f"beta_vae-d{s.d}-beta{s.value:.4f}",
                model=partial(VAE, VAEConfig(latent_size=s.d, arch="conv", beta=s.value)),
                data=partial(_training_data, p), epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                **p.job_settings(), chapter="beta_vae",
                extra_key={"tracker": "beta-vae-loss-v1", "val": n_val}, hooks=partial(_hooks, p))
            for s in settings(run)]
