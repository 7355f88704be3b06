"""Chapter "GAN versus VAE": the source study's conv VAE and DCGAN on the same data, scored in the features
of the book's MNIST classifier."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache, partial

import numpy as np
import pandas as pd
import torch

from .. import data
from ..classifier import MNISTClassifier, classifier_job, get_classifier
from ..config import TrainingParams, choice, integer, number
from ..gan import GAN
from ..jobs import Hooks, Job, run_job
from ..models import VAE, VAEConfig, count_parameters
from ..sample_analysis import fid_tracker, samples_snapshot
from ..train import FitResult

CHAPTER = "gan_vs_vae"
N_TRACK = 500        # samples scored by the per-epoch Fréchet distance
N_FIXED = 64         # samples from fixed noise kept every epoch (grids and animations)
N_TEST_ELBO = 2000   # test images of the VAE's per-epoch ELBO terms
NOISE_SETS = 4       # extra sample sets per model whose scores give the final scores' sampling noise


def _subset(default: int | None, help: str) -> int | None:
    return integer(default, help, minimum=100, optional=True, none_means="all 60,000")


@dataclass(frozen=True)
class Params(TrainingParams):
    vae_epochs: int = integer(4, "VAE training epochs")
    gan_epochs: int = integer(8, "GAN training epochs")
    vae_train_subset: int | None = _subset(20000, "training images for the VAE")
    gan_train_subset: int | None = _subset(12288, "training images for the GAN")
    vae_batch_size: int = integer(128, "VAE images per mini-batch", minimum=2)
    gan_batch_size: int = integer(64, "GAN images per mini-batch", minimum=2)
    vae_lr: float = number(1e-3, "VAE Adam learning rate")
    gan_lr: float = number(2e-4, "GAN Adam learning rate (both networks)")
    vae_loss: str = choice("sum", "'sum': per-image ELBO (used here); 'mean': the source's mean BCE + mean KL",
                           ("sum", "mean"))
    latent_size: int = integer(16, "VAE latent dimensions (the GAN's noise has 100, as in the source)")
    classifier_epochs: int = integer(5, "epochs of the MNIST classifier behind the quality metrics")
    classifier_subset: int | None = _subset(None, "training images of the MNIST classifier")
    n_samples: int = integer(2000, "generated (and real) images scored by the quality metrics", minimum=100,
                             maximum=10000)


DEFAULT = Params()
PROFILES = {
    "smoke": replace(DEFAULT, vae_epochs=1, gan_epochs=2, vae_train_subset=1000, gan_train_subset=256,
                     classifier_epochs=1, classifier_subset=5000, n_samples=300),
    "default": DEFAULT,
    "full": replace(DEFAULT, vae_epochs=30, gan_epochs=50, vae_train_subset=None, gan_train_subset=None,
                    gan_batch_size=128, classifier_epochs=10, n_samples=10000),
}


@dataclass(frozen=True)
class ChapterData:
    train: data.Split
    test: data.Split
    vae_train: torch.Tensor    # the VAE's training images
    gan_train: torch.Tensor    # the GAN's: the start of the same seeded order of training images
    real_test: torch.Tensor    # the reference set of every quality score
    real_train: torch.Tensor   # other real images (the real-vs-real floor); in the models' training sets
                               # only where a subset plus n_samples exceeds 60,000 (the full profile)


@lru_cache(maxsize=2)
def chapter_data(p: Params) -> ChapterData:
    """The images of one run, drawn with the seed exactly as the chapter always drew them."""
    splits = data.mnist_splits(seed=p.seed)
    train, test = splits["train"], splits["test"]
    g = torch.Generator().manual_seed(p.seed)
    order = torch.randperm(len(train), generator=g)
    vae_n = len(train) if p.vae_train_subset is None else min(p.vae_train_subset, len(train))
    gan_n = len(train) if p.gan_train_subset is None else min(p.gan_train_subset, len(train))
    real_test = test.x[torch.randperm(len(test), generator=g)[:p.n_samples]]
    return ChapterData(train, test, train.x[order[:vae_n]], train.x[order[:gan_n]], real_test,
                       train.x[order[-p.n_samples:]])


def chapter_classifier_job(p: Params) -> Job:
    """The book's MNIST classifier with this chapter's settings (shared with any chapter that uses them)."""
    return replace(classifier_job(p.classifier_epochs, p.classifier_subset, p.seed, p.device, threads=p.threads,
                                  precision=p.precision), chapter=CHAPTER)


def classifier(p: Params) -> tuple[MNISTClassifier, float]:
    """The chapter's MNIST classifier (from the cache once trained) and its test accuracy."""
    return get_classifier(p.classifier_epochs, p.classifier_subset, p.seed, p.device, threads=p.threads,
                          precision=p.precision)


def _training_images(p: Params, model: str) -> tuple[torch.Tensor, None]:
    d = chapter_data(p)
    return (d.vae_train if model == "vae" else d.gan_train), None


def _hooks(p: Params, model: str, device: torch.device) -> Hooks:
    """The Fréchet distance of N_TRACK samples and N_FIXED fixed-noise samples per epoch; for the VAE also
    the ELBO terms on test images. Loads the classifier (trained first by ``jobs``) from the cache."""
    d = chapter_data(p)
    clf = run_job(chapter_classifier_job(p)).model.eval()
    fid = fid_tracker(clf, d.real_test[:N_TRACK], n_samples=N_TRACK, seed=p.seed + 2)
    snapshot = samples_snapshot(N_FIXED, seed=p.seed + 3)
    if model != "vae":
        return Hooks(epoch_end=fid, snapshot=snapshot)
    test_x = d.test.x[:N_TEST_ELBO].to(device)

    def fid_and_test_elbo(m, epoch):
        return {**fid(m, epoch), **{f"test_{k}": v for k, v in m.evaluate(test_x).items()}}

    return Hooks(epoch_end=fid_and_test_elbo, snapshot=snapshot)


def vae_config(p: Params) -> VAEConfig:
    return VAEConfig(latent_size=p.latent_size, arch="conv", loss_reduction=p.vae_loss)


def jobs(run) -> list[Job]:
    """The MNIST classifier (first: the others' hooks use it), the conv VAE and the GAN."""
    p: Params = run.params
    track_key = {"tracker": "fid500-v1", "classifier": [MNISTClassifier().cache_key(), p.classifier_epochs,
                                                        p.classifier_subset, p.seed],
                 "n_track": N_TRACK, "reference": p.n_samples}
    common = dict(**p.job_settings(), chapter=CHAPTER, extra_key=track_key)
    return [chapter_classifier_job(p),
            Job(name=f"{CHAPTER}-vae", model=partial(VAE, vae_config(p)), data=partial(_training_images, p, "vae"),
                epochs=p.vae_epochs, batch_size=p.vae_batch_size, lr=p.vae_lr, hooks=partial(_hooks, p, "vae"),
                **common),
            Job(name=f"{CHAPTER}-gan", model=GAN, data=partial(_training_images, p, "gan"), epochs=p.gan_epochs,
                batch_size=p.gan_batch_size, lr=p.gan_lr, hooks=partial(_hooks, p, "gan"), **common)]


def training_cost(p: Params, vae_fit: FitResult, gan_fit: FitResult) -> pd.DataFrame:
    """Images, epochs, updates and measured seconds of the two models' training."""
    d = chapter_data(p)
    n = [len(d.vae_train), len(d.gan_train)]
    seconds = [vae_fit.seconds_per_epoch, gan_fit.seconds_per_epoch]
    return pd.DataFrame({
        "training images": n,
        "epochs": [p.vae_epochs, p.gan_epochs],
        "updates (mini-batches)": [p.vae_epochs * -(-n[0] // p.vae_batch_size),
                                   p.gan_epochs * -(-n[1] // p.gan_batch_size)],
        "seconds per epoch (median)": seconds,
        "seconds per 10,000 images": [1e4 * s / k for s, k in zip(seconds, n)],
        "from cache": [vae_fit.loaded, gan_fit.loaded],
    }, index=["VAE", "GAN"])


# The four networks' parameter counts in the source study's Keras model summaries.
SOURCE_PARAMETERS = {"GAN generator": 1_164_289, "GAN discriminator": 40_705, "VAE encoder": 424_480,
                     "VAE decoder": 108_993}


def parameter_table(vae: VAE, gan: GAN) -> pd.DataFrame:
    """Each network's parameter count here and in the source (:data:`SOURCE_PARAMETERS`), one row each."""
    here = {"GAN generator": count_parameters(gan.generator), "GAN discriminator": count_parameters(gan.discriminator),
            "VAE encoder": count_parameters(vae.encoder), "VAE decoder": count_parameters(vae.decoder)}
    return pd.DataFrame({"here": here, "source": SOURCE_PARAMETERS,
                         "same": {k: here[k] == SOURCE_PARAMETERS[k] for k in here}})


def formatted(table: pd.DataFrame, row_formats: dict[str, str] | None = None, default: str = ".3f") -> pd.DataFrame:
    """``table`` as text for the page: each row's values formatted with ``row_formats[row]`` (a format
    spec such as ",.0f"; ``default`` for other rows), booleans as "yes"/"no"."""
    row_formats = row_formats or {}

    def text(value, spec):
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        return format(value, spec)

    return pd.DataFrame([[text(v, row_formats.get(row, default)) for v in table.loc[row]] for row in table.index],
                        index=table.index, columns=table.columns)
