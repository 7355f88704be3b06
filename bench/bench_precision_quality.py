"""Does a faster numeric set-up train as well? fp32 against bf16 autocast + channels_last, several seeds.

    python bench/bench_precision_quality.py                       # conv VAE, GAN, classifier
    python bench/bench_precision_quality.py --models conv_vae --seeds 0,1,2

Each architecture trains over its chapter's default budget (conv VAE: 4 epochs on 20,000 images; GAN: the
GAN chapter's default recipe and budget, read from ``gan_vs_vae.DEFAULT``, 2 epochs on all 60,000 images at
the time of writing; classifier: 5 epochs on all 60,000, one-cycle)
once per seed and set-up, one torch thread per job, two jobs side by side on a local Dask cluster
(`vaebook.jobs.train_all`). Then, in fp32, it scores each model: the VAE's test −ELBO (all 10,000 test
images, fixed noise) and PSNR of its mean reconstructions; the GAN's Fréchet distance and precision in the
book classifier's features (2,000 samples against 2,000 test images) and its last-epoch losses; the
classifier's test accuracy. A set-up "trains as well" when its mean over seeds lies within the fp32
run-to-run spread (max − min over seeds) of the fp32 mean. Checkpoints go to cache/bench-precision/, so
a rerun only evaluates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial

import torch

from vaebook import data
from vaebook.classifier import MNISTClassifier, classifier_accuracy, classifier_features, classifier_job, get_classifier
from vaebook.gan import GAN
from vaebook.jobs import Job, train_all
from vaebook.metrics import psnr
from vaebook.models import VAE, VAEConfig
from vaebook.quality import frechet_distance, precision_recall
from vaebook.train import PROJECT_ROOT

SETUPS = {"fp32": ("fp32", False), "bf16+channels_last": ("bf16", True)}


def job(model: str, setup: str, seed: int) -> Job:
    precision, channels_last = SETUPS[setup]
    common = dict(seed=seed, device="cpu", threads=1, precision=precision, channels_last=channels_last,
                  chapter="bench")
    if model == "conv_vae":
        return Job(name=f"bench-conv_vae-{setup}-s{seed}", model=partial(VAE, VAEConfig(latent_size=16, arch="conv")),
                   data=partial(data.training_tensors, subset=20_000, seed=0), epochs=4, batch_size=128,
                   lr=1e-3, **common)
    if model == "gan":
        from vaebook.chapters.gan_vs_vae import DEFAULT as p   # the chapter's recipe, so this stays in step with it

        gan = partial(GAN, width=p.gan_width, dropout=p.gan_dropout, disc_hidden=p.gan_disc_hidden,
                      r1_gamma=p.gan_r1_gamma, ema=p.gan_ema)
        return Job(name=f"bench-gan-{setup}-s{seed}", model=gan, data=partial(data.training_tensors, seed=0),
                   epochs=p.gan_epochs, batch_size=p.gan_batch_size, lr=p.gan_lr, **common)
    base = classifier_job(epochs=5, seed=seed, device="cpu")
    return Job(name=f"bench-classifier-{setup}-s{seed}", model=MNISTClassifier, data=base.data, epochs=5,
               batch_size=128, lr=3e-3, lr_schedule="onecycle", data_key=base.data_key, **common)


def score(model: str, result, test: data.Split, clf) -> dict[str, float]:
    net = result.model.float().to(memory_format=torch.contiguous_format).eval()
    last = result.history.iloc[-1]
    if model == "conv_vae":
        torch.manual_seed(0)  # the ELBO's one sampled z per image: the same noise for every model
        terms = net.evaluate(test.x)
        return {"final training loss": float(last["loss"]), "test −ELBO": terms["neg_elbo"],
                "test PSNR": psnr(test.x, net.reconstruct(test.x)).mean().item()}
    if model == "gan":
        fake = net.sample(2000, generator=torch.Generator().manual_seed(123))
        real_f, fake_f = classifier_features(clf, test.x[:2000]), classifier_features(clf, fake)
        return {"final D loss": float(last["d_loss"]), "final G loss": float(last["g_loss"]),
                "FID (2,000)": frechet_distance(real_f, fake_f), "precision": precision_recall(real_f, fake_f)[0]}
    return {"final training loss": float(last["loss"]), "test accuracy": classifier_accuracy(net, test.x, test.y)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="conv_vae,gan,classifier")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    bad = sorted(set(models) - {"conv_vae", "gan", "classifier"})
    if bad:
        raise SystemExit(f"bench_precision_quality: unknown model(s) {bad}; choose from conv_vae, gan, classifier")
    seeds = [int(s) for s in args.seeds.split(",")]
    cache = PROJECT_ROOT / "cache" / "bench-precision"
    jobs = [job(m, s, seed) for m in models for s in SETUPS for seed in seeds]
    t0 = time.perf_counter()
    results = train_all(jobs, cache=cache, workers=args.workers)
    print(f"trained or loaded {len(jobs)} models in {time.perf_counter() - t0:.0f} s "
          f"({args.workers} workers x 1 thread)")
    test = data.mnist_splits()["test"]
    clf = get_classifier(epochs=5, seed=0)[0] if "gan" in models else None
    by = {(j.name.split("-")[1], j.name.split("-")[2], j.seed): (r, j) for j, r in zip(jobs, results)}
    for m in models:
        print(f"\n{m}: default budget, seeds {seeds}, median seconds per epoch (1 thread) and scores per seed")
        scores = {s: [score(m, by[m, s, seed][0], test, clf) for seed in seeds] for s in SETUPS}
        for s in SETUPS:
            secs = statistics.median(by[m, s, seeds[0]][0].history["seconds"])
            print(f"  {s:20s} {secs:7.1f} s/epoch  " + "  ".join(
                f"{k}: " + ", ".join(f"{row[k]:.4g}" for row in scores[s]) for k in scores[s][0]))
        for k in scores["fp32"][0]:
            ref = [row[k] for row in scores["fp32"]]
            spread = max(ref) - min(ref)
            for s in SETUPS:
                if s == "fp32":
                    continue
                vals = [row[k] for row in scores[s]]
                diff = statistics.mean(vals) - statistics.mean(ref)
                print(f"  {k:20s} {s} − fp32 = {diff:+.4g} (mean over seeds); fp32 spread {spread:.4g}: "
                      f"{'within' if abs(diff) <= spread else 'OUTSIDE'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
