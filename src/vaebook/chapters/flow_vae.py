"""Chapter "Normalizing flows in the VAE": flow-VAEs (planar, radial, combined, g-and-k), a g-and-k prior
and a VAE-GAN on dynamically binarised MNIST; IWAE likelihoods, sample quality, ex-post priors. The headline
comparison (the plain VAE against the planar model with the most layers) is also trained with ``seeds - 1``
replicate seeds, so it is judged over several training runs; every other model is trained once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from .. import data
from ..classifier import MNISTClassifier, classifier_job
from ..config import ParameterError, SeededParams, choice, custom, integer, number
from ..classifier import classifier_features
from ..flow_vae import (VAEGAN, ExPostFit, FlowVAE, FlowVAEConfig, ModelEvaluation, evaluate_model,
                        ex_post_comparison, ex_post_fit, fid_draws, fixed_binarization, iwae_bound, paired_gain)
from ..quality import frechet_distance
from ..jobs import Job, train_all
from ..quality import gaussian_blur, sample_quality
from ..train import FitResult


def _flow_counts(name: str, v: Any) -> tuple[int, ...]:
    """A list of layer counts >= 1, one model each; empty leaves the planar models out."""
    def is_count(k: Any) -> bool:
        return isinstance(k, int) and not isinstance(k, bool) and k >= 1

    if is_count(v):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(is_count(k) for k in v):
        raise ParameterError(f"{name} must be a list of integers >= 1 (may be empty), got {v!r}; "
                             f"pass e.g. -p {name} '[2, 16]'")
    return tuple(v)


def _layers(default: int, help: str) -> Any:
    return integer(default, help + " (0 leaves the model out)", minimum=0)


@dataclass(frozen=True)
class Params(SeededParams):
    latent_size: int = integer(20, "latent dimensions of every model")
    hidden_size: int = integer(400, "width of the encoder's and decoder's hidden layer")
    epochs: int = integer(7, "training epochs per model")
    batch_size: int = integer(128, "images per mini-batch")
    lr: float = number(1e-3, "Adam learning rate")
    planar_ks: tuple[int, ...] = custom((2, 16), "numbers of planar layers, one model each (may be empty)",
                                        _flow_counts)
    radial_k: int = _layers(8, "radial layers")
    combined_k: int = _layers(8, "planar and radial layers interleaved")
    gk_k: int = _layers(4, "g-and-k layers interleaved with planar layers")
    gk_prior: bool = choice(True, "also train a model with a learnt multivariate g-and-k prior", (True, False))
    vaegan: bool = choice(True, "also train the VAE-GAN", (True, False))
    adv_weight: float = number(2.0, "VAE-GAN: weight of the adversarial term", inclusive=True)
    iwae_k: int = integer(200, "importance samples per test image for the NLL")
    iwae_subset: int | None = integer(500, "test images scored for the NLL", optional=True,
                                      none_means="all 10,000")
    n_samples: int = integer(2000, "generated images per model for FID / precision / recall")
    ex_post_codes: int | None = integer(10000, "training codes the ex-post priors are fitted to", optional=True,
                                        none_means="one per training image")
    classifier_epochs: int = integer(5, "epochs of the MNIST classifier behind FID (shared with the GAN "
                                        "chapter)")
    classifier_subset: int | None = integer(None, "training images of the classifier", optional=True,
                                            none_means="all 60,000")
    train_subset: int | None = integer(None, "training images", optional=True, none_means="all 60,000")


DEFAULT = Params()
PROFILES = {
    "smoke": replace(DEFAULT, seeds=2, epochs=1, planar_ks=(4,), radial_k=4, combined_k=4, gk_k=2, iwae_k=10,
                     iwae_subset=50, n_samples=300, ex_post_codes=1000, classifier_epochs=1,
                     classifier_subset=5000, train_subset=1000),
    "default": DEFAULT,
    # The default's eight models, trained into the regime the realistic anchor is for (a one-layer MLP VAE
    # reaches about 86-89 nats with dynamic binarisation after 100-300 epochs; planar flows gain 0.5-2),
    # with a likelihood estimate whose own noise is small (k = 1,000 on 2,000 test images). Cost, from the
    # default run's measured seconds per epoch with one thread per model (3.7-17.9 s, 55.6 s for all eight):
    # about 93 core-minutes of training, plus about 38 for the two replicate seeds of the VAE and planar K=16
    # (3.7 and 7.6 s per epoch), so about 65 minutes on 2 cores plus about 10 of scoring; on a GPU a few
    # minutes. (Rezende & Mohamed's own setting, d = 40, K up to 80, 5,000 importance samples on every
    # test image and hundreds of thousands of updates, is not a profile: nobody here can run it.)
    "full": replace(DEFAULT, epochs=100, iwae_k=1000, iwae_subset=2000, n_samples=10000, ex_post_codes=None,
                    classifier_epochs=10),
}


@dataclass(frozen=True)
class ChapterData:
    train: data.Split
    test: data.Split
    test_bin: torch.Tensor     # one fixed binarisation of the test set: every evaluation sees it
    iwae_idx: torch.Tensor     # test images scored for the NLL
    real: torch.Tensor         # the reference set of sample quality: n_samples test images
    real_train: torch.Tensor   # calibration: n_samples training images


@lru_cache(maxsize=2)
def chapter_data(p: Params) -> ChapterData:
    splits = data.mnist_splits(train_subset=p.train_subset, seed=p.seed)
    train, test = splits["train"], splits["test"]
    n_iwae = len(test) if p.iwae_subset is None else min(p.iwae_subset, len(test))
    iwae_idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(p.seed))[:n_iwae].sort().values
    real = test.x[torch.randperm(len(test), generator=torch.Generator().manual_seed(p.seed + 6))[:p.n_samples]]
    real_train = train.x[torch.randperm(len(train), generator=torch.Generator().manual_seed(p.seed + 2))
                         [:p.n_samples]]
    return ChapterData(train, test, fixed_binarization(test.x, seed=p.seed), iwae_idx, real, real_train)


def model_configs(p: Params) -> dict[str, FlowVAEConfig]:
    """The flow-VAEs by label: the plain VAE, one model per flow setting, and the g-and-k prior model."""
    d, h = p.latent_size, p.hidden_size
    configs = {"VAE": FlowVAEConfig(d, h)}
    configs.update({f"planar K={k}": FlowVAEConfig(d, h, flow="planar", n_flows=k) for k in p.planar_ks})
    for label, flow, k in (("radial", "radial", p.radial_k), ("planar+radial", "combined", p.combined_k),
                           ("g-and-k+planar", "gk", p.gk_k)):
        if k:
            configs[f"{label} K={k}"] = FlowVAEConfig(d, h, flow=flow, n_flows=k)
    if p.gk_prior:
        configs["g-and-k prior"] = FlowVAEConfig(d, h, prior="gk")
    return configs


def flow_models(p: Params) -> list[str]:
    """Labels of the models with a flow posterior (the candidates of the chapter's verdict)."""
    return [label for label, cfg in model_configs(p).items() if cfg.flow != "none"]


def _labels(p: Params) -> list[str]:
    return list(model_configs(p)) + (["VAE-GAN"] if p.vaegan else [])


def labels(run) -> list[str]:
    """The label of each of the chapter's own-seed jobs (the first ones of :func:`jobs`), in the same order."""
    return _labels(run.params)


def replicated_models(p: Params) -> list[str]:
    """The models of the headline comparison, trained on every seed of ``seed_values()``: the plain VAE and
    the planar model with the largest K; just ["VAE"] when ``planar_ks`` is empty (then nothing is
    replicated, see :func:`replicate_seeds`)."""
    return ["VAE"] + ([f"planar K={max(p.planar_ks)}"] if p.planar_ks else [])


def replicate_seeds(p: Params) -> list[int]:
    """The seeds besides the chapter's own that :func:`replicated_models` are also trained with: the rest of
    ``seed_values()``, or none without a planar model (a replicate of the VAE alone compares nothing)."""
    return p.seed_values()[1:] if p.planar_ks else []


def _job_name(label: str) -> str:
    return "flow_vae-" + label.replace(" ", "").replace("=", "")


def _training_data(p: Params, seed: int | None = None):
    """The training images of ``seed``'s run (default: the chapter's own): for a replicate, the same
    selection as ``chapter_data(p.replicate(seed)).train`` without building the rest of its data."""
    if seed is None or seed == p.seed:
        d = chapter_data(p)
        return d.train.x, d.train.y
    return data.training_tensors(subset=p.train_subset, seed=seed)


def jobs(run) -> list[Job]:
    """Every flow-VAE (dynamically binarised: ``binarize=True``) and the VAE-GAN, which binarises its
    likelihood terms itself and shows its discriminator grey-level images, with the chapter's own seed (in
    the order of :func:`labels`); then, for each of :func:`replicate_seeds`, the plain VAE and the planar
    model with the largest K (:func:`replicated_models`), named ``...-seed{s}``."""
    p: Params = run.params
    common = dict(data=partial(_training_data, p), epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                  **p.job_settings(), chapter="flow_vae")
    configs = model_configs(p)
    out = [Job(name=_job_name(label), model=partial(FlowVAE, cfg), binarize=True, **common)
           for label, cfg in configs.items()]
    if p.vaegan:
        vaegan = partial(VAEGAN, FlowVAEConfig(p.latent_size, p.hidden_size), adv_weight=p.adv_weight)
        out.append(Job(name="flow_vae-vaegan", model=vaegan, binarize=False, **common))
    for seed in replicate_seeds(p):
        out += [Job(name=p.job_name(_job_name(label), seed), model=partial(FlowVAE, configs[label]), binarize=True,
                    data=partial(_training_data, p, seed), epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                    **p.replicate(seed).job_settings(), chapter="flow_vae")
                for label in replicated_models(p)]
    return out


def split_fits(p: Params, fits: Sequence[FitResult]
               ) -> tuple[dict[str, FitResult], dict[int, dict[str, FitResult]]]:
    """``train_all(jobs(run))`` (without the classifier) as (the own seed's results by label, as
    :func:`labels`; {seed: {label: fit}} of :func:`replicated_models` for the own seed and every
    :func:`replicate_seeds`, the own seed first)."""
    own, reps, extra = _labels(p), replicated_models(p), replicate_seeds(p)
    expected = len(own) + len(reps) * len(extra)
    if len(fits) != expected:
        raise ValueError(f"expected {len(own)} own-seed models ({', '.join(own)}) and {len(reps)} for each of "
                         f"{len(extra)} replicate seeds, i.e. {expected} fits, got {len(fits)}")
    results = dict(zip(own, fits[:len(own)]))
    by_seed = {p.seed: {label: results[label] for label in reps}}
    for i, seed in enumerate(extra):
        start = len(own) + i * len(reps)
        by_seed[seed] = dict(zip(reps, fits[start:start + len(reps)]))
    return results, by_seed


def classifier_job_of(p: Params) -> Job:
    """The book's MNIST classifier behind this chapter's sample-quality scores (shared with the GAN chapter)."""
    return replace(classifier_job(p.classifier_epochs, p.classifier_subset, p.seed, p.device, threads=p.threads,
                                  precision=p.precision), chapter="flow_vae")


def train(run) -> tuple[dict[str, FitResult], dict[int, dict[str, FitResult]], MNISTClassifier]:
    """Train (or load) every model of :func:`jobs` and the classifier, side by side: the own seed's results
    by label (:func:`labels`), the headline comparison's fits by seed (:func:`split_fits`) and the
    classifier (one, the own seed's) in eval mode."""
    *fits, clf = train_all(jobs(run) + [classifier_job_of(run.params)])
    results, by_seed = split_fits(run.params, fits)
    return results, by_seed, clf.model.eval()


def evaluate_models(run, results: Mapping[str, FitResult], classifier: MNISTClassifier
                    ) -> tuple[pd.DataFrame, dict[str, ModelEvaluation]]:
    """The results table (one row per model, :func:`vaebook.flow_vae.evaluate_model`, plus seconds per
    epoch; then two calibration rows of real training images, sharp and blurred) and each model's
    :class:`vaebook.flow_vae.ModelEvaluation` (prior samples, test codes, per-image NLL bounds)."""
    p: Params = run.params
    d = chapter_data(p)
    quality = partial(sample_quality, classifier, d.real)
    rows, evals = {}, {}
    for name, r in results.items():
        ev = evaluate_model(r.model, nll_images=d.test_bin[d.iwae_idx], code_images=d.test_bin, labels=d.test.y,
                            quality=quality, n_samples=p.n_samples, iwae_k=p.iwae_k, seed=p.seed)
        row = dict(ev.row)
        nll_seconds = row.pop("NLL seconds")   # keep the table's column order: s/epoch, then NLL seconds
        rows[name] = {**row, "s/epoch": r.seconds_per_epoch, "NLL seconds": nll_seconds}
        evals[name] = ev
    for name, images in (("real training images", d.real_train),
                         ("real, blurred (σ = 1 px)", gaussian_blur(d.real_train, 1.0))):
        q = quality(images)
        rows[name] = {"FID": q["fid"], "precision": q["precision"], "recall": q["recall"]}
    table = pd.DataFrame(rows).T
    table.index.name = "model"
    return table, evals


def seed_bounds(p: Params, by_seed: Mapping[int, Mapping[str, FitResult]],
                known: Mapping[str, torch.Tensor] | None = None) -> dict[int, dict[str, torch.Tensor]]:
    """Per-image IWAE bound (log p(x), nats) of every model of ``by_seed`` (:func:`split_fits`), computed as
    :func:`evaluate_models` computes the results table's NLL: :func:`vaebook.flow_vae.iwae_bound` with
    ``iwae_k`` samples on the chapter's own scored test images (``test_bin[iwae_idx]``), noise seeded with the
    chapter's own ``seed``, for every training seed: the rows differ only by how the model was trained.
    ``known``: the own seed's bounds by label (``evals[label].log_px``), used instead of recomputing them."""
    d = chapter_data(p)
    images = d.test_bin[d.iwae_idx]
    known = known or {}
    return {seed: {label: (known[label] if seed == p.seed and label in known
                           else iwae_bound(fit.model, images, p.iwae_k, seed=p.seed).log_px)
                   for label, fit in fits.items()}
            for seed, fits in by_seed.items()}


def seed_gains(bounds: Mapping[int, Mapping[str, torch.Tensor]], baseline: str = "VAE",
               model: str | None = None) -> pd.DataFrame:
    """The headline comparison per seed, from :func:`seed_bounds`: one row per seed with the test NLL of
    ``baseline`` and of ``model`` (−mean log p(x), nats), ``gain`` (baseline NLL − model NLL: positive
    favours the model) and ``± s.e.``, the gain's paired standard error over the scored test images
    (:func:`vaebook.flow_vae.paired_gain`: the importance-sampling estimate's own noise and the choice of
    images, not training noise). Without ``model``, only the baseline's column."""
    rows = {}
    for seed, by_label in bounds.items():
        base = torch.as_tensor(by_label[baseline]).double()
        row = {baseline: -base.mean().item()}
        if model is not None:
            other = torch.as_tensor(by_label[model]).double()
            row[model] = -other.mean().item()
            row["gain"] = row[baseline] - row[model]
            row["± s.e."] = paired_gain(base, other)[1]
        rows[seed] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "seed"
    return table


FID_DRAWS = 5
"""Prior sample draws per model for the FID's draw-to-draw spread (:func:`fid_spread`)."""


def fid_spread(run, results: Mapping[str, FitResult], classifier: MNISTClassifier,
               draws: int = FID_DRAWS) -> pd.DataFrame:
    """FID of ``n_samples`` prior samples per model, over ``draws`` sample draws (seeds seed + 1, ...: the
    first is the draw of the results table), against the same test reference set: one row per model, one
    column per draw."""
    p: Params = run.params
    real = classifier_features(classifier, chapter_data(p).real)
    fid = lambda images: frechet_distance(real, classifier_features(classifier, images))  # noqa: E731
    seeds = [p.seed + 1 + i for i in range(draws)]
    return pd.DataFrame({name: fid_draws(r.model, fid, p.n_samples, seeds) for name, r in results.items()},
                        index=pd.Index(seeds, name="sample seed")).T


def ex_post(run, model: FlowVAE, classifier: MNISTClassifier
            ) -> tuple[pd.DataFrame, dict[str, torch.Tensor], ExPostFit]:
    """:func:`vaebook.flow_vae.ex_post_comparison` on one model: codes of a fixed binarisation of the
    training images (seed + 3), 10 mixture components, samples scored against the test reference set.
    Returns the table, the samples and the fit (training codes and priors, for plots)."""
    p: Params = run.params
    d = chapter_data(p)
    train_bin = fixed_binarization(d.train.x, seed=p.seed + 3)
    fit = ex_post_fit(model, train_bin, max_codes=p.ex_post_codes, n_components=10, seed=p.seed)
    table, samples = ex_post_comparison(model, train_bin, d.test_bin, partial(sample_quality, classifier, d.real),
                                        n_samples=p.n_samples, seed=p.seed, fit=fit)
    return table, samples, fit


def metric_name(label: str) -> str:
    """A model label as a metric/glue name: "planar K=16" -> "planar_k16", "g-and-k prior" -> "gk_prior"."""
    import re

    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]+", "_", label.lower().replace("g-and-k", "gk").replace("=", "")
                                     )).strip("_")
