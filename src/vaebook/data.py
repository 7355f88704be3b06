"""MNIST from its four original IDX files, as tensors, without torchvision.

Why not torchvision: on a CPU-only torch its CUDA build fails to import ("operator torchvision::nms does
not exist") and, while installed, also breaks ``import torchmetrics``. Reading IDX takes a few lines, and
holding the whole set as one tensor lets training batch by indexing instead of per-sample Python work.

Files live in ``<root>/MNIST/raw/`` (torchvision's layout, so an existing torchvision cache is reused);
``root`` comes from the ``VAEBOOK_DATA`` environment variable, default ``data/`` in the project.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from .io import atomic_write_bytes

FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class DataError(RuntimeError):
    """MNIST is missing or damaged; the message names the files, the folder, and what to do."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else ``$VAEBOOK_DATA``, else ``data/`` in the project."""
    if root is not None:
        return Path(root)
    env = os.environ.get("VAEBOOK_DATA")
    return Path(env) if env else PROJECT_ROOT / "data"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _download(name: str, dest: Path, timeout: float) -> str | None:
    """Fetch one file from the mirrors into ``dest`` atomically; return None or the last error."""
    error = None
    for mirror in MIRRORS:
        try:
            with urllib.request.urlopen(mirror + name, timeout=timeout) as response:
                payload = response.read()
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            error = f"{mirror}{name}: {exc}"
            continue
        if hashlib.md5(payload).hexdigest() != FILES[name]:
            error = f"{mirror}{name}: md5 mismatch"
            continue
        atomic_write_bytes(dest, payload)
        return None
    return error


def ensure_mnist(root: str | os.PathLike | None = None, download: bool = True, timeout: float = 20.0) -> Path:
    """Return ``<root>/MNIST/raw``, downloading missing files (md5-checked, atomic) when allowed."""
    raw = data_root(root) / "MNIST" / "raw"
    missing = [n for n in FILES if not (raw / n).is_file()]
    errors = []
    if missing and download:
        raw.mkdir(parents=True, exist_ok=True)
        for name in list(missing):
            err = _download(name, raw / name, timeout)
            if err is None:
                missing.remove(name)
            else:
                errors.append(err)
                break  # offline: one failure is enough to know; do not wait on every file
    if missing:
        hint = f" (last error: {errors[-1]})" if errors else ""
        raise DataError(
            f"MNIST files missing from {raw}: {', '.join(missing)}{hint}. Download them (e.g. from "
            f"{MIRRORS[0]}) into that folder, or set VAEBOOK_DATA to a folder that holds MNIST/raw/.")
    return raw


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            payload = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable gzip file ({exc}); delete it and download it again") from exc
    if len(payload) < 4 or payload[0] != 0 or payload[1] != 0 or payload[2] != 0x08 or payload[3] != expected_dims:
        raise DataError(f"{path} is not an IDX file of unsigned bytes with {expected_dims} dimensions; "
                        "delete it and download it again")
    shape = tuple(int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(expected_dims))
    offset = 4 + 4 * expected_dims
    if len(payload) - offset != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, body has {len(payload) - offset} bytes")
    return np.frombuffer(payload, dtype=np.uint8, offset=offset).reshape(shape)


_CACHE: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}


def load_mnist(train: bool = True, root: str | os.PathLike | None = None,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, 28, 28) and labels as int64 (N,). Cached per process."""
    raw = ensure_mnist(root, download=download)
    key = (str(raw.resolve()), train)
    if key not in _CACHE:
        prefix = "train" if train else "t10k"
        images = _read_idx(raw / f"{prefix}-images-idx3-ubyte.gz", 3)
        labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", 1)
        if len(images) != len(labels):
            raise DataError(f"{raw}: {len(images)} images but {len(labels)} labels in the {prefix} files")
        _CACHE[key] = (torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))
    return _CACHE[key]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1]."""
    return images.to(torch.float32).div_(255.0).unsqueeze(1)


@dataclass
class Split:
    """Float images (N, 1, 28, 28) in [0, 1] and int64 labels, plus where they came from."""

    x: torch.Tensor
    y: torch.Tensor
    description: str

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device), self.description)


def select(images: torch.Tensor, labels: torch.Tensor, digits: Sequence[int] | None = None,
           subset: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the given digits, then (optionally) a seeded random subset of ``subset`` images."""
    if digits is not None:
        keep = torch.isin(labels, torch.as_tensor(list(digits), dtype=labels.dtype))
        images, labels = images[keep], labels[keep]
    if subset is not None and subset < len(labels):
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(labels), generator=g)[:subset].sort().values
        images, labels = images[idx], labels[idx]
    return images, labels


def mnist_splits(digits: Sequence[int] | None = None, train_subset: int | None = None,
                 test_subset: int | None = None, val_fraction: float = 0.0, seed: int = 0,
                 root: str | os.PathLike | None = None) -> dict[str, Split]:
    """Train (and optionally validation) and test splits as float tensors.

    The validation split is a fixed, seeded fraction of the (selected) training images, so it is the same
    every run with the same seed. Subsets are drawn before the split.
    """
    xtr, ytr = select(*load_mnist(True, root), digits=digits, subset=train_subset, seed=seed)
    xte, yte = select(*load_mnist(False, root), digits=digits, subset=test_subset, seed=seed + 1)
    which = "all digits" if digits is None else f"digits {list(digits)}"
    out: dict[str, Split] = {}
    if val_fraction > 0:
        g = torch.Generator().manual_seed(seed + 2)
        perm = torch.randperm(len(ytr), generator=g)
        n_val = int(round(val_fraction * len(ytr)))
        val_idx, tr_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
        out["val"] = Split(to_float(xtr[val_idx]), ytr[val_idx], f"MNIST train (validation part), {which}")
        xtr, ytr = xtr[tr_idx], ytr[tr_idx]
    out["train"] = Split(to_float(xtr), ytr, f"MNIST train, {which}")
    out["test"] = Split(to_float(xte), yte, f"MNIST test, {which}")
    return out


def training_tensors(digits: Sequence[int] | None = None, subset: int | None = None,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST training images (float, (N, 1, 28, 28) in [0, 1]) and labels of the given digits, optionally
    a seeded subset: the same selection as ``mnist_splits(digits, subset, seed=seed)["train"]``. A picklable
    data loader for a :class:`vaebook.jobs.Job` (``partial(training_tensors, subset=2000)``)."""
    split = mnist_splits(digits=digits, train_subset=subset, seed=seed)["train"]
    return split.x, split.y


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each pixel is a Bernoulli draw with its intensity as probability."""
    return torch.bernoulli(x, generator=generator)


def random_translate(x: torch.Tensor, max_pixels: float = 2.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image of ``x`` (N, C, H, W) by its own random offset, uniform in ±``max_pixels`` on
    each axis (sub-pixel offsets bilinearly interpolated), filling uncovered pixels with 0.

    Training-time augmentation for the digit classifier: small shifts are label-preserving on MNIST; in
    a 6-epoch one-cycle run they cut its test error from 0.94% to 0.78% (measured on this book's machine).
    ``F.affine_grid``/``grid_sample`` do the whole batch in one call.
    """
    if x.ndim != 4:
        raise ValueError(f"random_translate expects (N, C, H, W) images, got shape {tuple(x.shape)}")
    if not max_pixels >= 0:
        raise ValueError(f"max_pixels must be >= 0, got {max_pixels!r}")
    if max_pixels == 0:
        return x
    n = len(x)
    shift = (torch.rand(n, 2, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * max_pixels
    return translate(x, shift)


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift image i of ``x`` (N, C, H, W) by ``shift[i] = (dx, dy)`` pixels (right, down), zero fill."""
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    # affine_grid works in [-1, 1] coordinates where the width spans 2: one pixel is 2 / W; the grid
    # says where each output pixel samples from, so a shift right by dx samples from x - dx.
    theta[:, 0, 2] = -shift[:, 0].to(x.dtype) * 2 / w
    theta[:, 1, 2] = -shift[:, 1].to(x.dtype) * 2 / h
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def batches(x: torch.Tensor, batch_size: int, shuffle: bool = True, generator: torch.Generator | None = None,
            *others: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
    """Mini-batches by indexing one (pre-shuffled) tensor on its device: no per-sample Python work."""
    n = len(x)
    if shuffle:
        perm = torch.randperm(n, generator=generator).to(x.device)
        x = x[perm]
        others = tuple(o[perm] for o in others)
    for start in range(0, n, batch_size):
        yield (x[start:start + batch_size],) + tuple(o[start:start + batch_size] for o in others)
