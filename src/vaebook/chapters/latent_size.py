"""Chapter "How big should the latent space be?": MLP VAEs with latent sizes 2, 4 and 16."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache, partial

import torch

from .. import data
from ..config import TrainingParams, integer, integers, number
from ..evaluate import latent_snapshot, reconstruction_tracker
from ..jobs import Hooks, Job
from ..models import VAE, VAEConfig


@dataclass(frozen=True)
class Params(TrainingParams):
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
    "smoke": replace(DEFAULT, epochs=1, train_subset=2000, test_subset=500, eval_subset=500),
    "default": DEFAULT,
    "full": replace(DEFAULT, epochs=50, eval_subset=None),
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


def _training_data(p: Params):
    d = chapter_data(p)
    return d.train.x, d.train.y


def _hooks(p: Params, device: torch.device) -> Hooks:
    d = chapter_data(p)
    return Hooks(epoch_end=reconstruction_tracker({"train": d.train_eval.to(device), "test": d.test.x.to(device)}),
                 snapshot=latent_snapshot(d.test.x[d.gif_idx].to(device), d.test.x[d.recon_idx].to(device)))


def model_config(latent_size: int) -> VAEConfig:
    return VAEConfig(latent_size=latent_size, arch="mlp", hidden_size=400)


def jobs(run) -> list[Job]:
    """One MLP VAE per latent size."""
    p: Params = run.params
    d = chapter_data(p)
    return [Job(name=f"latent_size-d{size}", model=partial(VAE, model_config(size)),
                data=partial(_training_data, p), epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                **p.job_settings(), chapter="latent_size",
                extra_key={"tracker": "recon-v1", "eval": len(d.train_eval), "test": len(d.test)},
                hooks=partial(_hooks, p))
            for size in p.latent_sizes]


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
