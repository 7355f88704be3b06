"""Which part of the GAN recipe of the chapter "GAN versus VAE" matters? An ablation, one change per row.

    .venv/bin/python bench/bench_gan_recipe.py                  # all 9 rows, about 12 minutes on 2 cores
    .venv/bin/python bench/bench_gan_recipe.py --only 8,9       # some rows: the others in --out are kept
    .venv/bin/python bench/bench_gan_recipe.py --only 2,3 --steps 20 --n-samples 300 --out /tmp/smoke.csv

Rows, each one change on top of the previous (seed 0, batch 64, precision "auto"):
1. the source recipe (generator width 128, discriminator dropout 0.4, lr 2e-4, 12,288 training images);
2. generator width 32; 3. no discriminator dropout; 4. all 60,000 training images; 5. learning rate 5e-4;
6. a hidden dense layer of 1,024 units in the discriminator's read-out; 7. the R1 penalty, gamma = 1, every 4th step;
8. learning rate 1e-3; 9. samples from an exponential moving average of the generator's weights (decay 0.995).
Every row trains for the same number of generator steps (--steps, default 1536 = the old default of 8 epochs
x 192 batches): epochs = ceil(steps / batches per epoch), and since ``fit`` trains whole epochs the table
reports the actual step count. Training images: the first n_train of a seeded permutation (seed 0) of the
60,000; reference: the first --n-samples of the chapter's real reference images. Each row trains with one torch
thread in a fresh worker process, two side by side (row 1 is the slow one). Columns: generator parameters,
steps, training seconds (wall, in the worker), FID / precision / recall of --n-samples samples in the book
classifier's features (the chapter's classifier and reference images), the rarest and commonest digit's share of the samples, and the last epoch's
discriminator loss and mean accuracy (real and fake): a discriminator near 50% has stalled. The table is
printed and written (atomically) as CSV to --out; rows of an existing --out that this run did not train are
kept, so one row can be re-measured alone (each row depends only on its own settings and the seed).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from vaebook.data import PROJECT_ROOT, DataError, mnist_splits

BATCH, SEED = 64, 0
ROWS = [  # name, generator width, discriminator dropout, lr, training images, D hidden units, R1 gamma, EMA decay
    ("source recipe", 128, 0.4, 2e-4, 12_288, 0, 0.0, 0.0),
    ("generator width 32", 32, 0.4, 2e-4, 12_288, 0, 0.0, 0.0),
    ("no discriminator dropout", 32, 0.0, 2e-4, 12_288, 0, 0.0, 0.0),
    ("all 60,000 images", 32, 0.0, 2e-4, 60_000, 0, 0.0, 0.0),
    ("learning rate 5e-4", 32, 0.0, 5e-4, 60_000, 0, 0.0, 0.0),
    ("discriminator hidden layer (1,024)", 32, 0.0, 5e-4, 60_000, 1024, 0.0, 0.0),
    ("R1 penalty (gamma 1)", 32, 0.0, 5e-4, 60_000, 1024, 1.0, 0.0),
    ("learning rate 1e-3", 32, 0.0, 1e-3, 60_000, 1024, 1.0, 0.0),
    ("averaged generator (EMA 0.995)", 32, 0.0, 1e-3, 60_000, 1024, 1.0, 0.995),
]


def get_classifier():
    """The chapter's own classifier (its default settings), so the rows are scored like the chapter's models."""
    from vaebook.chapters import gan_vs_vae
    return gan_vs_vae.classifier(gan_vs_vae.DEFAULT)[0]


def reference_images(n_samples: int) -> torch.Tensor:
    """The chapter's real reference set (its default seed's test images), at most ``n_samples`` of them."""
    from vaebook.chapters import gan_vs_vae
    return gan_vs_vae.chapter_data(gan_vs_vae.DEFAULT).real_test[:n_samples]


def run_row(index: int, steps: int, n_samples: int) -> dict:
    """Train row ``index`` (one torch thread) and score its samples; runs in a worker process."""
    from vaebook.gan import GAN
    from vaebook.quality import sample_quality
    from vaebook.train import fit

    torch.set_num_threads(1)
    name, width, dropout, lr, n_train, disc_hidden, r1_gamma, ema = ROWS[index]
    splits = mnist_splits(seed=0)
    train = splits["train"].x
    keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n_train].sort().values
    real = reference_images(n_samples)
    batches = math.ceil(n_train / BATCH)
    epochs = math.ceil(steps / batches)
    t0 = time.perf_counter()
    result = fit(partial(GAN, width=width, dropout=dropout, disc_hidden=disc_hidden, r1_gamma=r1_gamma, ema=ema),
                 train[keep], epochs=epochs, batch_size=BATCH, lr=lr, seed=SEED, cache=False, precision="auto",
                 progress=False, name=f"bench-gan-recipe-{index + 1}")
    seconds = time.perf_counter() - t0
    gan = result.model.eval()
    fake = gan.sample(n_samples, generator=torch.Generator().manual_seed(6))
    q = sample_quality(get_classifier(), real, fake)
    last = result.history.iloc[-1]
    return {"row": f"{index + 1}. {name}", "G params": sum(p.numel() for p in gan.generator.parameters()),
            "steps": epochs * batches, "train s": round(seconds, 1), "FID": q["fid"], "precision": q["precision"],
            "recall": q["recall"], "rarest digit": float(q["class_hist"].min()),
            "commonest digit": float(q["class_hist"].max()), "last D loss": float(last["d_loss"]),
            "last D acc": float((last["d_acc_real"] + last["d_acc_fake"]) / 2)}


def row_number(label: str) -> int:
    """The row number of a table label such as "7. R1 penalty (gamma 1)"."""
    return int(str(label).split(".", 1)[0])


def merged(table: pd.DataFrame, out: Path) -> pd.DataFrame:
    """``table`` plus the rows of an existing ``out`` that it does not replace, in row order. A broken or
    foreign file is reported, not merged."""
    if not out.exists():
        return table
    try:
        old = pd.read_csv(out)
        numbers = old["row"].map(row_number)
    except (ValueError, KeyError, pd.errors.ParserError) as exc:
        raise SystemExit(f"bench_gan_recipe: {out} is not a table this script wrote ({exc}); move it away or "
                         f"pass another --out") from None
    kept = old[~numbers.isin(table["row"].map(row_number))]
    both = pd.concat([kept, table], ignore_index=True)
    return both.iloc[both["row"].map(row_number).argsort(kind="stable")].reset_index(drop=True)


def write_csv(table: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            table.to_csv(f, index=False)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the CSV is a book reference file
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1536, help="generator steps per row (default 1536)")
    parser.add_argument("--n-samples", type=int, default=2000, help="samples and test images scored (default 2000)")
    parser.add_argument("--only", default=",".join(str(i + 1) for i in range(len(ROWS))), help="rows, e.g. 2,3,4,5")
    parser.add_argument("--workers", type=int, default=2, help="rows trained side by side (default 2)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "book" / "reference" / "gan_recipe.csv")
    args = parser.parse_args()
    if args.steps < 1:
        raise SystemExit(f"bench_gan_recipe: --steps must be >= 1, got {args.steps}")
    if args.n_samples < 100:
        raise SystemExit(f"bench_gan_recipe: --n-samples must be >= 100, got {args.n_samples}")
    if args.workers < 1:
        raise SystemExit(f"bench_gan_recipe: --workers must be >= 1, got {args.workers}")
    try:
        rows = sorted({int(r) for r in args.only.split(",") if r.strip()})
    except ValueError:
        raise SystemExit(f"bench_gan_recipe: --only takes row numbers like 2,3,4,5, got {args.only!r}") from None
    if not rows or not all(1 <= r <= len(ROWS) for r in rows):
        raise SystemExit(f"bench_gan_recipe: --only takes row numbers from 1 to {len(ROWS)}, got {args.only!r}")
    try:
        mnist_splits(seed=0)  # fails fast, in one line, when MNIST is missing
        if args.n_samples > 2000:
            raise SystemExit(f"bench_gan_recipe: --n-samples must be <= 2000 (the chapter's reference images), "
                             f"got {args.n_samples}")
        get_classifier()  # loaded (or trained once) here, so the workers only load it
    except DataError as exc:
        raise SystemExit(f"bench_gan_recipe: {exc}") from None

    print(f"GAN recipe ablation: rows {rows}, {args.steps} generator steps each, batch {BATCH}, seed {SEED}, "
          f"{args.n_samples} samples; {args.workers} workers x 1 thread, torch {torch.__version__}")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_row, r - 1, args.steps, args.n_samples) for r in rows]
        results = [f.result() for f in futures]
    table = pd.DataFrame(results)
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 200,
                           "display.max_columns", None):
        print(table.to_string(index=False))
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    table = merged(table, args.out)
    write_csv(table, args.out)
    print(f"wrote {args.out} (rows {', '.join(str(row_number(r)) for r in table['row'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
