"""Does ``torch.compile`` pay for its compile time when training the book's conv VAE on this CPU?

    python bench/bench_compile.py                  # batch 32 (β-VAE grid) and 128, one thread, 3 rounds
    python bench/bench_compile.py --threads 2 --rounds 1

Each configuration runs in a fresh process with an empty inductor cache folder (TorchInductor keeps
compiled kernels on disk between processes: without it, only the first round would pay the full compile
time) and trains the β-VAE
chapter's conv VAE (d = 10) with the engine's step: Adam (fused), the forward pass under bf16 autocast
on channels_last input (the set-up ``precision="auto"`` picks for this model on a CPU with native
bf16), backward outside autocast. It reports the seconds until the first three steps are done (for the
compiled model that includes compiling the forward and backward graphs) and the steady-state images
per second over the next steps; medians over interleaved rounds. The last line says how many steps the
compiled model needs before its faster steps (if they are faster) have paid for the compile time; a β-VAE
grid model of the default profile trains for 3,000 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

MODES = ("eager", "compile")


def worker(mode: str, batch_size: int, threads: int, steps: int) -> dict:
    import time

    import torch

    from vaebook import data
    from vaebook.models import VAE, VAEConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, _ = data.training_tensors(subset=6000, seed=0)
    model = VAE(VAEConfig(latent_size=10, arch="conv", beta=0.0784)).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    loss_fn = model.training_loss if mode == "eager" else torch.compile(model.training_loss)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)

    def step(i: int) -> None:
        start = (i * batch_size) % (len(x) - batch_size)
        xb = x[start:start + batch_size].contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss, _ = loss_fn(xb, None)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for i in range(3):
        step(i)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    per_step = (time.perf_counter() - t0) / steps
    return {"first_s": first, "per_step_s": per_step}


def run_worker(mode: str, batch_size: int, threads: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as inductor_cache:
        out = subprocess.run([sys.executable, __file__, "--worker", mode, str(batch_size), str(threads), str(steps)],
                             capture_output=True, text=True,
                             env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": inductor_cache})
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        raise SystemExit(f"bench_compile: {mode}, batch {batch_size}: {lines[-1] if lines else out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400, help="timed steps after the first three")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, bs, threads, steps = args.worker
        print(json.dumps(worker(mode, int(bs), int(threads), int(steps))))
        return 0
    import torch
    print(f"conv VAE (d = 10), bf16 autocast + channels_last, {args.threads} thread(s), torch {torch.__version__}, "
          f"median of {args.rounds} rounds, fresh process each")
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        runs = {m: [] for m in MODES}
        for _ in range(args.rounds):
            for m in MODES:
                runs[m].append(run_worker(m, bs, args.threads, args.steps))
        med = {m: {k: statistics.median(r[k] for r in runs[m]) for k in ("first_s", "per_step_s")} for m in MODES}
        for m in MODES:
            print(f"  batch {bs:4d} {m:8s} first 3 steps {med[m]['first_s']:6.1f} s, then "
                  f"{bs / med[m]['per_step_s']:7.0f} images/s")
        gain = med["eager"]["per_step_s"] - med["compile"]["per_step_s"]
        ratio = med["eager"]["per_step_s"] / med["compile"]["per_step_s"]
        overhead = med["compile"]["first_s"] - med["eager"]["first_s"]
        verdict = (f"pays off after {overhead / gain:,.0f} steps" if gain > 0 else "never pays off (slower per step)")
        print(f"  batch {bs:4d} compiled/eager speed {ratio:.2f}x, compile overhead {overhead:.1f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
