"""Training throughput: the project's loop vs a pytorch-examples-style loop, side by side in one run.

    python bench/bench_training.py            # MLP VAE (3 rounds) and conv VAE (1 round), malloc check
    python bench/bench_training.py --quick    # fewer images, for a fast look

The project's loop (`vaebook.train.fit`) keeps MNIST as one float tensor on the device and batches by
indexing a shuffled permutation. The reference loop is what pytorch/examples' VAE does: a torch
DataLoader over a dataset that, like torchvision's MNIST, turns each uint8 image into a PIL image and then
a float tensor, one sample at a time, and collates batches in Python. Both train the same model with the
same loss, batch size and optimiser for one epoch; rounds alternate so drifting machine load hits both.
The glibc malloc settings from REFERENCE.md are measured the same way (the project loop in two
subprocesses, with and without them). Target: the project loop is >= 1.5x faster for the MLP VAE.
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
                       epochs=1, batch_size=batch_size, seed=seed, cache=False, device="cpu", progress=False)
    return float(result.history["seconds"].iloc[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 images, one round")
    parser.add_argument("--only-project", metavar="ARCH", help=argparse.SUPPRESS)  # subprocess mode
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    images, labels = data.load_mnist(train=True)
    n = args.n or (10_000 if args.quick else len(labels))
    images, labels = images[:n], labels[:n]
    x = data.to_float(images)
    batch = 128

    if args.only_project:
        times = [project_loop_epoch(args.only_project, x, batch, seed=s) for s in range(2)]
        print(json.dumps({"seconds": statistics.median(times)}))
        return 0

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {n} images, batch {batch}")
    rows = []
    for arch, rounds in (("mlp", 1 if args.quick else 3), ("conv", 1)):
        proj, ex = [], []
        for r in range(rounds):
            proj.append(project_loop_epoch(arch, x, batch, seed=r))
            ex.append(examples_loop_epoch(arch, images.numpy(), labels.numpy(), batch, seed=r))
        tp, te = statistics.median(proj), statistics.median(ex)
        rows.append((arch, n / tp, n / te, te / tp))
        print(f"{arch:5s} project loop {n / tp:8.0f} img/s ({tp:6.2f} s/epoch) | examples-style loop "
              f"{n / te:8.0f} img/s ({te:6.2f} s/epoch) | speed-up {te / tp:4.2f}x  (median of {rounds})")

    # glibc malloc settings: alternate subprocess runs with and without them
    env_plain = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    env_malloc = {**env_plain, **MALLOC_ENV}
    with_m, without_m = [], []
    for _ in range(1 if args.quick else 3):
        for env, bucket in ((env_plain, without_m), (env_malloc, with_m)):
            out = subprocess.run([sys.executable, __file__, "--only-project", "mlp", "--n", str(n)], env=env,
                                 capture_output=True, text=True, check=True)
            bucket.append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    a, b = statistics.median(without_m), statistics.median(with_m)
    print(f"malloc settings (MLP, project loop): without {a:.2f} s/epoch, with {b:.2f} s/epoch, "
          f"ratio {a / b:.2f}x")
    mlp_ratio = rows[0][3]
    print(f"TARGET MLP speed-up >= 1.5x: {'PASS' if mlp_ratio >= 1.5 else 'FAIL'} ({mlp_ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
