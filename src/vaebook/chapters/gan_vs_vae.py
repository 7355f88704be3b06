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
from ..config import SeededParams, choice, integer, number
from ..gan import GAN
from ..jobs import Hooks, Job, run_job
from ..models import VAE, VAEConfig, count_parameters
from ..sample_analysis import quality_tracker, samples_snapshot
from ..train import FitResult

CHAPTER = "gan_vs_vae"
N_TRACK = 500        # samples scored each epoch (Fréchet distance, precision, recall)
N_FIXED = 64         # samples from fixed noise kept every epoch (grids and animations)
N_TEST_ELBO = 2000   # test images of the VAE's per-epoch ELBO terms
NOISE_SETS = 4       # extra sample sets per model whose scores give the final scores' sampling noise


def _subset(default: int | None, help: str) -> int | None:
    return integer(default, help, minimum=100, optional=True, none_means="all 60,000")


@dataclass(frozen=True)
class Params(SeededParams):
    vae_epochs: int = integer(3, "VAE training epochs")
    gan_epochs: int = integer(2, "GAN training epochs")
    vae_train_subset: int | None = _subset(None, "training images for the VAE")
    gan_train_subset: int | None = _subset(None, "training images for the GAN")
    vae_batch_size: int = integer(128, "VAE images per mini-batch", minimum=2)
    gan_batch_size: int = integer(64, "GAN images per mini-batch", minimum=2)
    vae_lr: float = number(1e-3, "VAE Adam learning rate")
    gan_lr: float = number(1e-3, "GAN Adam learning rate (both networks; the source's is 2e-4)")
    gan_width: int = integer(32, "channels of the generator's hidden layers (the source's: 128)", maximum=1024)
    gan_disc_hidden: int = integer(1024, "units of a hidden dense layer before the discriminator's output "
                                        "(0: the source's linear read-out)", minimum=0, maximum=4096)
    gan_r1_gamma: float = number(1.0, "weight of the R1 gradient penalty on the discriminator (0: none, as in "
                                      "the source)", minimum=0.0, inclusive=True, maximum=1000.0)
    gan_ema: float = number(0.995, "decay of the exponential moving average of the generator's weights that "
                                   "samples are drawn from (0: the trained generator itself, as in the source)",
                            minimum=0.0, inclusive=True, maximum=0.9999)
    gan_dropout: float = number(0.0, "dropout after each discriminator convolution (the source's: 0.4)",
                                minimum=0.0, inclusive=True, maximum=0.9)
    vae_loss: str = choice("sum", "'sum': per-image ELBO (used here); 'mean': the source's mean BCE + mean KL",
                           ("sum", "mean"))
    latent_size: int = integer(16, "VAE latent dimensions (the GAN's noise has 100, as in the source)")
    classifier_epochs: int = integer(5, "epochs of the MNIST classifier behind the quality metrics")
    classifier_subset: int | None = _subset(None, "training images of the MNIST classifier")
    n_samples: int = integer(2000, "generated (and real) images scored by the quality metrics", minimum=100,
                             maximum=10000)


DEFAULT = Params()
# The default GAN keeps the source's generator at a quarter of its width; its discriminator loses the dropout,
# gains a hidden layer in its read-out and an R1 penalty; both learn 5x faster, on all 60,000 images, and
# samples come from an average of the generator's weights. Each change is a row of bench/bench_gan_recipe.py
# (the chapter's ablation table). The VAE trains on all 60,000 images too, for about half the GAN's time.
PROFILES = {
    "smoke": replace(DEFAULT, seeds=2, vae_epochs=1, gan_epochs=1, vae_train_subset=1000, gan_train_subset=256,
                     classifier_epochs=1, classifier_subset=5000, n_samples=300),
    "default": DEFAULT,
    # the source's exact networks and its epochs, on all images (the source's batch 128 and learning rate)
    "full": replace(DEFAULT, vae_epochs=30, gan_epochs=50, vae_train_subset=None, gan_width=128, gan_dropout=0.4,
                    gan_disc_hidden=0, gan_r1_gamma=0.0, gan_ema=0.0, gan_batch_size=128, gan_lr=2e-4,
                    classifier_epochs=10, n_samples=10000),
    # What one working session on 2 CPU cores can run instead (the full profile's GAN alone is about 4.5 hours
    # there): the default recipe with five times the GAN's training and the VAE for 10 epochs on all images,
    # scored exactly as the default (same classifier, same 2,000 samples), so that only the training budget
    # differs between a default build and this reference run. Its results are book/reference/gan_vs_vae.json.
    "reference": replace(DEFAULT, vae_epochs=10, gan_epochs=10, vae_train_subset=None),
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


def _training_images(p: Params, seed: int, model: str) -> tuple[torch.Tensor, None]:
    d = chapter_data(p.replicate(seed))
    return (d.vae_train if model == "vae" else d.gan_train), None


def _hooks(p: Params, seed: int, model: str, device: torch.device) -> Hooks:
    """The Fréchet distance, precision and recall of N_TRACK samples and N_FIXED fixed-noise samples per
    epoch; for the VAE also the ELBO terms on test images. Every seed's models are scored by the chapter's one classifier (trained
    first by ``jobs``, loaded here from the cache) against the chapter's own real reference images."""
    d = chapter_data(p)
    clf = run_job(chapter_classifier_job(p)).model.eval()
    quality = quality_tracker(clf, d.real_test[:N_TRACK], n_samples=N_TRACK, seed=seed + 2)
    snapshot = samples_snapshot(N_FIXED, seed=seed + 3)
    if model != "vae":
        return Hooks(epoch_end=quality, snapshot=snapshot)
    test_x = d.test.x[:N_TEST_ELBO].to(device)

    def quality_and_test_elbo(m, epoch):
        return {**quality(m, epoch), **{f"test_{k}": v for k, v in m.evaluate(test_x).items()}}

    return Hooks(epoch_end=quality_and_test_elbo, snapshot=snapshot)


def vae_config(p: Params) -> VAEConfig:
    return VAEConfig(latent_size=p.latent_size, arch="conv", loss_reduction=p.vae_loss)


def jobs(run) -> list[Job]:
    """The MNIST classifier (first: the others' hooks use it), then the conv VAE and the GAN for every seed
    of ``seed_values()``: [classifier, vae(seed), gan(seed), vae(seed + 1), gan(seed + 1), ...]."""
    p: Params = run.params
    track_key = {"tracker": "quality500-v2", "classifier": [MNISTClassifier().cache_key(), p.classifier_epochs,
                                                        p.classifier_subset, p.seed],
                 "n_track": N_TRACK, "reference": p.n_samples}
    out = [chapter_classifier_job(p)]
    for seed in p.seed_values():
        common = dict(**p.replicate(seed).job_settings(), chapter=CHAPTER,
                      extra_key={**track_key, "reference_seed": p.seed} if seed != p.seed else track_key)
        gan = partial(GAN, width=p.gan_width, dropout=p.gan_dropout, disc_hidden=p.gan_disc_hidden,
                      r1_gamma=p.gan_r1_gamma, ema=p.gan_ema)
        out += [Job(name=p.job_name(f"{CHAPTER}-vae", seed), model=partial(VAE, vae_config(p)),
                    data=partial(_training_images, p, seed, "vae"), epochs=p.vae_epochs, batch_size=p.vae_batch_size,
                    lr=p.vae_lr, hooks=partial(_hooks, p, seed, "vae"), **common),
                Job(name=p.job_name(f"{CHAPTER}-gan", seed), model=gan, data=partial(_training_images, p, seed, "gan"),
                    epochs=p.gan_epochs, batch_size=p.gan_batch_size, lr=p.gan_lr,
                    hooks=partial(_hooks, p, seed, "gan"), **common)]
    return out


def fits_by_seed(p: Params, fits: list[FitResult]) -> dict[int, tuple[FitResult, FitResult]]:
    """``train_all(jobs(run))`` without the classifier, as {seed: (VAE fit, GAN fit)} in seed order."""
    models = fits[1:]
    if len(models) != 2 * p.seeds:
        raise ValueError(f"expected a VAE and a GAN for each of {p.seeds} seeds, got {len(models)} fits")
    return {seed: (models[2 * i], models[2 * i + 1]) for i, seed in enumerate(p.seed_values())}


def reconstruction_quality(p: Params, classifier: MNISTClassifier, vae: VAE) -> dict:
    """How the classifier reads the VAE's reconstructions (posterior means decoded) of the first N_TEST_ELBO
    test digits: ``accuracy``, the share labelled as the digit they came from, and ``hist``, the share
    labelled as each digit (10 numbers)."""
    from ..classifier import classifier_probs

    test = chapter_data(p).test
    predicted = classifier_probs(classifier, vae.reconstruct(test.x[:N_TEST_ELBO])).argmax(1)
    return {"accuracy": (predicted == test.y[:N_TEST_ELBO]).double().mean().item(),
            "hist": np.bincount(predicted.numpy(), minlength=10) / len(predicted)}


def seed_scores(p: Params, classifier: MNISTClassifier, fits: dict[int, tuple[FitResult, FitResult]]) -> pd.DataFrame:
    """Every seed's VAE and GAN scored the same way: ``n_samples`` samples each (the VAE's, then the GAN's,
    from one noise generator seeded with seed + 6, as the page's own samples) against the chapter's real
    reference set, in the classifier's features. One row per (seed, model) with FID, precision, recall, the
    rarest and commonest digit's share, whether every digit has 5-15% of the samples ("even digits"), and
    whether the model trained: for the GAN the three criteria of :func:`vaebook.sample_analysis.gan_criteria`
    (against that seed's VAE), for the VAE the checks of :func:`vaebook.sample_analysis.vae_criteria`, its
    reconstructions being those of the first N_TEST_ELBO test digits (:func:`reconstruction_quality`)."""
    from ..quality import sample_quality
    from ..sample_analysis import collapse_check, coverage_met, gan_criteria, vae_criteria

    real = chapter_data(p).real_test
    rows = []
    for seed, (vae_fit, gan_fit) in fits.items():
        noise = torch.Generator().manual_seed(seed + 6)
        x = {label: fit.model.sample(p.n_samples, generator=noise).cpu()
             for label, fit in (("VAE", vae_fit), ("GAN", gan_fit))}
        q = {label: sample_quality(classifier, real, x[label]) for label in x}
        h = vae_fit.history
        recognised = reconstruction_quality(p, classifier, vae_fit.model)["accuracy"]
        trained = {
            "GAN": all(c.passed for c in gan_criteria(q["GAN"]["class_hist"], q["GAN"]["fid"], q["VAE"]["fid"],
                                                     q["GAN"]["precision"])),
            "VAE": all(c.passed for c in vae_criteria((h.test_recon + h.test_kl).to_numpy(),
                                                     collapse_check(x["VAE"], real), recognised))}
        for label in ("VAE", "GAN"):
            hist = q[label]["class_hist"]
            rows.append({"seed": seed, "model": label, "FID": q[label]["fid"], "precision": q[label]["precision"],
                         "recall": q[label]["recall"], "rarest digit": float(hist.min()),
                         "commonest digit": float(hist.max()), "even digits": coverage_met(hist),
                         "trained": trained[label]})
    return pd.DataFrame(rows).set_index(["seed", "model"])


RECIPE_ABLATION = "gan_recipe.csv"   # written by bench/bench_gan_recipe.py into book/reference/


COLLAPSED_RECALL = 0.01   # an ablation row whose samples reach no real digit's neighbourhood has collapsed


def recipe_reading(ablation: pd.DataFrame, seed_fid_range: float) -> str:
    """What the ablation table (:func:`recipe_ablation`: rows in order, columns "FID", "precision", "train s",
    "last D loss", "last D acc", optionally "recall") shows, as sentences: where the source recipe ended,
    which change lowered the FID most, which raised the precision most and which cut the training time most
    (each against the row above), and where the last row ended; ``seed_fid_range`` (the spread of the
    chapter's GAN FID over its seeds) says how large a difference between two one-seed rows has to be to
    mean anything. A row with recall below :data:`COLLAPSED_RECALL` has collapsed (a generator that draws
    one blob can score precision 1): it is named, and no FID or precision comparison involves it."""
    if len(ablation) < 2:
        raise ValueError(f"an ablation needs at least two rows, got {len(ablation)}")
    src, last = ablation.iloc[0], ablation.iloc[-1]
    collapsed = (ablation["recall"] < COLLAPSED_RECALL if "recall" in ablation
                 else pd.Series(False, index=ablation.index))
    comparable = ~collapsed & ~collapsed.shift(1, fill_value=False)   # the row and the one above trained
    comparable.iloc[0] = False                                           # the first row has nothing above it
    fid_drop = ablation["FID"].shift(1) - ablation["FID"]          # positive: the row's change lowered the FID
    precision_gain = ablation["precision"] - ablation["precision"].shift(1)
    speed_up = ablation["train s"].shift(1) / ablation["train s"]   # > 1: the row's change made training faster
    fastest = speed_up.iloc[1:].idxmax()
    at = ablation.index.get_loc
    text = (f"The source's recipe ended with FID {src['FID']:.1f}, precision {src['precision']:.2f} and its "
            f"discriminator at loss {src['last D loss']:.2f} (mean accuracy {src['last D acc']:.0%}; at chance: "
            f"1.39 and 50%).")
    if comparable.any():
        best_fid, best_precision = fid_drop[comparable].idxmax(), precision_gain[comparable].idxmax()
        text += (f" The change that lowered the FID most was \"{best_fid}\" "
                 f"({ablation['FID'].iloc[at(best_fid) - 1]:.1f} → {ablation.loc[best_fid, 'FID']:.1f}); the one "
                 f"that raised the precision most was \"{best_precision}\" "
                 f"({ablation['precision'].iloc[at(best_precision) - 1]:.2f} → "
                 f"{ablation.loc[best_precision, 'precision']:.2f});")
    else:
        text += " No two neighbouring runs both trained, so no change's effect on FID or precision is read;"
    text += f" the one that cut the training time most was \"{fastest}\" ({speed_up[fastest]:.1f}× faster)."
    for name in ablation.index[collapsed]:
        row = ablation.loc[name]
        text += (f" Run \"{name}\" collapsed: recall {row['recall']:.2f}, with its discriminator at loss "
                 f"{row['last D loss']:.2f} (mean accuracy {row['last D acc']:.0%}), so its FID and precision "
                 f"({row['FID']:.1f}, {row['precision']:.2f}) describe no digits.")
        following = at(name) + 1
        if following < len(ablation) and not collapsed.iloc[following]:
            after = ablation.iloc[following]
            text += (f" The next change, \"{ablation.index[following]}\", trained again: FID {after['FID']:.1f}, "
                     f"precision {after['precision']:.2f}, discriminator loss {after['last D loss']:.2f}")
            if following >= 2 and not collapsed.iloc[following - 2]:   # the row before the collapsed one
                before = ablation.iloc[following - 2]
                text += (f", against FID {before['FID']:.1f} and precision {before['precision']:.2f} before "
                         f"the collapsed run's change")
            text += "."
    text += (f" The last run reached FID {last['FID']:.1f} and precision {last['precision']:.2f} in "
             f"{last['train s'] / src['train s']:.2f} of the source recipe's training time. Each run is one "
             f"seed: across this page's seeds the default GAN's FID spread over {seed_fid_range:.1f} points, so "
             f"a smaller difference between two runs is not evidence of an effect.")
    return text


RECIPE_FORMATS = {"G params": "{:,.0f}", "steps": "{:,.0f}", "train s": "{:.0f}", "FID": "{:.1f}",
                  "precision": "{:.3f}", "recall": "{:.3f}", "rarest digit": "{:.1%}", "commonest digit": "{:.1%}",
                  "last D loss": "{:.2f}", "last D acc": "{:.0%}"}


RECIPE_COLUMNS = 5   # ablation rows per table on the page: more do not fit the page's column


def recipe_table(ablation: pd.DataFrame) -> pd.DataFrame:
    """The ablation as text for the page, one column per row of the ablation (so it fits the column): the
    columns are the row numbers (:func:`recipe_legend` names their changes), the rows formatted scores."""
    numbers = [str(name).split(".", 1)[0] for name in ablation.index]
    body = {col: [fmt.format(v) for v in ablation[col]] for col, fmt in RECIPE_FORMATS.items() if col in ablation}
    return pd.DataFrame(body, index=numbers).T


def recipe_tables(ablation: pd.DataFrame, max_columns: int = RECIPE_COLUMNS) -> list[pd.DataFrame]:
    """:func:`recipe_table` of consecutive slices of the ablation, as few as keep each table within
    ``max_columns`` columns, and as even as possible (9 rows: 5 and 4)."""
    if max_columns < 1:
        raise ValueError(f"max_columns must be >= 1, got {max_columns!r}")
    n_tables = max(1, -(-len(ablation) // max_columns))
    bounds = [-(-i * len(ablation) // n_tables) for i in range(n_tables + 1)]   # ceil: the first tables larger
    return [recipe_table(ablation.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def recipe_legend(ablation: pd.DataFrame) -> str:
    """The change of each ablation row, as one line of Markdown: "**1** source recipe; **2** ..." (the
    table's column headers are the bare row numbers, so that the table fits the page's column)."""
    parts = [str(name).split(". ", 1) for name in ablation.index]
    return "; ".join(f"**{p[0]}** {p[-1]}" if len(p) == 2 else f"**{p[0]}**" for p in parts) + "."


def recipe_ablation() -> pd.DataFrame | None:
    """The committed GAN recipe ablation (``book/reference/gan_recipe.csv``), or None if not measured yet."""
    from ..report import REFERENCE_DIR

    path = REFERENCE_DIR / RECIPE_ABLATION
    return pd.read_csv(path, index_col=0) if path.exists() else None


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


def scored_alike(a: Params, b: Params) -> bool:
    """Whether two runs score their samples the same way (the same classifier, reference images and number of
    samples), so that their FID, precision and recall can be compared one to one."""
    fields = ("seed", "classifier_epochs", "classifier_subset", "n_samples")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def _change(before: list[float], after: list[float], fmt: str) -> tuple[str, int]:
    """'from A to B' (seed means) and the direction that holds on every seed pair: +1 if every value of
    ``after`` exceeds every value of ``before``, -1 if every one is below, 0 if the seeds' ranges overlap."""
    a, b = float(np.mean(before)), float(np.mean(after))
    direction = 1 if min(after) > max(before) else -1 if max(after) < min(before) else 0
    return f"from {a:{fmt}} to {b:{fmt}}", direction


def budget_reading(build: dict, reference: dict | None, params: Params) -> str:
    """What the reference run adds to this build (run with ``params``), as sentences: how the GAN's and the
    VAE's FID and precision (seed means; results records as written by :class:`vaebook.report.Report`)
    changed from this build to the reference run, and whether each moved beyond the spread of the seeds.
    The reference run is taken to have its profile's parameters (``PROFILES[reference["profile"]]``); the
    numbers are compared only when both runs scored their samples alike (:func:`scored_alike`), and the
    remark on longer training is made only when the reference trained both models longer and its GAN still
    missed the precision target (:data:`vaebook.sample_analysis.MIN_GAN_PRECISION`) on every seed."""
    from ..sample_analysis import MIN_GAN_PRECISION

    if reference is None:
        return "There is no reference run to compare with yet."
    if reference["profile"] == build["profile"]:
        return f"This build is a run of the reference run's own profile (`{build['profile']}`)."
    ref_params = PROFILES.get(reference["profile"])
    if ref_params is None or not scored_alike(params, ref_params):
        return (f"This build (`{build['profile']}` profile) scores its samples differently from the reference run "
                f"(another classifier, reference set or number of samples), so their FID, precision and recall "
                f"are not compared here.")
    m, r = build["metrics"], reference["metrics"]
    parts, moved = [], {}
    for model in ("gan", "vae"):
        fid, fid_dir = _change(m[f"fid_{model}"], r[f"fid_{model}"], ".1f")
        prec, prec_dir = _change(m[f"precision_{model}"], r[f"precision_{model}"], ".2f")
        parts.append(f"the {model.upper()}'s mean FID went {fid} and its mean precision {prec}")
        moved[model] = (fid_dir, prec_dir)
    words = {1: "rose on every seed", -1: "fell on every seed", 0: "changed by less than the spread of the seeds"}
    text = (f"From this build (`{build['profile']}`) to the reference run (`{reference['profile']}`, scored "
            f"alike), {parts[0]}; {parts[1]}. The GAN's FID {words[moved['gan'][0]]} and its precision "
            f"{words[moved['gan'][1]]}; the VAE's FID {words[moved['vae'][0]]} and its precision "
            f"{words[moved['vae'][1]]}.")
    longer = ref_params.gan_epochs > params.gan_epochs and ref_params.vae_epochs > params.vae_epochs
    if (longer and moved["gan"][0] == -1 and moved["gan"][1] != 1
            and max(r["precision_gan"]) < MIN_GAN_PRECISION):
        text += (" Longer training improved the GAN's FID without raising its precision, so in these features "
                 "precision does not follow training progress and the precision target is not met by training "
                 "longer alone.")
    return text
