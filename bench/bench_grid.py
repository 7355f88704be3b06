"""A chapter's whole grid from a cold cache: one model after another in fp32 (how the book trained before)
against the book's way now (jobs side by side on a local Dask cluster, one thread each, the precision and
memory format each architecture was measured to train as well in). Both in one run, each into an empty
cache folder.

    python bench/bench_grid.py                     # the beta_vae chapter's default grid (12 conv VAEs)
    python bench/bench_grid.py --chapter gmm_vae --profile default

Target: the new way takes <= 0.5x the wall time of the old on 2 cores for the beta_vae default grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import torch

from vaebook import chapters
from vaebook.jobs import job_checkpoint, train_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapter", default="beta_vae")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    run = chapters.resolve(args.chapter, args.profile)
    jobs = chapters.module(args.chapter).jobs(run)
    cores = os.cpu_count() or 1
    before = [dataclasses.replace(j, threads=cores, precision="fp32", channels_last=False) for j in jobs]
    print(f"{args.chapter}, profile {args.profile}: {len(jobs)} jobs, {cores} cores, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as old_cache, tempfile.TemporaryDirectory() as new_cache:
        t0 = time.perf_counter()
        train_all(before, cache=old_cache)
        t_old = time.perf_counter() - t0
        print(f"  before: one after another, fp32, {cores} threads each      {t_old:7.1f} s")
        t0 = time.perf_counter()
        train_all(jobs, cache=new_cache, workers=args.workers)
        t_new = time.perf_counter() - t0
        setups = sorted({f"{j.threads} thread(s), precision {j.precision}" for j in jobs})
        print(f"  now:    {args.workers} Dask workers side by side ({'; '.join(setups)})  {t_new:7.1f} s")
        unfinished = [j.name for j in jobs if job_checkpoint(j, new_cache)[1] < j.epochs]
        if unfinished:  # train_all raises when a job fails, so this would be a bug of the runner
            raise SystemExit(f"bench_grid: jobs left unfinished by train_all: {unfinished}")
    ratio = t_new / t_old
    print(f"wall-time ratio now/before: {ratio:.2f}x  TARGET <= 0.5x: {'PASS' if ratio <= 0.5 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
