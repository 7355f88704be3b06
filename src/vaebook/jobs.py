"""A chapter's models as data: picklable training jobs, and one call that trains what is missing.

A :class:`Job` says everything :func:`vaebook.train.fit` needs, as values and module-level callables (so
it pickles and can be sent to another process or machine): the model factory (e.g.
``partial(VAE, VAEConfig(...))``), the loader of the training tensors, the training parameters, and a
factory of the per-epoch hooks. A chapter module turns its parameters into a list of them
(``vaebook.chapters.NAME.jobs(run)``), and the notebook calls :func:`train_all`, which loads every job
already in the checkpoint cache and trains the rest. The cache key is what :func:`vaebook.train.cache_key`
hashes (model config, training parameters, data selection), exactly as when the notebook called ``fit``.

Missing jobs can train side by side on Dask distributed (:func:`train_all` with ``workers`` or
``scheduler``): on one machine a ``LocalCluster`` of processes, or any cluster given by its scheduler
address. Workers only write checkpoints to the shared cache; the calling process then loads every result
from the cache, so what it returns does not depend on where a job ran.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .config import ParameterError
from .train import (FitResult, _load_checkpoint, cache_key, checkpoint_path, fit, resolve_device,
                    resolve_precision, training_params)


class JobError(RuntimeError):
    """One or more jobs failed; the message names each job's chapter, model and epoch."""


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
    :class:`Hooks` (so evaluation tensors are made where the job runs, not shipped with it). ``threads``,
    if set, is the number of torch threads the job trains with wherever it runs.
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
    threads: int | None = None
    precision: str = "auto"
    channels_last: bool | None = None

    def describe(self) -> str:
        return f"chapter {self.chapter!r}, model {self.name!r}" if self.chapter else f"model {self.name!r}"


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (unchanged when None), restoring the number afterwards."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_job(job: Job, *, cache: Any = True, progress: bool | None = None,
            stop_after: int | None = None) -> FitResult:
    """Train one job (or load it): ``fit`` with the job's settings."""
    if not isinstance(job, Job):
        raise ParameterError(f"run_job needs a vaebook.jobs.Job, got {type(job).__name__}")
    train_x, train_y = job.data()
    hooks = job.hooks(resolve_device(job.device)) if job.hooks is not None else Hooks()
    with torch_threads(job.threads):
        return fit(job.model, train_x, train_y, epochs=job.epochs, batch_size=job.batch_size, lr=job.lr,
                   seed=job.seed, device=job.device, binarize=job.binarize, name=job.name,
                   data_key=job.data_key, extra_key=job.extra_key, epoch_end=hooks.epoch_end,
                   snapshot=hooks.snapshot, cache=cache, progress=progress, stop_after=stop_after,
                   lr_schedule=job.lr_schedule, precision=job.precision, channels_last=job.channels_last)


def job_path(job: Job, cache: Any = True) -> Path | None:
    """Where the job's checkpoint lives (None when caching is off): the key ``fit`` computes, without training."""
    train_x, train_y = job.data()
    with torch.random.fork_rng(devices=[]):  # building the model draws initial weights: leave no trace
        model = job.model()
    device = resolve_device(job.device)
    key = cache_key(model, training_params(model, train_x, train_y, epochs=job.epochs, batch_size=job.batch_size,
                                           lr=job.lr, seed=job.seed, binarize=job.binarize,
                                           data_key=job.data_key, extra_key=job.extra_key, device=device,
                                           lr_schedule=job.lr_schedule,
                                           precision=resolve_precision(job.precision, model, device),
                                           channels_last=job.channels_last, threads=job.threads))
    return checkpoint_path(job.name, key, cache)


def job_checkpoint(job: Job, cache: Any = True) -> tuple[Path | None, int]:
    """The job's checkpoint path and how many epochs it holds (0 when absent), without training."""
    path = job_path(job, cache)
    if path is None or not path.exists():
        return path, 0
    state = _load_checkpoint(path)
    return path, 0 if state is None else int(state["epoch"])


def _check_jobs(jobs: Sequence[Job]) -> list[Job]:
    jobs = list(jobs)
    bad = [type(j).__name__ for j in jobs if not isinstance(j, Job)]
    if bad:
        raise ParameterError(f"train_all needs vaebook.jobs.Job items, got {bad}")
    names = [j.name for j in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ParameterError(f"two jobs share the checkpoint name(s) {dupes}; give each model its own name")
    return jobs


def local_workers(jobs: Sequence[Job]) -> int:
    """How many jobs train side by side on this machine: ``$VAEBOOK_WORKERS`` if set, else as many as the
    cores hold at the jobs' thread counts (cores // threads), never more than the jobs. GPU jobs: one."""
    env = os.environ.get("VAEBOOK_WORKERS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ParameterError(f"VAEBOOK_WORKERS must be an integer >= 1, got {env!r}; e.g. VAEBOOK_WORKERS=2")
        return min(int(env), max(1, len(jobs)))
    if any(resolve_device(j.device).type != "cpu" for j in jobs):
        return 1
    threads = max([j.threads or torch.get_num_threads() for j in jobs] or [1])
    return max(1, min(len(jobs), (os.cpu_count() or 1) // threads))


def train_all(jobs: Sequence[Job], *, cache: Any = True, progress: bool | None = None,
              workers: int | None = None, scheduler: str | None = None) -> list[FitResult]:
    """Train every job not in the cache and load the rest; the results in the order of ``jobs``.

    The missing jobs train side by side on Dask (see :func:`train_on_dask`): on the cluster of
    ``scheduler`` (a Dask scheduler address such as ``tcp://host:8786``, default ``$VAEBOOK_SCHEDULER``), or
    else on a local cluster of ``workers`` processes (default :func:`local_workers`) when that is two or
    more and two or more jobs are missing. Otherwise they train here, one after another. Either way every
    result is then loaded here from the cache, and a job gives the same bits wherever it ran (it fixes its
    thread count).
    """
    jobs = _check_jobs(jobs)
    scheduler = scheduler or os.environ.get("VAEBOOK_SCHEDULER") or None
    trained_on_dask: set[str] = set()
    if scheduler is not None or (cache is not False and len(jobs) >= 2):
        missing = [j for j in jobs if job_checkpoint(j, cache)[1] < j.epochs]
        n = local_workers(missing) if workers is None else min(workers, len(missing))
        if missing and (scheduler is not None or (n >= 2 and len(missing) >= 2)):
            train_on_dask(missing, cache=cache, workers=n, scheduler=scheduler, progress=progress)
            trained_on_dask = {j.name for j in missing}
    results = [run_job(j, cache=cache, progress=progress) for j in jobs]
    # trained in this call, on a worker, then loaded here: not "from the cache" as far as the caller knows
    return [dataclasses.replace(r, loaded=False) if j.name in trained_on_dask else r for j, r in zip(jobs, results)]


# --- Dask ----------------------------------------------------------------------------------------------

def _train_in_worker(job: Job, cache: Any) -> dict[str, Any]:
    """What a Dask worker runs: train the job into the shared cache (or find it there)."""
    t0 = time.perf_counter()
    try:
        result = run_job(job, cache=cache, progress=False)
    except Exception as exc:  # one line that names the job and the epoch; the traceback stays on the worker
        _, done = job_checkpoint(job, cache)
        raise JobError(f"{job.describe()} failed after epoch {done} of {job.epochs} "
                       f"({type(exc).__name__}: {exc}); its checkpoint is kept and a rerun resumes from it"
                       ) from None
    return {"name": job.name, "seconds": time.perf_counter() - t0, "resumed_from": result.resumed_from,
            "loaded": result.loaded, "worker_pid": os.getpid()}


# Environment of local Dask workers. Dask's nanny starts each worker with MALLOC_TRIM_THRESHOLD_=65536, which
# made a one-thread conv VAE 1.5x slower here (1,896 against 2,862 images/s at batch 32, bf16); the workers get
# the glibc malloc settings `make` uses instead (bench/bench_training.py: conv VAE 1.5x faster with them).
# One BLAS/OpenMP thread by default; a job sets its own torch thread count.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "268435456",
              "MALLOC_TOP_PAD_": "67108864", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1"}


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: connected to ``scheduler``, or to a new ``LocalCluster`` of ``workers`` processes
    with one thread each (closed afterwards)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    n = workers or max(1, os.cpu_count() or 1)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENV}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                         # no dashboard, and the scheduler's HTTP endpoint on a free loopback port:
                         # dashboard_address=None still binds :8787 and warns into the page when it is taken
                         dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False}
                         ) as cluster, Client(cluster) as client:
        yield client


def train_on_dask(jobs: Sequence[Job], *, cache: Any = True, workers: int | None = None,
                  scheduler: str | None = None, progress: bool | None = None,
                  client: Any = None) -> list[dict[str, Any]]:
    """Train ``jobs`` on Dask, side by side; return one summary per job (in order).

    Each task's key is the job's checkpoint name, so a scheduler never runs the same job twice at once,
    and :func:`vaebook.train.fit` holds a file lock on the checkpoint, so neither do two clusters sharing a
    cache. A worker that dies mid-job leaves its last epoch checkpoint; Dask reruns the task on another
    worker, which resumes from it. A job that raises is reported (chapter, model, epoch) after the others
    have finished and been kept.
    """
    from distributed import as_completed
    from tqdm import tqdm

    jobs = _check_jobs(jobs)
    if cache is False:
        raise ParameterError("training on Dask needs the checkpoint cache (cache=False was given)")
    cache_path = str(checkpoint_path("x", "y", cache).parent)  # workers get the resolved folder
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(workers, scheduler))
        futures = {}
        for job in jobs:
            key = f"vaebook-train-{job_path(job, cache).stem}"
            fut = client.submit(_train_in_worker, job, cache_path, key=key, retries=1)
            futures[fut] = job
        summaries: dict[str, dict] = {}
        errors: list[str] = []
        # On the terminal only: inside a notebook kernel sys.__stderr__ is still the terminal of `make book`,
        # while sys.stderr would print into the page.
        terminal = sys.__stderr__
        show = progress if progress is not None else bool(terminal and terminal.isatty())
        bar = tqdm(total=len(jobs), desc=f"training {len(jobs)} jobs on Dask", unit="job", file=terminal,
                   disable=not show)
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                summaries[job.name] = fut.result()
            except JobError as exc:
                errors.append(str(exc))
            except Exception as exc:  # e.g. KilledWorker after repeated worker deaths
                errors.append(f"{job.describe()} failed on Dask ({type(exc).__name__}: {exc}); "
                              "a rerun resumes from its last checkpoint")
            bar.update()
        bar.close()
    if errors:
        raise JobError("; ".join(errors))
    return [summaries[j.name] for j in jobs]
