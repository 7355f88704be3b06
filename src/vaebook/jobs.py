"""A chapter's models as data: picklable training jobs, and one call that trains what is missing.

A :class:`Job` says everything :func:`vaebook.train.fit` needs, as values and module-level callables (so
it pickles and can be sent to another process): the model factory (e.g. ``partial(VAE, VAEConfig(...))``),
the loader of the training tensors, the training parameters, and a factory of the per-epoch hooks. A
chapter module turns its parameters into a list of them (``vaebook.chapters.NAME.jobs(run)``), and the
notebook calls :func:`train_all`, which loads every job already in the checkpoint cache and trains the rest.
The cache key is what :func:`vaebook.train.cache_key` hashes (model config, training parameters, data
selection), exactly as when the notebook called ``fit`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .config import ParameterError
from .train import FitResult, fit, resolve_device


@dataclass(frozen=True)
class Hooks:
    """What :func:`vaebook.train.fit` calls after each epoch (see its ``epoch_end`` and ``snapshot``)."""

    epoch_end: Callable[[nn.Module, int], dict[str, float]] | None = None
    snapshot: Callable[[nn.Module, int], dict[str, torch.Tensor]] | None = None


@dataclass(frozen=True)
class Job:
    """One model to train (or load from the cache): a picklable description.

    ``model`` builds the untrained model (called after seeding); ``data`` returns ``(train_x, train_y)``
    (``train_y`` may be None); ``hooks``, if given, is called with the training device and returns the
    :class:`Hooks` (so evaluation tensors are made where the job runs, not shipped with it).
    """

    name: str
    model: Callable[[], nn.Module]
    data: Callable[[], tuple[torch.Tensor, torch.Tensor | None]]
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    binarize: bool = False
    lr_schedule: str = "constant"
    extra_key: Any = None
    data_key: Any = None
    hooks: Callable[[torch.device], Hooks] | None = None
    chapter: str = ""

    def describe(self) -> str:
        return f"chapter {self.chapter!r}, model {self.name!r}" if self.chapter else f"model {self.name!r}"


def run_job(job: Job, *, cache: Any = True, progress: bool | None = None,
            stop_after: int | None = None) -> FitResult:
    """Train one job (or load it): ``fit`` with the job's settings."""
    if not isinstance(job, Job):
        raise ParameterError(f"run_job needs a vaebook.jobs.Job, got {type(job).__name__}")
    train_x, train_y = job.data()
    hooks = job.hooks(resolve_device(job.device)) if job.hooks is not None else Hooks()
    return fit(job.model, train_x, train_y, epochs=job.epochs, batch_size=job.batch_size, lr=job.lr,
               seed=job.seed, device=job.device, binarize=job.binarize, name=job.name,
               data_key=job.data_key, extra_key=job.extra_key, epoch_end=hooks.epoch_end,
               snapshot=hooks.snapshot, cache=cache, progress=progress, stop_after=stop_after,
               lr_schedule=job.lr_schedule)


def train_all(jobs: Sequence[Job], *, cache: Any = True, progress: bool | None = None) -> list[FitResult]:
    """Train every job not in the cache and load the rest; the results in the order of ``jobs``."""
    jobs = list(jobs)
    bad = [type(j).__name__ for j in jobs if not isinstance(j, Job)]
    if bad:
        raise ParameterError(f"train_all needs vaebook.jobs.Job items, got {bad}")
    names = [j.name for j in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ParameterError(f"two jobs share the checkpoint name(s) {dupes}; give each model its own name")
    return [run_job(j, cache=cache, progress=progress) for j in jobs]
