"""Training throughput: the project's loop vs a pytorch-examples-style loop, side by side in one run.

    python bench/bench_training.py            # MLP VAE (5 rounds) and conv VAE (1 round)
    python bench/bench_training.py --quick    # 10,000 images, one round

The project's loop (`vaebook.train.fit`) keeps MNIST as one float tensor on the device, batches by
indexing a shuffled permutation, and steps a fused Adam. The reference loop is what pytorch/examples'
VAE does: a torch DataLoader over a dataset that, like torchvision's MNIST, turns each uint8 image into a
PIL image and then a float tensor, one sample at a time, with the default Adam. Both train the same model
with the same loss and batch size for one epoch. Every timing is one epoch in a fresh process, so glibc's
malloc settings (read at process start) can be compared too: the project loop runs with and without the
settings that `make` uses (see the Makefile), the reference loop without. Rounds interleave the three, so
drifting machine load hits all of them. Target: the project loop, as `make` runs it, is >= 1.5x faster
than the examples-style loop for the MLP VAE.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from vaebook import data, train
from vaebook.models import VAE, VAEConfig

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "268435456",
              "MALLOC_TOP_PAD_": "67108864"}


class PerSampleMNIST(Dataset):
    """torchvision.datasets.MNIST's __getitem__ without torchvision: uint8 -> PIL -> ToTensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).unsqueeze(0)  # ToTensor()
        return x, int(self.labels[i])


def examples_loop_epoch(arch: str, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = VAE(VAEConfig(latent_size=20 if arch == "mlp" else 16, arch=arch))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(PerSampleMNIST(images, labels), batch_size=batch_size, shuffle=True)
    model.train()
    t0 = time.perf_counter()
    for x, _ in loader:
        opt.zero_grad()
        loss = model.elbo_terms(x).loss
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def project_loop_epoch(arch: str, x: torch.Tensor, batch_size: int, seed: int) -> float:
    result = train.fit(lambda: VAE(VAEConfig(latent_size=20 if arch == "mlp" else 16, arch=arch)), x,
                       epochs=1, batch_size=batch_size, seed=seed, cache=False, device="cpu", progress=False,
                       precision="auto")  # as the book trains: the conv VAE in bf16 + channels_last here
    return float(result.history["seconds"].iloc[0])


class WorkerFailed(RuntimeError):
    pass


def _worker(kind: str, arch: str, n: int, seed: int, env: dict) -> float:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--arch", arch, "--n", str(n),
                          "--seed", str(seed)], env=env, capture_output=True, text=True)
    if out.returncode != 0:  # the worker's own last line says why (e.g. MNIST not found), not a traceback of ours
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        raise WorkerFailed(lines[-1] if lines else f"worker exited with {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 images, one round")
    parser.add_argument("--worker", choices=["project", "examples"], help=argparse.SUPPRESS)
    parser.add_argument("--arch", default="mlp", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch = 128

    if args.worker:  # one timed epoch in a fresh process, so each gets the malloc settings it was started with
        images, labels = data.load_mnist(train=True)
        images, labels = images[:args.n], labels[:args.n]
        if args.worker == "project":
            seconds = project_loop_epoch(args.arch, data.to_float(images), batch, args.seed)
        else:
            seconds = examples_loop_epoch(args.arch, images.numpy(), labels.numpy(), batch, args.seed)
        print(json.dumps({"seconds": seconds}))
        return 0

    n = 10_000 if args.quick else 60_000
    env_plain = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    env_malloc = {**env_plain, **MALLOC_ENV}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {n} images, batch {batch}; "
          "each number is the median of rounds of one epoch in a fresh process, rounds interleaved")
    mlp_ratio = float("nan")
    for arch, rounds in (("mlp", 1 if args.quick else 5), ("conv", 1)):
        times = {"project+malloc": [], "project": [], "examples": []}
        for r in range(rounds):
            times["project+malloc"].append(_worker("project", arch, n, r, env_malloc))
            times["project"].append(_worker("project", arch, n, r, env_plain))
            times["examples"].append(_worker("examples", arch, n, r, env_plain))
        med = {k: statistics.median(v) for k, v in times.items()}
        as_run = med["examples"] / med["project+malloc"]
        print(f"{arch:5s} examples-style loop {n / med['examples']:7.0f} img/s ({med['examples']:6.2f} s/epoch) | "
              f"project loop {n / med['project']:7.0f} img/s ({med['project']:6.2f} s) | project loop with "
              f"malloc settings (as make runs it) {n / med['project+malloc']:7.0f} img/s "
              f"({med['project+malloc']:6.2f} s)")
        print(f"      speed-up: loop alone {med['examples'] / med['project']:.2f}x, malloc settings "
              f"{med['project'] / med['project+malloc']:.2f}x, together {as_run:.2f}x  (median of {rounds})")
        if arch == "mlp":
            mlp_ratio = as_run
    print(f"TARGET MLP speed-up >= 1.5x (project loop as make runs it vs examples-style): "
          f"{'PASS' if mlp_ratio >= 1.5 else 'FAIL'} ({mlp_ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except WorkerFailed as exc:
        print(f"bench_training: {exc}", file=sys.stderr)
        sys.exit(1)
