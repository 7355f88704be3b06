"""Training throughput per architecture and numeric set-up, side by side in one run.

    python bench/bench_precision.py              # every architecture, 3 interleaved rounds
    python bench/bench_precision.py --quick      # one round, fewer images
    python bench/bench_precision.py --models conv_vae,gan --threads 1

For each architecture of the book (MLP VAE, conv VAE, flow-VAE with planar K = 16, GAN, MNIST classifier)
and each set-up (fp32; channels_last; bf16 autocast; bf16 + channels_last) one process trains two short
epochs with the book's training engine (`vaebook.train.fit`, no cache) and reports the second epoch's
images per second (the first warms up oneDNN's kernel caches). Every measurement is a fresh process;
rounds interleave the set-ups so drifting machine load hits all of them; the table shows medians and the
ratio to fp32. Whether a faster set-up also trains as well is measured by bench/bench_precision_quality.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from functools import partial

SETUPS = {"fp32": ("fp32", False), "channels_last": ("fp32", True), "bf16": ("bf16", False),
          "bf16+channels_last": ("bf16", True)}
MODELS = ("mlp_vae", "conv_vae", "flow_vae", "gan", "classifier")
CONV = ("conv_vae", "gan", "classifier")  # channels_last only means something for convolutions
# Images per timed epoch, about 3-5 s each at fp32: the GAN is ~15x slower per image than the conv VAE.
IMAGES = {"mlp_vae": 12_000, "conv_vae": 4_000, "flow_vae": 3_000, "gan": 640, "classifier": 5_000}


def build(model: str, channels_last: bool):
    """The architecture as the book trains it; ``channels_last`` set on the instance."""
    from vaebook.classifier import MNISTClassifier
    from vaebook.flow_vae import FlowVAE, FlowVAEConfig
    from vaebook.gan import GAN
    from vaebook.models import VAE, VAEConfig

    net = {"mlp_vae": partial(VAE, VAEConfig(latent_size=20, arch="mlp", hidden_size=400)),
           "conv_vae": partial(VAE, VAEConfig(latent_size=16, arch="conv")),
           "flow_vae": partial(FlowVAE, FlowVAEConfig(latent_size=20, flow="planar", n_flows=16)),
           "gan": GAN, "classifier": MNISTClassifier}[model]()
    net.channels_last = channels_last
    return net


def worker(model: str, setup: str, n: int, threads: int) -> dict:
    import torch

    from vaebook import data
    from vaebook.train import fit

    torch.set_num_threads(threads)
    precision, channels_last = SETUPS[setup]
    x, y = data.training_tensors(subset=n, seed=0)
    result = fit(partial(build, model, channels_last), x, y if model == "classifier" else None, epochs=2,
                 batch_size=64 if model == "gan" else 128, lr=2e-4 if model == "gan" else 1e-3, seed=0,
                 device="cpu", cache=False, progress=False, precision=precision,
                 binarize=(model == "flow_vae"))
    return {"images_per_s": n / float(result.history["seconds"].iloc[1])}


def run_worker(model: str, setup: str, n: int, threads: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--worker", model, setup, str(n), "--threads", str(threads)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        raise SystemExit(f"bench_precision: {model}/{setup}: {lines[-1] if lines else out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round, a quarter of the images")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "SETUP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, setup, n = args.worker
        print(json.dumps(worker(model, setup, int(n), args.threads)))
        return 0

    import torch

    from vaebook.train import cpu_has_fast_bf16

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise SystemExit(f"bench_precision: unknown model(s) {unknown}; choose from {list(MODELS)}")
    rounds = 1 if args.quick else args.rounds
    print(f"torch {torch.__version__}, {args.threads} thread(s) per process, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_fast_bf16()}; images/s of "
          f"training (second of two epochs, fresh process each), median of {rounds} interleaved round(s)")
    print(f"{'model':12s}" + "".join(f"{s:>22s}" for s in SETUPS))
    for model in models:
        n = IMAGES[model] // (4 if args.quick else 1)
        setups = list(SETUPS) if model in CONV else ["fp32", "bf16"]
        speeds: dict[str, list[float]] = {s: [] for s in setups}
        for _ in range(rounds):
            for setup in setups:
                speeds[setup].append(run_worker(model, setup, n, args.threads))
        med = {s: statistics.median(v) for s, v in speeds.items()}
        print(f"{model:12s}" + "".join(f"{med[s]:11.0f} ({med[s] / med['fp32']:4.2f}x)   " if s in med
                                       else f"{'-':>22s}" for s in SETUPS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
