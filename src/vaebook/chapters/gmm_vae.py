"""Chapter "GMM-VAE": a 2-D latent VAE on digits 1, 4 and 8 with a Gaussian-mixture classifier started from
fifteen labels, and the extension to all ten digits (a larger latent space, a mixture with no labels)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache, partial

import numpy as np
import pandas as pd
import torch

from .. import data
from ..config import TrainingParams, integer, number
from ..gmm_vae import DIGITS, ClusteringComparison, compare_clusterings, latent_codes, mnist_gmm_splits, \
    split_counts, vae_job
from ..jobs import Job
from ..models import VAE, VAEConfig, count_parameters


@dataclass(frozen=True)
class Params(TrainingParams):
    epochs: int = integer(20, "training epochs of the 2-D VAE on 1, 4 and 8")
    batch_size: int = integer(128, "images per mini-batch (both VAEs)")
    lr: float = number(1e-3, "Adam learning rate (both VAEs)")
    hidden_size: int = integer(512, "width of the MLP encoder and decoder (both VAEs)")
    labelled_per_class: int = integer(5, "labelled validation images per digit (the source: 5)")
    train_subset: int | None = integer(None, "training images of 1/4/8", optional=True,
                                       none_means="all of MNIST's 18,435")
    test_subset: int | None = integer(None, "test images of 1/4/8", optional=True,
                                      none_means="all of MNIST's 3,091")
    ten_latent_size: int = integer(10, "the ten-digit extension: latent size")
    ten_epochs: int = integer(15, "the ten-digit extension: training epochs")
    ten_train_subset: int | None = integer(None, "the ten-digit extension: training images", optional=True,
                                           none_means="all 60,000")
    ten_test_subset: int | None = integer(None, "the ten-digit extension: test images", optional=True,
                                          none_means="all 10,000")


DEFAULT = Params()
PROFILES = {
    "smoke": replace(DEFAULT, epochs=1, train_subset=2000, test_subset=600, ten_epochs=1, ten_train_subset=2000,
                     ten_test_subset=1000),
    "default": DEFAULT,
    "full": replace(DEFAULT, epochs=50, ten_epochs=50),
}

SOURCE_TRAIN_COUNTS = (5393, 4674, 4681)
"""The source's training set: its images of 1, 4 and 8 (14,748 in all, about 80% of MNIST's)."""
SOURCE_ACCURACY = 1.0
"""The source's reported accuracy, on its fifteen validation images."""
VADE_ACCURACY = 0.9446
"""VaDE's unsupervised clustering accuracy on MNIST (Jiang et al. 2017, on all 70,000 images)."""
DEC_ACCURACY = 0.843
"""DEC's unsupervised clustering accuracy on MNIST (Xie et al. 2016)."""


@dataclass(frozen=True)
class ChapterData:
    train: data.Split       # MNIST training 1/4/8 minus the labelled validation images
    val: data.Split         # labelled_per_class labelled images per digit
    test: data.Split        # MNIST test 1/4/8
    ten_train: data.Split   # the ten-digit extension
    ten_test: data.Split


@lru_cache(maxsize=2)
def chapter_data(p: Params) -> ChapterData:
    splits = mnist_gmm_splits(DIGITS, labelled_per_class=p.labelled_per_class, seed=p.seed,
                              train_subset=p.train_subset, test_subset=p.test_subset)
    ten = data.mnist_splits(train_subset=p.ten_train_subset, test_subset=p.ten_test_subset, seed=p.seed)
    return ChapterData(splits["train"], splits["val"], splits["test"], ten["train"], ten["test"])


def _digits_training_images(p: Params):
    return chapter_data(p).train.x, None


def _ten_training_images(p: Params):
    return chapter_data(p).ten_train.x, None


def jobs(run) -> list[Job]:
    """The 2-D VAE on 1/4/8 and the ten-digit VAE (labels unused by both)."""
    p: Params = run.params
    d = chapter_data(p)
    common = dict(batch_size=p.batch_size, lr=p.lr, **p.job_settings(), chapter="gmm_vae")
    return [
        vae_job(partial(_digits_training_images, p),
                VAEConfig(latent_size=2, arch="mlp", hidden_size=p.hidden_size),
                epochs=p.epochs, name="gmm_vae-148", **common,
                data_key={"digits": list(DIGITS), "train": d.train.description, "n": len(d.train),
                          "subset": p.train_subset, "labelled_per_class": p.labelled_per_class, "seed": p.seed}),
        vae_job(partial(_ten_training_images, p),
                VAEConfig(latent_size=p.ten_latent_size, arch="mlp", hidden_size=p.hidden_size),
                epochs=p.ten_epochs, name="gmm_vae-ten", **common,
                data_key={"train": d.ten_train.description, "n": len(d.ten_train), "subset": p.ten_train_subset,
                          "seed": p.seed}),
    ]


def data_table(d: ChapterData) -> pd.DataFrame:
    """Images per digit in each split, beside the source's training set."""
    table = split_counts({"training (labels unused)": d.train, "validation (labelled)": d.val, "test": d.test},
                         DIGITS)
    table["source's training set"] = [*SOURCE_TRAIN_COUNTS, sum(SOURCE_TRAIN_COUNTS)]
    return table


def training_table(result, test_x: torch.Tensor, seed: int) -> pd.DataFrame:
    """Size, speed and final losses of a trained VAE. The test −ELBO draws one z per image from a
    generator seeded with ``seed``, so it does not depend on what ran before."""
    model: VAE = result.model
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        test_neg_elbo = model.evaluate(test_x.to(device))["neg_elbo"]
    return pd.DataFrame({"parameters": [count_parameters(model)], "epochs": [len(result.history)],
                         "seconds per epoch (median)": [round(result.seconds_per_epoch, 2)],
                         "final training −ELBO (nats)": [result.history["loss"].iloc[-1]],
                         "test −ELBO (nats)": [test_neg_elbo], "from cache": [result.loaded]})


def source_comparison(scores: dict[str, float], recon_table: pd.DataFrame, train: data.Split, n_test: int
                      ) -> pd.DataFrame:
    """The source's figures beside this book's, each with what it was measured on."""
    ours = f"all {n_test} MNIST test images of 1, 4, 8"
    per_digit = " / ".join(f"{int((train.y == d).sum()):,}" for d in DIGITS)
    source_train = " / ".join(f"{n:,}" for n in SOURCE_TRAIN_COUNTS)
    rows = [
        ("classification accuracy", f"{SOURCE_ACCURACY}", "15 validation images (5 per digit), the same images "
         "that initialised the mixture and named its clusters", f"{scores['accuracy']:.4f}", ours),
        ("mean of macro- and micro-F1", "not reported", "", f"{scores['mean of macro- and micro-F1']:.4f}", ours),
        ("1 − MSE / SSIM of reconstructions", "not reported", "",
         f"{recon_table.loc['all', '1 − MSE']:.4f} / {recon_table.loc['all', 'SSIM']:.4f}", ours),
        ("training images", f"{sum(SOURCE_TRAIN_COUNTS):,} ({source_train})", "its own training file",
         f"{len(train):,} ({per_digit})", "MNIST training 1, 4, 8 minus the validation images"),
        ("reparameterisation noise", "uniform (a bug)", "its VAE code", "Gaussian N(0, I)", "vaebook.models.VAE"),
    ]
    return pd.DataFrame(rows, columns=["quantity", "source", "source measured on", "this book",
                                       "this book measured on"]).set_index("quantity")


def ten_digit_comparison(model: VAE, d: ChapterData, p: Params) -> tuple[ClusteringComparison, np.ndarray]:
    """The ten-digit extension: the test codes (N, d) and :func:`vaebook.gmm_vae.compare_clusterings` of
    the label-free and the label-started mixture on the VAE's training codes."""
    train_codes, test_codes = latent_codes(model, d.ten_train.x), latent_codes(model, d.ten_test.x)
    result = compare_clusterings(train_codes, d.ten_train.y.numpy(), test_codes, d.ten_test.y.numpy(),
                                 p.labelled_per_class, seed=p.seed)
    return result, test_codes


def ten_digit_table(c: ClusteringComparison, p: Params) -> pd.DataFrame:
    """Test accuracies of the two mixtures beside VaDE's and DEC's reported clustering accuracies."""
    vae = f"VAE (d = {p.ten_latent_size}) + GMM"
    return pd.DataFrame({
        "test accuracy": [c.unsupervised, c.seeded_hungarian, c.seeded, VADE_ACCURACY, DEC_ACCURACY],
        "labels used": ["none (map from test labels, as ACC is defined)",
                        f"{c.labelled} to start the means; map from test labels",
                        f"{c.labelled} to start the means and name the clusters", "none", "none"],
    }, index=pd.Index([f"{vae}, unsupervised", f"{vae}, label-started means (ACC)",
                       f"{vae}, label-started means and map", "VaDE (Jiang et al. 2017, reported)",
                       "DEC (Xie et al. 2016, reported)"], name="method"))


def ten_digit_summary(c: ClusteringComparison, p: Params, d: ChapterData) -> str:
    """The ten-digit results in words: the gaps to VaDE, the effect of the labelled start, and which
    digits the label-free mixture splits or merges."""
    return "\n".join([
        f"{len(d.ten_test)} test images, {len(d.ten_train)} training images, {p.ten_epochs} epochs: "
        f"unsupervised clustering accuracy {c.unsupervised:.2%}, "
        f"{(VADE_ACCURACY - c.unsupervised) * 100:.1f} percentage points below VaDE's {VADE_ACCURACY:.2%}",
        f"means started from {c.labelled} labelled images: {c.seeded:.2%} "
        f"({(c.seeded - c.unsupervised) * 100:+.1f} points against the unsupervised mixture, "
        f"{(VADE_ACCURACY - c.seeded) * 100:.1f} points below VaDE, which uses no labels)",
        f"digits that are the majority of two or more clusters: {c.split_digits or 'none'}; digits that are "
        f"the majority of no cluster (merged into others): {c.unclaimed_digits or 'none'}"])
