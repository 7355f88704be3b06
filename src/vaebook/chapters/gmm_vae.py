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
from ..gmm_vae import DEFAULT_RESTARTS, DIGITS, ClusteringComparison, clustering_accuracy, compare_clusterings, \
    em_fits, labelled_means, latent_codes, mixture_from_fit, mnist_gmm_splits, most_likely, split_counts, vae_job
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
    robust_pairs: int = integer(5, "robustness study: (seed, validation draw) pairs, seeds seed ... "
                                   "seed + n - 1 (each its own VAE and its own labelled images)", minimum=1)


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


def pair_splits(p: Params, seed: int) -> dict:
    """The 1/4/8 splits of the chapter run with ``seed``: its labelled validation draw (5 images per digit,
    drawn with seed + 2), the training images minus that draw, and the test images."""
    return mnist_gmm_splits(DIGITS, labelled_per_class=p.labelled_per_class, seed=seed,
                            train_subset=p.train_subset, test_subset=p.test_subset)


def _pair_training_images(p: Params, seed: int):
    return pair_splits(p, seed)["train"].x, None


def robust_seeds(p: Params) -> list[int]:
    """The seeds of the robustness study's (seed, draw) pairs: the chapter's own seed first."""
    return [p.seed + i for i in range(p.robust_pairs)]


def _digits_job(p: Params, seed: int, name: str, data, n: int, description: str) -> Job:
    common = dict(batch_size=p.batch_size, lr=p.lr, **{**p.job_settings(), "seed": seed}, chapter="gmm_vae")
    return vae_job(data, VAEConfig(latent_size=2, arch="mlp", hidden_size=p.hidden_size), epochs=p.epochs,
                   name=name, **common,
                   data_key={"digits": list(DIGITS), "train": description, "n": n, "subset": p.train_subset,
                             "labelled_per_class": p.labelled_per_class, "seed": seed})


def jobs(run) -> list[Job]:
    """The 2-D VAE on 1/4/8, the ten-digit VAE (labels unused by both), then the robustness study's 2-D
    VAEs for the seeds after the chapter's own (the first pair is the chapter's own VAE)."""
    p: Params = run.params
    d = chapter_data(p)
    common = dict(batch_size=p.batch_size, lr=p.lr, **p.job_settings(), chapter="gmm_vae")
    out = [
        _digits_job(p, p.seed, "gmm_vae-148", partial(_digits_training_images, p), len(d.train),
                    d.train.description),
        vae_job(partial(_ten_training_images, p),
                VAEConfig(latent_size=p.ten_latent_size, arch="mlp", hidden_size=p.hidden_size),
                epochs=p.ten_epochs, name="gmm_vae-ten", **common,
                data_key={"train": d.ten_train.description, "n": len(d.ten_train), "subset": p.ten_train_subset,
                          "seed": p.seed}),
    ]
    for s in robust_seeds(p)[1:]:
        train = pair_splits(p, s)["train"]
        out.append(_digits_job(p, s, f"gmm_vae-148-seed{s}", partial(_pair_training_images, p, s), len(train),
                               train.description))
    return out


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
        ("classification accuracy", f"{SOURCE_ACCURACY}", "its 15 labelled images, which also fitted it",
         f"{scores['accuracy']:.4f}", ours),
        ("mean of macro- and micro-F1", "not reported", "", f"{scores['mean of macro- and micro-F1']:.4f}", ours),
        ("1 − MSE / SSIM of reconstructions", "not reported", "",
         f"{recon_table.loc['all', '1 − MSE']:.4f} / {recon_table.loc['all', 'SSIM']:.4f}", ours),
        ("training images", f"{sum(SOURCE_TRAIN_COUNTS):,} ({source_train})", "its own training file",
         f"{len(train):,} ({per_digit})", "MNIST training 1, 4, 8 minus the 15 labelled"),
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


def cluster_majority_captions(c: ClusteringComparison) -> tuple[np.ndarray, list[str]]:
    """The label-free mixture's clusters ordered by their most common true test digit, and a caption
    for each: that digit and its share of the cluster's test images (e.g. "3\n82%")."""
    table = c.contingency
    order = sorted(table.index, key=lambda k: (int(table.loc[k].idxmax()), -table.loc[k].max()))
    captions = [f"{int(table.loc[k].idxmax())}\n{table.loc[k].max() / table.loc[k].sum():.0%}" for k in order]
    return np.asarray(order, dtype=np.int64), captions


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


# --- the robustness study: the classifier over (seed, validation draw) pairs ------------------------------

def robustness_pair(model: VAE, p: Params, seed: int, details: bool = False) -> dict:
    """One (seed, draw) pair: the VAE trained with ``seed`` and the labelled images drawn for ``seed``
    (:func:`pair_splits`), the mixture fitted with ``seed``. Test accuracy of the labelled-means start
    alone ("old") and of :func:`vaebook.gmm_vae.fit_latent_gmm` ("new", its steps taken one by one), the
    log-likelihoods (nats per training code) of the labelled-means start and of the most likely start,
    the accuracy of the new mixture under the best cluster -> digit map (the test labels' Hungarian
    map: equal to "new" when the fifteen labels named the clusters right), and the accuracy of a
    Gaussian classifier fitted with every training label (QDA: what one Gaussian per digit can reach
    in this latent space). With ``details``, also the codes, labels and both mixtures (keys
    "train_codes", "train_labels", "val_codes", "val_labels", "old_gmm", "new_gmm")."""
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    sp = pair_splits(p, seed)
    train, val, test = (latent_codes(model, sp[k].x).astype(np.float64) for k in ("train", "val", "test"))
    ytrain, yval, ytest = (sp[k].y.numpy() for k in ("train", "val", "test"))
    fits = em_fits(train, labelled_means(val, yval, DIGITS), DEFAULT_RESTARTS, seed)
    best = most_likely(fits)
    old = mixture_from_fit(fits[0], train, val, yval, DIGITS, refine=False)
    new = mixture_from_fit(best, train, val, yval, DIGITS)
    out = {"seed": seed, "old": float((old.predict(test) == ytest).mean()), "old_ll": fits[0].log_likelihood,
           "best_ll": best.log_likelihood, "new": float((new.predict(test) == ytest).mean()),
           "new_best_map": clustering_accuracy(ytest, new.predict_clusters(test)),
           "qda": float(QuadraticDiscriminantAnalysis().fit(train, ytrain).score(test, ytest))}
    if details:
        out.update(train_codes=train, train_labels=ytrain, val_codes=val, val_labels=yval, old_gmm=old,
                   new_gmm=new)
    return out


def robustness_study(models: list[VAE], p: Params) -> pd.DataFrame:
    """:func:`robustness_pair` for each seed of :func:`robust_seeds` (``models`` in that order), one row
    per pair, indexed by seed."""
    seeds = robust_seeds(p)
    if len(models) != len(seeds):
        raise ValueError(f"need one VAE per seed {seeds}, got {len(models)}")
    return pd.DataFrame([robustness_pair(m, p, s) for m, s in zip(models, seeds)]).set_index("seed")


ROBUSTNESS_COLUMNS = {"old": "labelled start", "old_ll": "its log p", "best_ll": "best log p",
                      "new": "this method", "qda": "all labels"}


def robustness_table(study: pd.DataFrame) -> pd.DataFrame:
    """The study for the page: accuracies in %, log-likelihoods in nats per code, short column names."""
    table = study[list(ROBUSTNESS_COLUMNS)].rename(columns=ROBUSTNESS_COLUMNS).copy()
    for c in ("labelled start", "this method", "all labels"):
        table[c] = (100 * table[c]).round(2)
    for c in ("its log p", "best log p"):
        table[c] = table[c].round(3)
    return table
