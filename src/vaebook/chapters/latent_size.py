"""Chapter "How big should the latent space be?": MLP VAEs with latent sizes 2, 4 and 16, each trained with
``seeds`` seeds so the comparison between sizes is drawn over several training runs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache, partial

import pandas as pd
import torch

from .. import data
from ..config import SeededParams, integer, integers, number
from ..evaluate import latent_snapshot, reconstruction_tracker
from ..jobs import Hooks, Job
from ..models import VAE, VAEConfig
from ..train import FitResult

CHAPTER = "latent_size"


@dataclass(frozen=True)
class Params(SeededParams):
    latent_sizes: tuple[int, ...] = integers((2, 4, 16), "latent sizes to compare, one model each")
    epochs: int = integer(12, "training epochs per model")
    batch_size: int = integer(128, "images per mini-batch")
    lr: float = number(1e-3, "Adam learning rate")
    train_subset: int | None = integer(None, "training images", optional=True, none_means="all 60,000")
    test_subset: int | None = integer(None, "test images", optional=True, none_means="all 10,000")
    eval_subset: int | None = integer(5000, "training images scored each epoch", optional=True,
                                      none_means="all")


DEFAULT = Params()
PROFILES = {
    "smoke": replace(DEFAULT, seeds=2, epochs=1, train_subset=2000, test_subset=500, eval_subset=500),
    "default": DEFAULT,
    "full": replace(DEFAULT, epochs=50, eval_subset=None, seeds=3),
}


@dataclass(frozen=True)
class ChapterData:
    train: data.Split
    test: data.Split
    train_eval: torch.Tensor   # training images scored each epoch
    gif_idx: torch.Tensor      # test images drawn in the latent GIFs
    recon_idx: torch.Tensor    # test images reconstructed each epoch (two per digit)


@lru_cache(maxsize=2)
def chapter_data(p: Params) -> ChapterData:
    splits = data.mnist_splits(train_subset=p.train_subset, test_subset=p.test_subset, seed=p.seed)
    train, test = splits["train"], splits["test"]
    g = torch.Generator().manual_seed(p.seed)
    n_eval = len(train) if p.eval_subset is None else min(p.eval_subset, len(train))
    train_eval = train.x[torch.randperm(len(train), generator=g)[:n_eval]]
    gif_idx = torch.randperm(len(test), generator=g)[:2000]
    recon_idx = torch.cat([torch.nonzero(test.y == d)[:2, 0] for d in range(10)])[:16]
    return ChapterData(train, test, train_eval, gif_idx, recon_idx)


def _training_data(p: Params, seed: int):
    d = chapter_data(p.replicate(seed))
    return d.train.x, d.train.y


def _hooks(p: Params, seed: int, device: torch.device) -> Hooks:
    """Per-epoch scores and snapshots of the chapter's own seed (its curves, GIFs and grids). A replicate
    (another seed) is scored once, after its last epoch, on the chapter's own test images only, which is all
    the seeds table reads: the per-epoch scores cost about as much as the epoch itself."""
    own = chapter_data(p)
    if seed == p.seed:
        return Hooks(epoch_end=reconstruction_tracker({"train": own.train_eval.to(device), "test": own.test.x.to(device)}),
                     snapshot=latent_snapshot(own.test.x[own.gif_idx].to(device), own.test.x[own.recon_idx].to(device)))
    final_scores = reconstruction_tracker({"test": own.test.x.to(device)})

    def after_last_epoch(model, epoch):
        return final_scores(model, epoch) if epoch == p.epochs else {}

    return Hooks(epoch_end=after_last_epoch)


def model_config(latent_size: int) -> VAEConfig:
    return VAEConfig(latent_size=latent_size, arch="mlp", hidden_size=400)


def jobs(run) -> list[Job]:
    """One MLP VAE per latent size for every seed of ``seed_values()``, the chapter's own seed first:
    [d2, d4, d16 (seed), d2, d4, d16 (seed + 1), ...]."""
    p: Params = run.params
    own = chapter_data(p)
    out = []
    for seed in p.seed_values():
        key = {"tracker": "recon-v1", "eval": len(own.train_eval), "test": len(own.test)}
        if seed != p.seed:   # scored once, on the own seed's test images (not part of the data's key)
            key = {"tracker": "recon-test-final-v1", "test": len(own.test), "test_seed": p.seed}
        out += [Job(name=p.job_name(f"{CHAPTER}-d{size}", seed), model=partial(VAE, model_config(size)),
                    data=partial(_training_data, p, seed), epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                    **p.replicate(seed).job_settings(), chapter=CHAPTER, extra_key=key,
                    hooks=partial(_hooks, p, seed))
                for size in p.latent_sizes]
    return out


def fits_by_seed(p: Params, fits: list[FitResult]) -> dict[int, dict[int, FitResult]]:
    """``train_all(jobs(run))`` as {seed: {latent size: fit}}, seeds in ``seed_values()`` order."""
    n = len(p.latent_sizes)
    if len(fits) != n * p.seeds:
        raise ValueError(f"expected one fit per latent size ({n}) for each of {p.seeds} seeds, i.e. {n * p.seeds} "
                         f"fits, got {len(fits)}")
    return {seed: dict(zip(p.latent_sizes, fits[i * n:(i + 1) * n])) for i, seed in enumerate(p.seed_values())}


# history column (last epoch) -> column of the seeds table
SCORES = {"test_psnr": "test PSNR (dB)", "test_ssim": "test SSIM", "test_neg_elbo": "test −ELBO (nats)"}
PSNR = SCORES["test_psnr"]


def seed_scores(p: Params, fits: dict[int, dict[int, FitResult]]) -> pd.DataFrame:
    """One row per (seed, latent size): the last epoch's test PSNR, SSIM and negative ELBO from each fit's
    history (all on the chapter's own test images)."""
    rows = [{"seed": seed, "latent size": size, **{col: float(fit.history[h].iloc[-1]) for h, col in SCORES.items()}}
            for seed, by_size in fits.items() for size, fit in by_size.items()]
    return pd.DataFrame(rows).set_index(["seed", "latent size"])


def psnr_steps(scores: pd.DataFrame) -> dict:
    """The claim's evidence in a :func:`seed_scores` table: for each seed the PSNR gain of every step up in d
    (sizes sorted), whether each gain is positive (``increasing``: {seed: bool}), on how many seeds they all
    are (``n_increasing``), and the smallest gain over all seeds and steps (``min_step``, dB; NaN with one
    latent size), with where it was (``min_at``: (seed, d, next d) or None)."""
    steps, increasing = {}, {}
    for seed, rows in scores[PSNR].groupby(level="seed", sort=False):
        psnr = rows.droplevel("seed").sort_index()
        sizes = list(psnr.index)
        gains = {(seed, a, b): float(psnr[b] - psnr[a]) for a, b in zip(sizes, sizes[1:])}
        steps.update(gains)
        increasing[seed] = all(g > 0 for g in gains.values())
    min_at = min(steps, key=steps.get) if steps else None
    return {"steps": steps, "increasing": increasing, "n_increasing": sum(increasing.values()),
            "min_step": steps[min_at] if steps else float("nan"), "min_at": min_at}


def last_epoch_change(histories: dict, column: str = "test_neg_elbo") -> tuple[str, list]:
    """What the last epoch did to a loss (lower is better) in each model's per-epoch history: a sentence
    for the chapter, and the keys of the models whose loss still fell. ``histories``: latent size ->
    DataFrame with ``column``, one row per epoch."""
    drops = {d: float(h[column].iloc[-2] - h[column].iloc[-1]) for d, h in histories.items() if len(h) > 1}
    if len(drops) < len(histories):
        return "With a single epoch there is no last-epoch change to report.", []
    falling = [d for d, v in drops.items() if v > 0]
    who = ("every model was" if len(falling) == len(drops) else "no model was" if not falling
           else "only the models with d = " + ", ".join(map(str, falling)) + " were")
    n_epochs = max(len(h) for h in histories.values())
    changes = ", ".join(f"{-v:+.2f} nats for d = {d}" for d, v in drops.items())
    return (f"Over the last of the {n_epochs} epochs the test negative ELBO changed by {changes}: {who} still "
            f"improving when training stopped."), falling
