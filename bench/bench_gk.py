"""Benchmark of vaebook.gk: parameter recovery and speed of the quantile least-squares fits, and the speed
of log_prob.

    python bench/bench_gk.py            # 20 seeds per sample size
    python bench/bench_gk.py --quick    # 5 seeds, a fast check

For the classic (A, B, g, k) = (3, 1, 2, 0.5) at n = 1,000 / 10,000 / 100,000 it fits each simulated sample
with MINPACK Levenberg–Marquardt (the library default, weighted quantile residuals), LM on the unweighted
residuals, scipy's trust-region reflective ("trf") and Nelder–Mead (on the sum of squares of the same
weighted residuals), and reports the closed-form octile estimator that all of them start from
(:func:`vaebook.gk.recovery_study`). Each row:
the median absolute error of each parameter over the seeds, the median wall time per fit (sorting, start
and optimisation included; simulation excluded) and the median CPU time of this process per fit, and how
many fits reported convergence. The targets are judged on wall time
(:func:`vaebook.gk.recovery_verdict`). Then the median
of 3 timings of log_prob on 10^6 points, and PASS/FAIL for the two targets of the issue:

* LM at n = 10,000: every parameter within 0.05 (median over seeds) in under 20 ms per marginal;
* log_prob of 10^6 points in under 1 s on CPU.

The machine is shared: the load average is printed beside the timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import pandas as pd
import torch

from vaebook import gk

THETA = gk.CLASSIC  # (3, 1, 2, 0.5)
NS = (1_000, 10_000, 100_000)
TARGET_ERR, TARGET_FIT_MS, TARGET_LOGPROB_S = 0.05, 20.0, 1.0


def time_log_prob(n=1_000_000, repeats=3, theta=THETA) -> tuple[list[float], list[float]]:
    x = gk.sample(n, *theta, generator=torch.Generator().manual_seed(0))
    gk.log_prob(x[:1000], *theta)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        lp = gk.log_prob(x, *theta)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert torch.isfinite(lp).all()
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 seeds instead of 20")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (overrides --quick)")
    args = ap.parse_args()
    n_seeds = args.seeds or (5 if args.quick else 20)

    print(f"g-and-k benchmark: (A, B, g, k) = {THETA}, {n_seeds} seeds; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    table = gk.recovery_study(THETA, NS, n_seeds=n_seeds)
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 140):
        print(table.to_string())

    times, cpu = time_log_prob()
    t_lp = statistics.median(times)
    print(f"\nlog_prob of 10^6 points: median {t_lp:.3f} s over {len(times)} runs "
          f"({', '.join(f'{t:.3f}' for t in times)}); CPU {statistics.median(cpu):.3f} s; "
          f"load average {os.getloadavg()[0]:.2f}")

    print(gk.recovery_verdict(table, n=10_000, method="LM", max_error=TARGET_ERR, max_ms=TARGET_FIT_MS))
    ok_lp = t_lp < TARGET_LOGPROB_S
    print(f"{'PASS' if ok_lp else 'FAIL'}: log_prob of 10^6 points in under {TARGET_LOGPROB_S:.0f} s "
          f"(median {t_lp:.3f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
