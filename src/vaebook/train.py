"""One training engine for every model in the book, with a load-or-train checkpoint cache.

A model takes part by implementing either

* ``training_loss(x, y) -> (loss, logs)`` (one optimiser; the engine steps it), or
* ``make_optimizers(lr) -> list`` and ``train_batch(x, y, optimizers) -> logs`` (e.g. a GAN's two).

:func:`fit` seeds everything, builds the model, batches by indexing tensors kept on the device, records
a per-epoch history, and after every epoch saves a checkpoint (weights, optimiser state, RNG state,
history, snapshots) atomically. The checkpoint's file name is a hash of the model's configuration, the
training parameters and the data selection: rerunning a chapter with the same parameters loads it, any
change trains anew, and a run interrupted at epoch k resumes from k with the same result it would have
had uninterrupted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import pickle
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from filelock import FileLock
from torch import nn
from tqdm import tqdm

from .config import ParameterError, validate_device
from .data import PROJECT_ROOT, binarize as binarize_images
from .io import atomic_torch_save, atomic_write_json

log = logging.getLogger("vaebook.train")
# 2: the key records the torch thread count, the precision and the memory format, which all change the
# trained bits (format 1 keys had none of them, so a checkpoint could not say how it was made).
FORMAT_VERSION = 2


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message names the epoch and batch."""


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Checkpoint folder: the argument, else ``$VAEBOOK_CACHE``, else ``cache/`` in the project."""
    if path is not None:
        return Path(path)
    env = os.environ.get("VAEBOOK_CACHE")
    return Path(env) if env else PROJECT_ROOT / "cache"


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    import random

    import numpy as np
    random.seed(seed)
    np.random.seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(validate_device(device))


def cache_key(model: nn.Module, params: dict[str, Any]) -> str:
    """A stable hash of what determines the trained weights."""
    model_part = model.cache_key() if hasattr(model, "cache_key") else {"class": type(model).__name__,
                                                                        "repr": repr(model)}
    blob = json.dumps({"format": FORMAT_VERSION, "model": model_part, "train": params},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def training_params(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor | None, *, epochs: int,
                    batch_size: int, lr: float, seed: int, binarize: bool, data_key: Any, extra_key: Any,
                    device: torch.device, lr_schedule: str, precision: str = "fp32",
                    channels_last: bool | None = None, threads: int | None = None) -> dict[str, Any]:
    """The training half of a checkpoint's cache key (the model's own ``cache_key`` is the other half)."""
    if data_key is None:
        data_key = {"shape": list(train_x.shape), "sum": float(train_x.double().sum()),
                    "labels": None if train_y is None else float(train_y.double().sum())}
    params = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "binarize": binarize,
              "optimizer": "adam-fused" if not hasattr(model, "make_optimizers") else "model's own",
              "data": data_key, "extra": extra_key, "device_type": device.type}
    params["lr_schedule"] = lr_schedule
    cl = channels_last if channels_last is not None else getattr(model, "channels_last", False)
    params["precision"] = precision
    params["memory_format"] = "channels_last" if cl else "contiguous"
    # On the CPU the thread count fixes the order of floating-point reductions, so it is part of the result.
    params["threads"] = (threads or torch.get_num_threads()) if device.type == "cpu" else None
    return params


def checkpoint_path(name: str, key: str, cache: bool | str | os.PathLike = True) -> Path | None:
    """Where the checkpoint of model ``name`` with cache key ``key`` lives (None when caching is off)."""
    return None if cache is False else cache_dir(None if cache is True else cache) / f"{name}-{key}.pt"


PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16). Without it oneDNN emulates
    bf16 and training is slower than in fp32, so ``precision="auto"`` keeps fp32 there."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap, reliable answer, so stay with fp32 unless forced
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, model: nn.Module, device: torch.device) -> str:
    """The precision a model trains in: ``"fp32"`` or ``"bf16"`` (autocast). ``"auto"`` takes the model's
    measured preference (its ``preferred_precision`` attribute, default fp32) where the hardware computes
    bf16 natively (CPU: :func:`cpu_has_fast_bf16`; CUDA: ``torch.cuda.is_bf16_supported()``)."""
    if precision not in PRECISIONS:
        raise ParameterError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    preferred = getattr(model, "preferred_precision", "fp32")
    if preferred == "bf16":
        native = cpu_has_fast_bf16() if device.type == "cpu" else (
            device.type == "cuda" and torch.cuda.is_bf16_supported())
        return "bf16" if native else "fp32"
    return "fp32"


@dataclass
class FitResult:
    model: nn.Module
    history: pd.DataFrame
    snapshots: dict[str, list[torch.Tensor]]
    path: Path | None
    loaded: bool                      # True when every epoch came from the cache
    resumed_from: int = 0             # epochs taken from a checkpoint before training went on
    notes: list[str] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return float(self.history["seconds"].median()) if len(self.history) else float("nan")


def _default_optimizers(model: nn.Module, lr: float, device: torch.device) -> list[torch.optim.Optimizer]:
    if hasattr(model, "make_optimizers"):
        return list(model.make_optimizers(lr))
    # The fused kernel updates all parameters in one pass: on 2 CPU cores it cuts the MLP VAE's optimiser
    # time per epoch from ~0.6 s to ~0.25 s (bench/bench_training.py measures the whole loop).
    fused = device.type in ("cpu", "cuda")
    return [torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)]


LR_SCHEDULES = ("constant", "onecycle")


def _schedulers(optimizers, lr_schedule: str, lr: float, total_steps: int) -> list:
    if lr_schedule == "constant":
        return []
    return [torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps) for opt in optimizers]


def _train_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizers,
                 autocast: contextlib.AbstractContextManager) -> dict[str, float]:
    if hasattr(model, "train_batch"):  # the model steps its own optimisers, forward and backward under autocast
        with autocast:
            return model.train_batch(x, y, optimizers)
    (opt,) = optimizers
    opt.zero_grad(set_to_none=True)
    with autocast:  # the forward pass in reduced precision where chosen; backward outside, as torch advises
        loss, logs = model.training_loss(x, y)
    if not torch.isfinite(loss):
        return {"loss": float(loss.item())}
    loss.backward()
    opt.step()
    return logs


def _load_checkpoint(path: Path) -> dict | None:
    """Load a checkpoint safely; report (not crash on) a damaged file and return None."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        msg = f"checkpoint {path} is damaged ({type(exc).__name__}: {str(exc)[:120]}); training anew"
        log.warning(msg)
        print(msg, file=sys.stderr)
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION or "model" not in state:
        msg = f"checkpoint {path} has an unexpected layout; training anew"
        log.warning(msg)
        print(msg, file=sys.stderr)
        return None
    return state


STATUS_ENV = "VAEBOOK_STATUS_DIR"


def report_training(name: str | None, epoch: int = 0, epochs: int = 0) -> None:
    """Say which model this process is training, for whoever stops the run (``python -m vaebook.book``
    names it in its one-line message): ``$VAEBOOK_STATUS_DIR/PID.json`` while training, removed after.
    Does nothing when the variable is unset."""
    folder = os.environ.get(STATUS_ENV)
    if not folder:
        return
    path = Path(folder) / f"{os.getpid()}.json"
    try:
        if name is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write_json(path, {"model": name, "epoch": epoch, "epochs": epochs})
    except OSError:  # a status line is never worth failing a training run for
        pass


def read_training_status(folder: str | os.PathLike) -> list[dict]:
    """What :func:`report_training` left in ``folder``: one ``{"model", "epoch", "epochs"}`` per process."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def fit(build: Callable[[], nn.Module], train_x: torch.Tensor, train_y: torch.Tensor | None = None, *,
        epochs: int, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
        device: str | torch.device = "auto", binarize: bool = False, name: str = "model",
        data_key: Any = None, extra_key: Any = None,
        epoch_end: Callable[[nn.Module, int], dict[str, float]] | None = None,
        snapshot: Callable[[nn.Module, int], dict[str, torch.Tensor]] | None = None,
        cache: bool | str | os.PathLike = True, progress: bool | None = None,
        stop_after: int | None = None, lr_schedule: str = "constant", precision: str = "auto",
        channels_last: bool | None = None) -> FitResult:
    """Train ``build()`` on ``train_x`` (and labels ``train_y``) or load it from the cache.

    Parameters
    ----------
    build: makes the model; called after seeding so its initial weights depend only on ``seed``.
    data_key: what identifies the data selection (e.g. "MNIST train, digits [1, 4, 8], 5000 images");
        defaults to the tensor's shape and a checksum of its contents.
    extra_key: anything else the result depends on (e.g. which snapshots are taken).
    epoch_end: called after each epoch with the model in eval mode and gradients off; returns metrics
        (floats) added to the history. It runs on a forked RNG, so it does not change the training.
    snapshot: like ``epoch_end`` but returns small tensors kept per epoch (e.g. latent codes for a GIF).
    cache: True (default folder), False (no checkpoint), or a folder.
    progress: tqdm bar; None shows it on a terminal only, so executed notebooks stay clean.
    stop_after: stop (as if interrupted) after this many epochs in this call; for tests and demos.
    precision: "fp32", "bf16" (the forward pass under ``torch.autocast`` in bfloat16; weights, optimiser state
        and evaluation hooks stay fp32) or "auto" (see :func:`resolve_precision`).
    channels_last: train in the channels-last memory format; None takes the model's ``channels_last``
        attribute (default False). Precision, memory format and the torch thread count are part of the
        cache key (each changes the trained bits).
    lr_schedule: "constant" (``lr`` throughout) or "onecycle" (``torch.optim.lr_scheduler.OneCycleLR``
        with peak ``lr`` over all ``epochs``, stepped per batch; its state is checkpointed, so a resumed
        run follows the same schedule).
    """
    for label, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ParameterError(f"{label} must be an integer >= 1, got {value!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ParameterError(f"lr must be a finite number > 0, got {lr!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ParameterError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if len(train_x) == 0:
        raise ParameterError("the training set is empty; check the digit selection and subset size")
    dev = resolve_device(device)
    n_batches = math.ceil(len(train_x) / batch_size)

    seed_everything(seed)
    model = build().to(dev)
    if channels_last is None:
        channels_last = bool(getattr(model, "channels_last", False))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    precision = resolve_precision(precision, model, dev)
    if dev.type == "cuda":  # TF32 matmuls where reduced precision was chosen; exact fp32 otherwise
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision != "fp32"
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=(precision == "bf16"))
    optimizers = _default_optimizers(model, lr, dev)
    schedulers = _schedulers(optimizers, lr_schedule, lr, epochs * n_batches)
    key = cache_key(model, training_params(model, train_x, train_y, epochs=epochs, batch_size=batch_size, lr=lr,
                                           seed=seed, binarize=binarize, data_key=data_key, extra_key=extra_key,
                                           device=dev, lr_schedule=lr_schedule, precision=precision,
                                           channels_last=channels_last))
    path = checkpoint_path(name, key, cache)

    # Two processes (e.g. Dask workers of two clusters sharing a cache) never train the same checkpoint at
    # once: the second waits here, then finds the first one's epochs in the checkpoint.
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{path}.lock") if path is not None else contextlib.nullcontext()
    with lock:
        history: list[dict[str, float]] = []
        snapshots: dict[str, list[torch.Tensor]] = {}
        shuffle_gen = torch.Generator().manual_seed(seed)
        start_epoch, notes = 0, []

        state = _load_checkpoint(path) if path is not None and path.exists() else None
        if state is not None:
            try:
                model.load_state_dict(state["model"])
                for opt, opt_state in zip(optimizers, state["optimizers"]):
                    opt.load_state_dict(opt_state)
                for sched, sched_state in zip(schedulers, state.get("schedulers", [])):
                    sched.load_state_dict(sched_state)
                if len(state.get("schedulers", [])) != len(schedulers):
                    raise ValueError("the checkpoint's learning-rate schedulers do not match")
            except (RuntimeError, KeyError, ValueError) as exc:
                notes.append(f"checkpoint {path} does not fit this model ({exc}); training anew")
                print(notes[-1], file=sys.stderr)
                seed_everything(seed)
                model = build().to(dev).to(memory_format=memory_format)
                optimizers = _default_optimizers(model, lr, dev)
                schedulers = _schedulers(optimizers, lr_schedule, lr, epochs * n_batches)
            else:
                history = [dict(row) for row in state["history"]]
                snapshots = {k: list(v) for k, v in state["snapshots"].items()}
                start_epoch = int(state["epoch"])
                shuffle_gen.set_state(state["shuffle_rng"])
                torch.set_rng_state(state["torch_rng"])
                if dev.type == "cuda" and state.get("cuda_rng") is not None:
                    torch.cuda.set_rng_state(state["cuda_rng"], dev)
                if start_epoch < epochs:
                    notes.append(f"resumed from epoch {start_epoch} of {epochs} ({path.name})")

        x_dev = train_x.to(dev)
        y_dev = None if train_y is None else train_y.to(dev)
        trained_now = 0
        for epoch in range(start_epoch + 1, epochs + 1):
            if stop_after is not None and trained_now >= stop_after:
                break
            report_training(name, epoch, epochs)
            model.train()
            t0 = time.perf_counter()
            perm = torch.randperm(len(x_dev), generator=shuffle_gen).to(dev)
            sums: dict[str, float] = {}
            seen = 0
            bar = tqdm(range(n_batches), desc=f"{name} epoch {epoch}/{epochs}", leave=False,
                       disable=(None if progress is None else not progress), file=sys.stderr)
            for b in bar:
                idx = perm[b * batch_size:(b + 1) * batch_size]
                xb = x_dev[idx].contiguous(memory_format=memory_format)
                if binarize:
                    xb = binarize_images(xb)
                yb = None if y_dev is None else y_dev[idx]
                logs = _train_batch(model, xb, yb, optimizers, autocast)
                for sched in schedulers:
                    sched.step()
                bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
                if bad:
                    raise TrainingError(
                        f"{name}: {', '.join(f'{k}={v}' for k, v in bad.items())} at epoch {epoch}, batch "
                        f"{b + 1}/{n_batches}; lower the learning rate (lr={lr}) or check the input data")
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v * len(idx)
                seen += len(idx)
            bar.close()
            row = {"epoch": epoch, **{k: v / seen for k, v in sums.items()}}
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            row["seconds"] = time.perf_counter() - t0
            if epoch_end is not None or snapshot is not None:
                model.eval()
                with torch.no_grad(), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                    if epoch_end is not None:
                        row.update({k: float(v) for k, v in epoch_end(model, epoch).items()})
                    if snapshot is not None:
                        for k, v in snapshot(model, epoch).items():
                            snapshots.setdefault(k, []).append(v.detach().cpu())
            history.append(row)
            trained_now += 1
            if path is not None:
                atomic_torch_save(path, {
                    "format": FORMAT_VERSION, "key": key, "name": name, "epoch": epoch,
                    "model": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
                    "schedulers": [sc.state_dict() for sc in schedulers],
                    "history": history, "snapshots": snapshots, "shuffle_rng": shuffle_gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
                })
    report_training(None)
    model.eval()
    return FitResult(model=model, history=pd.DataFrame(history), snapshots=snapshots, path=path,
                     loaded=(trained_now == 0 and start_epoch >= epochs), resumed_from=start_epoch,
                     notes=notes)
