# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # β-VAE: latent size and β, untangled
#
# The source study for this chapter trained a convolutional VAE on MNIST with latent sizes 5, 10, 15 and
# 20, and reported which size reconstructs digits best, digit by digit. Reading its code shows that it
# changed **two** things at once: the latent size $d$ and, hidden in how its loss was averaged, the weight
# of the KL term. This chapter separates the two, checks the source's headline (a PSNR drop from $d = 15$
# to $d = 20$) over several training seeds, measures per-digit reconstruction quality properly,
# looks at how well the digits separate in latent space, and compares the codes the encoder gives with
# codes optimised for each image through the frozen decoder.
#
# ## The β-VAE objective
#
# With the usual Gaussian encoder $q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma_\phi^2(x))$,
# prior $p(z) = \mathcal N(0, I_d)$ and Bernoulli decoder, the β-VAE {cite}`higgins2017betavae` minimises per
# image
#
# $$
# \begin{aligned}
# \mathcal L_\beta(x) ={}& \underbrace{\mathbb E_{q_\phi(z\mid x)}\!\left[-\log p_\theta(x\mid z)\right]}_{\text{distortion: BCE summed over 784 pixels}} \\
# &+ \beta\,\underbrace{\mathrm{KL}\!\left(q_\phi(z\mid x)\,\|\,p(z)\right)}_{\text{rate: summed over } d \text{ dimensions}} ,
# \end{aligned}
# $$
#
# so $\beta = 1$ is the negative ELBO. Smaller β buys sharper reconstructions with a latent space that
# strays from the prior; larger β the reverse. In the rate–distortion reading {cite}`alemi2018fixing` the KL
# is the number of nats the code carries about the image, and β is the price of one nat.
#
# ## What β did the source use?
#
# The source wrote its loss in Keras with *means* rather than sums:
#
# $$
# \begin{aligned}
# \mathcal L_{\text{src}} ={}& \frac{1}{784}\sum_{i=1}^{784}\mathrm{BCE}_i \\
# &- 0.0005\cdot\frac1d\sum_{j=1}^{d}\left(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\right).
# \end{aligned}
# $$
#
# Since $\sum_j (1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2) = -2\,\mathrm{KL}$, this is
# $\mathcal L_{\text{src}} = \mathrm{recon}/784 + (0.001/d)\,\mathrm{KL}$, and multiplying by the constant
# 784 (which does not move the minimum, and to which Adam is almost insensitive) gives
#
# $$
# \begin{aligned}
# 784\,\mathcal L_{\text{src}} &= \mathrm{recon} + \beta_{\text{eff}}\,\mathrm{KL},
# \qquad \beta_{\text{eff}} = \frac{784 \cdot 0.001}{d}, \\
# \beta_{\text{eff}} &= 0.157,\ 0.078,\ 0.052,\ 0.039 \quad (d = 5, 10, 15, 20).
# \end{aligned}
# $$
#
# So every source model was a β-VAE with $\beta \ll 1$, and a larger latent size also meant a *weaker*
# KL penalty: its comparison of latent sizes is a comparison of $(d, \beta)$ pairs. Below, β is always
# defined against the summed ELBO; the grid includes the source's $\beta_{\text{eff}}(d)$ (named
# `"source"`), so its table can be reproduced, and $\beta = 1$, so the latent size can be compared at a
# fixed β. (`vaebook.beta_vae.source_effective_beta` holds the derivation; a test checks it against the
# source's loss evaluated directly.)
#
# ## Three bugs in the source's evaluation
#
# * Its **"full VAE"** reconstruction returned the input image unchanged, so its table shows MSE 0 and
#   PSNR ∞ for the full model.
# * Its **"decoder-only"** column was in fact the ordinary reconstruction (encode, decode). The numbers
#   the source reports as decoder-only are therefore the VAE's reconstruction quality, and there was
#   no decoder-only experiment at all.
# * Its **"10 representative images per digit"** were, in the code, all test images of each digit.
#
# Here the ordinary reconstruction means encode, take the posterior mean, decode; the "decoder-only"
# experiment becomes a comparison of the encoder's codes with codes found for each image by gradient
# descent through the frozen decoder, with no encoder (its own section says exactly what that
# measures); and the representatives are ten images per digit drawn by a stated, seeded rule. Both
# per-digit tables (10 representatives and all test images) are reported.

# %% tags=["parameters"]
profile = "default"    # smoke | default | full
latent_sizes = None    # None: the profile's, e.g. [5, 10, 15, 20]
betas = None           # β grid; "source" means 784·0.001/d
epochs = None
batch_size = None
lr = None
train_subset = None    # images drawn before the validation split
val_fraction = None    # share of those held out for validation
test_subset = None     # test images (None: all 10,000)
representatives = None  # representative test images per digit
decoder_steps = None   # Adam steps of the per-image code search
decoder_lr = None      # Adam step size of that search
tsne_points = None     # test images embedded by t-SNE
seed = None
seeds = None           # training seeds of the source-β models of seed_sizes (seed, seed + 1, ...)
seed_sizes = None      # latent sizes whose source-β model is trained with every seed
device = None          # "auto", "cpu", "cuda", ...
precision = None       # "auto", "fp32", "bf16"
threads = None         # torch threads per training job

# %%
from vaebook.config import chapter_params
from vaebook.report import Report

run = chapter_params("beta_vae", profile, globals())
report = Report(run)
run

# %% [markdown]
# The table records the profile and every parameter behind this page. The `full` profile uses the
# source's own training settings (15 epochs, batch 32, 20% validation split, all 60,000 training images)
# and a wider β grid: {glue:md}`full_models` models of about nine minutes each on one core of this book's
# 2-core CPU (`make chapter NAME=beta_vae PROFILE=full`; minutes on a GPU). {glue:md}`profile_note`
# To rerun with other values:
# `make chapter NAME=beta_vae PARAMS="-p epochs 15 -p betas \"['source', 1.0, 4.0]\""`.
#
# ## Data

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display

from vaebook import beta_vae as bv
from vaebook import plots
from vaebook.chapters import beta_vae as chapter
from vaebook.evaluate import latent_separation
from vaebook.io import atomic_write_text
from vaebook.jobs import train_all
from vaebook.models import count_parameters
from vaebook.report import results_dir

sets = chapter.chapter_data(run.params)
test, reps = sets.test, sets.reps
sample_idx = sets.sample_idx  # test images for t-SNE, separation, rate
dev = run.torch_device
pd.DataFrame(
    {"images": [len(sets.train), len(sets.val), len(test), len(reps)]},
    index=["training", "validation", "test",
           f"representatives ({run.representatives} per digit)"])

# %% tags=["hide-input"]
SOURCE_EPOCHS, SOURCE_TRAIN_IMAGES = 15, 48_000  # the source: 15 epochs on 80% of the 60,000 images
under_trained = run.epochs < SOURCE_EPOCHS or len(sets.train) < SOURCE_TRAIN_IMAGES
report.glue("profile", run.profile)
report.glue("epochs", run.epochs)
report.glue("n_train", f"{len(sets.train):,}")
report.glue("full_models", chapter.n_models(chapter.PROFILES["full"]))  # the grid plus the seed replicates
training_budget = f"{run.epochs} epoch{'s' if run.epochs != 1 else ''} on {len(sets.train):,} training images"
report.glue("training_budget", training_budget)
_ = report.glue("profile_note", (
    f"This page's profile (`{run.profile}`) trains {training_budget}, against the source's "
    f"{SOURCE_EPOCHS} epochs on {SOURCE_TRAIN_IMAGES:,}: its models are under-trained compared with the "
    "source's, which matters wherever this page compares with the source's numbers or reads a small "
    "difference between models." if under_trained else
    f"This page's profile (`{run.profile}`) trains {training_budget}, the source's own budget "
    f"({SOURCE_EPOCHS} epochs on {SOURCE_TRAIN_IMAGES:,} images) or more."))

# %% [markdown]
# **Representative images.** For each digit $c$, the test images of that digit are put in a random
# order drawn from a generator seeded with `seed + c`, and the first ten are kept: a uniform sample
# without replacement, the same on every run with the same seed. They are shown below, one row per digit.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(5.5, 5.8))
plots.image_grid(test.x[reps], nrow=run.representatives, ax=ax, title="representative test images")
fig.tight_layout()

# %% [markdown]
# ## Training
#
# The convolutional VAE of the GAN-vs-VAE chapter ({doc}`gan_vs_vae`): two stride-2 convolutions (32, 64
# channels) and a 128-unit dense layer in the encoder, the mirror image with transposed convolutions in
# the decoder. One model per pair $(d, \beta)$, trained with Adam on $\mathcal L_\beta$ (per-image sums,
# averaged over the batch) for {glue:md}`training_budget`, with the chapter's own seed
# ({glue:md}`own_seed`). After every epoch the engine evaluates the same loss on the validation images.
# The models at the source's β with the latent sizes its headline compares ({glue:md}`seed_size_list`)
# are trained again with {glue:md}`n_extra_seeds` further seeds ({glue:md}`extra_seed_list`),
# {glue:md}`n_replicates` more models, for the section *Across seeds*; every other section uses the own
# seed's models. Trained models are cached, keyed by all settings; the table
# gives each own-seed model's size, its median seconds per training epoch and whether it was loaded from
# the cache ({glue:md}`replicates_cached` of the further seeds' models were).

# %%
grid = chapter.settings(run)
# the own seed's grid {setting: fit}, and the source-β models {seed: {d: fit}} (own seed's included)
results, source_by_seed = chapter.split_fits(
    run.params, train_all(chapter.jobs(run)))
models = {s: r.model for s, r in results.items()}
replicates = [f for seed, by_d in source_by_seed.items() if seed != run.seed for f in by_d.values()]
extra_seeds = run.params.seed_values()[1:]
report.glue("own_seed", run.seed)
report.glue("n_seeds", run.seeds)
report.glue("seed_list", ", ".join(map(str, run.params.seed_values())))
report.glue("n_extra_seeds", len(extra_seeds))
report.glue("extra_seed_list", ", ".join(map(str, extra_seeds)) or "none")
report.glue("n_replicates", len(replicates))
report.glue("seed_size_list", ", ".join(f"d = {d}" for d in chapter.replicated_sizes(run.params)) or "none")
report.glue("replicates_cached", f"{sum(f.loaded for f in replicates)} of {len(replicates)}")
bv.grid_table({s: {"parameters": count_parameters(r.model),
                   "s / epoch": round(r.seconds_per_epoch, 2),
                   "cached": r.loaded} for s, r in results.items()})

# %% [markdown]
# ## Per-digit reconstruction quality
#
# For every model, every test image is reconstructed by the full VAE (encode, take the mean $\mu(x)$,
# decode) and scored per image by MSE and PSNR $= 10\log_{10}(1/\mathrm{MSE})$ dB. Per digit we average
# over the images of that digit, and, as the source did, summarise a model by the unweighted mean of the
# ten per-digit means. PSNR is averaged per image in dB, which is not the same as the PSNR of the mean
# MSE (it is higher, by Jensen's inequality).

# %%
full_recon = {s: m.reconstruct(test.x.to(dev)).cpu()
              for s, m in models.items()}
per_digit_all = {s: bv.per_digit_metrics(test.x, x_hat, test.y)
                 for s, x_hat in full_recon.items()}
per_digit_reps = {
    s: bv.per_digit_metrics(test.x[reps], x_hat[reps], test.y[reps])
    for s, x_hat in full_recon.items()}
per_digit_long = bv.per_digit_long(per_digit_all, per_digit_reps)
# one row per model and digit: too wide for the page, so it is written
# as CSV beside the chapter (book/generated/ when the book executes it)
per_digit_csv = results_dir().parent / "beta_vae_per_digit.csv"
_ = atomic_write_text(per_digit_csv,
                      per_digit_long.round(6).to_csv(index=False))

# %% [markdown]
# Each heatmap below is one β: rows are digits, columns latent sizes, and the two panels of a figure share
# one colour scale. First the PSNR over all test images of each digit, then the MSE (in thousandths), then
# the PSNR over only the ten representatives of each digit.

# %% tags=["hide-input"]
heat_betas = [b for b in run.betas if b in ("source", 1.0)] or list(run.betas[:2])


def book_table(frame):
    """A Styler with the class pandas gives plain tables (the theme's table look)."""
    return frame.style.set_table_attributes('class="dataframe"')


def beta_title(b):
    return "source β_eff(d)" if b == "source" else f"β = {b:g}"


def digit_heatmaps(tables, metric, scale, title, cmap):
    frames = [bv.digit_by_size(tables, metric, b) * scale for b in heat_betas]
    lo, hi = min(f.values.min() for f in frames), max(f.values.max() for f in frames)
    fig, axes = plt.subplots(1, len(frames), figsize=(plots.COLUMN_WIDTH, 4.6), sharey=True, squeeze=False)
    for ax, b, frame in zip(axes[0], heat_betas, frames):
        sns.heatmap(frame, annot=True, fmt=".1f", cmap=cmap, vmin=lo, vmax=hi, cbar=False, ax=ax,
                    annot_kws={"fontsize": 9})
        ax.set_title(beta_title(b))
        ax.tick_params(axis="y", rotation=0)
        if ax is not axes[0][0]:
            ax.set_ylabel("")
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


digit_heatmaps(per_digit_all, "psnr", 1, "PSNR (dB), all test images of each digit", "viridis")
digit_heatmaps(per_digit_all, "mse", 1000, "MSE × 1000, all test images of each digit", "viridis_r")
digit_heatmaps(per_digit_reps, "psnr", 1, f"PSNR (dB), {run.representatives} representatives per digit",
               "viridis")

# %% tags=["hide-input"]
summary = {s: bv.summarise_per_digit(t)["psnr"] for s, t in per_digit_all.items()}
if "source" in run.betas and 1.0 in run.betas:
    diff = {d: summary[bv.Setting.of(d, "source")] - summary[bv.Setting.of(d, 1.0)] for d in run.latent_sizes}
    wins = [d for d, v in diff.items() if v > 0]
    where = ("at every latent size" if len(wins) == len(diff) else
             "at no latent size" if not wins else
             "only at d = " + ", ".join(map(str, wins)))
    report.glue("beta_effect", (
        f"In this run the source's small β gives the higher mean PSNR {where} (source β minus β = 1: "
        + ", ".join(f"{v:+.2f} dB at d = {d}" for d, v in diff.items()) + ")."))
else:
    report.glue("beta_effect", "This run's β grid lacks the source's β or β = 1, so the two are not compared.")

# %% [markdown]
# The colour scale answers which β reconstructs better at each latent size, and reading down a column
# which digits are hard. {glue:md}`beta_effect` A smaller β charges less for the nats the code carries,
# so it buys sharper reconstructions; the rate–distortion section measures that trade. The
# representatives' heatmap is the noisier one: ten images per digit instead of about a thousand. Every
# number behind these heatmaps (per model and digit: PSNR and MSE over all test images and over the
# representatives, and the number of test images) is in the file `book/generated/beta_vae_per_digit.csv`
# written by this page, one row per model and digit.
#
# ### Easiest and hardest digits
#
# A digit's MSE depends strongly on how much ink it has: background pixels are easy to reconstruct
# (almost every model predicts near-zero there), so a thin digit with little ink has few pixels that can
# be wrong. The mean pixel intensity of each digit's test images ("ink") measures that, and its rank
# correlation with the per-digit MSE says how much of the ordering it explains. The table gives, per
# digit, the PSNR and MSE averaged over all models of the grid, and the ink, from the easiest digit to
# the hardest.

# %%
difficulty, rho = bv.digit_difficulty(per_digit_long, test.x, test.y)

# %% tags=["hide-input"]
shown = difficulty.set_axis(["PSNR (dB)", "MSE", "ink"], axis=1)
shown.index.name = "digit"
display(book_table(shown).format({"PSNR (dB)": "{:.2f}", "MSE": "{:.4f}", "ink": "{:.3f}"}))
easiest, hardest = [int(c) for c in difficulty.index[:2]], [int(c) for c in difficulty.index[-2:]]
report.glue("easiest_digits", f"{easiest[0]} and {easiest[1]}")
report.glue("hardest_digits", f"{hardest[0]} and {hardest[1]}")
report.glue("ink_rho", rho, ".2f")
report.glue("least_ink", int(difficulty["mean pixel intensity"].idxmin()))
report.glue("rank_of_one", list(difficulty.index).index(1) + 1 if 1 in difficulty.index else "absent")
# how stable the ordering is: the models whose own easiest / hardest digit is the grid's
own_easiest = {s: int(t["psnr"].idxmax()) for s, t in per_digit_all.items()}
own_hardest = {s: int(t["psnr"].idxmin()) for s, t in per_digit_all.items()}
report.glue("easiest_agree", f"{sum(v == easiest[0] for v in own_easiest.values())} of {len(own_easiest)}")
report.glue("hardest_agree", f"{sum(v == hardest[1] for v in own_hardest.values())} of {len(own_hardest)}")
report.glue("easiest_one", easiest[0])
_ = report.glue("hardest_one", hardest[1])

# %% [markdown]
# Averaged over every model of the grid, the easiest digits in this run are {glue:md}`easiest_digits` and
# the hardest {glue:md}`hardest_digits`. The ordering is stable across the grid to this extent: digit
# {glue:md}`easiest_one` is the easiest digit of {glue:md}`easiest_agree` models, and digit
# {glue:md}`hardest_one` the hardest of {glue:md}`hardest_agree`. The rank correlation between a
# digit's ink and its MSE is {glue:md}`ink_rho` (over ten digits). Why the ordering: the digit with the
# least ink is {glue:md}`least_ink`; the digit 1 (rank {glue:md}`rank_of_one` of ten here) is a single
# stroke with little variation between writers beyond slant, so few of its pixels can be wrong; the
# hard digits combine more ink with loops and curves whose thickness and placement vary between
# writers, and those details are what a small or weakly trained code drops first (the blurred strokes
# in the reconstructions below). What the amount of ink does not explain is shape variability, since
# MSE also charges for strokes that are drawn in slightly the wrong place.
#
# ## Training and validation curves
#
# Model selection (the criterion is given at the end of the chapter) uses the **validation** split,
# never the test set. Here is its chosen latent size: the training loss (averaged over the batches of
# each epoch, as Keras reports it) and the validation loss after each epoch, for every β.

# %%
selection, chosen = bv.model_selection(
    {s: r.history for s, r in results.items()})

# %% tags=["hide-input"]
same_size = [s for s in grid if s.d == chosen.d]
fig, axes = plt.subplots(1, len(same_size), figsize=(plots.COLUMN_WIDTH, 3.2), squeeze=False)
for ax, s in zip(axes[0], same_size):
    hist = results[s].history
    ax.plot(hist["epoch"], hist["loss"], "o-", label="training")
    ax.plot(hist["epoch"], hist["val_loss"], "s--", label="validation")
    ax.set_title(f"d = {chosen.d}, β = {s.label}")
    ax.set(xlabel="epoch")
    ax.legend(frameon=False)
axes[0][0].set_ylabel("loss L_β (nats per image)")
fig.tight_layout()
plt.show()
hist = results[chosen].history
last = hist.iloc[-1]
report.glue("chosen_d", chosen.d)
report.glue("chosen_beta", chosen.label)
report.glue("chosen_train_loss", last["loss"], ".2f")
report.glue("chosen_val_loss", last["val_loss"], ".2f")
report.glue("chosen_loss_gap", last["val_loss"] - last["loss"], "+.2f")
if len(hist) < 2:
    trend = "with a single epoch there is no trend to read"
elif hist["val_loss"].iloc[-1] < hist["val_loss"].iloc[-2]:
    trend = "the validation loss still fell in the last epoch, so overfitting has not begun"
else:
    trend = "the validation loss rose in the last epoch, a first sign of overfitting"
_ = report.glue("overfit_trend", trend)

# %% [markdown]
# The chosen model is $d$ = {glue:md}`chosen_d`, β = {glue:md}`chosen_beta`. After its last epoch the
# training loss is {glue:md}`chosen_train_loss` nats and the validation loss {glue:md}`chosen_val_loss`
# (validation minus training: {glue:md}`chosen_loss_gap` nats), and {glue:md}`overfit_trend`. The
# training loss is averaged while the weights are still changing during the epoch, so in the first
# epochs it sits *above* the validation loss measured at the epoch's end; a validation loss that rises
# while the training loss falls would signal overfitting.
#
# ## The latent space: t-SNE and a number beside it
#
# t-SNE {cite}`vandermaaten2008tsne` places points in 2-D so that near neighbours stay near; it
# exaggerates clusters and its distances between clusters mean little, so a tidy picture proves nothing
# by itself. Beside it we measure separation in the full latent space: the 5-fold cross-validated
# accuracy of a 5-nearest-neighbour classifier on the latent means (chance ≈ 10%) and the silhouette
# coefficient {cite}`rousseeuw1987silhouettes` of the digit labels (1: tight, well-apart clusters; 0:
# overlapping). We embed the latent means $\mu(x)$ of a fixed random sample of test images (the source
# embedded sampled codes $z$, which adds the encoder's noise to the picture).

# %%
codes = {s: m.latent_means(test.x[sample_idx].to(dev)).cpu()
         for s, m in models.items()}
separation = bv.grid_table(
    {s: latent_separation(c, test.y[sample_idx], seed=run.seed)
     for s, c in codes.items()})
separation = separation.rename(
    columns={"knn_accuracy": "5-NN accuracy"})
emb = bv.tsne_embedding(codes[chosen], seed=run.seed)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(plots.COLUMN_WIDTH, 5.4))
for c in range(10):
    m = (test.y[sample_idx] == c).numpy()
    ax.scatter(emb[m, 0], emb[m, 1], s=4, color=plots.DIGIT_COLORS(c), linewidths=0)
    ax.text(*np.median(emb[m], axis=0), str(c), fontsize=14, weight="bold", ha="center", va="center")
s_chosen = separation.loc[(chosen.d, chosen.label)]
ax.set_title(f"t-SNE of {len(sample_idx)} test latent means, d = {chosen.d}, β = {chosen.label}\n"
             f"5-NN accuracy {s_chosen['5-NN accuracy']:.1%}, silhouette {s_chosen['silhouette']:.2f} "
             "(in the latent space)")
ax.set(xticks=[], yticks=[])
fig.tight_layout()
plt.show()
display(book_table(separation).format(precision=3))
knn, sil = separation["5-NN accuracy"], separation["silhouette"]
report.glue("knn_range", f"{knn.min():.1%} to {knn.max():.1%}")
report.glue("sil_range", f"{sil.min():.2f} to {sil.max():.2f}")
report.glue("knn_best", "d = {}, β = {}".format(*knn.idxmax()))
report.glue("sil_best", "d = {}, β = {}".format(*sil.idxmax()))
_ = report.glue("n_tsne", f"{len(sample_idx):,}")

# %% [markdown]
# The table gives the separation measures for every model, all on the same {glue:md}`n_tsne` test
# images. The k-NN accuracy asks whether a digit's nearest codes are the same digit: it ranges from
# {glue:md}`knn_range` over the grid in this run, highest for {glue:md}`knn_best`. The silhouette also
# asks whether the clusters are compact and far apart; it ranges from {glue:md}`sil_range`, highest for
# {glue:md}`sil_best`, and is typically small for VAEs, whose codes fill the prior's ball without gaps
# (that is what the KL term asks for).

# %% [markdown]
# ## Encoder codes versus codes optimised per image
#
# The encoder is a single network that must produce a code for every image at once: it *amortises*
# inference. Given the trained decoder, one can instead search for each image's code directly, which is
# what the source's "decoder-only" column promised. For each representative test image we minimise,
# over $z$, with Adam from $z = 0$ (the prior's mean; no encoder is involved at any point) through the
# frozen decoder,
#
# $$
# J(z) = -\log p_\theta(x\mid z) + \beta\cdot\tfrac12\lVert z\rVert^2 ,
# $$
#
# the model's own β-weighted objective with the posterior shrunk to a point (the second term is
# $\beta\,(-\log p(z))$ up to a constant, so at $\beta = 1$ the minimiser is the MAP code, the mode of
# $p_\theta(z\mid x)$). **What is compared**: two single codes for the same image and the same
# decoder, the encoder's mean $\mu_\phi(x)$ and the optimised code, both scored on the same $J$ and both
# decoded the same way, then compared in MSE and PSNR on the pixels. It is computed at the source's
# effective β, one model per latent size, on the representative images.
#
# **Why the optimised code is expected to win.** The search minimises $J$ itself, image by image,
# while the encoder was never trained to minimise $J$ at its mean: it was trained on the ELBO, which
# averages the reconstruction over codes drawn with spread $\sigma_\phi(x)$ and rewards that spread
# through the entropy of $q$, so its mean is a compromise a point search does not have to make. On $J$
# the search wins by construction, unless it stops short (it starts from $z = 0$, not from a good
# guess, and takes a fixed number of steps); on MSE it is expected to win too, since $J$'s
# reconstruction term is the pixel-wise cross-entropy. This is therefore **not** the amortisation gap
# of {cite:t}`cremer2018inference`: theirs compares the ELBO of the encoder's distribution $q_\phi(z\mid x)$
# with that of the best Gaussian fitted to each image, entropy included, while this compares two
# points on a point objective. What it does show is how much better the same decoder reconstructs an
# image from a code chosen for that image alone: a property of the encoder and of a point code
# against a distribution, not of the decoder.

# %%
gap_beta = "source" if "source" in run.betas else run.betas[0]
# one model per latent size
gap_settings = {s.d: s for s in grid if s.name == gap_beta}
x = test.x[reps]
gaps, opt_recon = bv.optimised_code_table(
    {d: models[s] for d, s in gap_settings.items()}, x,
    {d: full_recon[s][reps] for d, s in gap_settings.items()},
    steps=run.decoder_steps, lr=run.decoder_lr, seed=run.seed)

# %% tags=["hide-input"]
shown = gaps.T.rename(columns=lambda d: f"d = {d}")
row_formats = {"{:.4f}": ["encoder MSE", "optimised MSE", "MSE gain"],
               "{:.2f}": ["encoder PSNR", "optimised PSNR", "PSNR gain (dB)"],
               "{:.1f}": ["J at encoder code", "J at optimised code"],
               "{:.0%}": ["share optimised better (MSE)"]}
styled = book_table(shown)
for fmt, rows in row_formats.items():
    styled = styled.format(fmt, subset=pd.IndexSlice[rows, :])
display(styled)

first_of_each = torch.arange(10) * run.representatives  # the first representative of each digit
fig, axes = plt.subplots(len(gap_settings) * 2 + 1, 1, figsize=(plots.COLUMN_WIDTH, 0.75 * (2 * len(gap_settings) + 1)))
plots.image_grid(x[first_of_each], nrow=10, ax=axes[0], title="originals")
for i, (d, s) in enumerate(gap_settings.items()):
    plots.image_grid(full_recon[s][reps][first_of_each], nrow=10, ax=axes[1 + 2 * i], title=f"encoder code, d = {d}")
    plots.image_grid(opt_recon[d][first_of_each], nrow=10, ax=axes[2 + 2 * i], title=f"optimised code, d = {d}")
fig.tight_layout()
plt.show()

gain = gaps["PSNR gain (dB)"]
j_better = gaps["J at optimised code"] < gaps["J at encoder code"]
report.glue("gap_beta", beta_title(gap_beta))
report.glue("n_gap_images", len(x))
report.glue("decoder_steps", run.decoder_steps)
report.glue("psnr_gain_list", ", ".join(f"{v:+.2f} dB at d = {d}" for d, v in gain.items()))
report.glue("j_better", "at every latent size" if j_better.all() else
            "at no latent size" if not j_better.any() else
            "only at d = " + ", ".join(str(d) for d in gaps.index[j_better]))
share = gaps["share optimised better (MSE)"]
report.glue("share_better", f"{share.min():.0%} to {share.max():.0%}" if share.min() != share.max() else f"{share.min():.0%}")
_ = report.metric("psnr_gain_optimised_codes", gain.tolist())

# %% [markdown]
# In this run ({glue:md}`gap_beta`, {glue:md}`n_gap_images` representatives, {glue:md}`decoder_steps`
# Adam steps), the optimised codes reach a lower $J$ than the encoder's {glue:md}`j_better`, and change
# the PSNR by {glue:md}`psnr_gain_list`; they reconstruct {glue:md}`share_better` of the images with a
# lower MSE than the encoder's code. A positive PSNR gain means the decoder can represent a better
# reconstruction than the one the encoder's code asks for. Where the search does worse on some images,
# it has stopped in a poor local minimum or has not converged in the fixed number of steps. Two sources
# feed the gain: the encoder's limited capacity and training (the amortisation error of
# {cite:t}`cremer2018inference`), and the difference between a code optimised as a point and an encoder
# trained for a *sampled* code with spread $\sigma$.
#
# ## Rate and distortion across β
#
# Each model is one point: its mean KL (rate, nats) against its mean reconstruction NLL (distortion,
# nats; one sampled code per image) and against its MSE, on the same random sample of test images as
# the t-SNE ({glue:md}`n_tsne` images). Lines join the β grid at each latent size; the labels give β.

# %%
rd = bv.rate_distortion_table(
    models, test.x[sample_idx],
    {s: x_hat[sample_idx] for s, x_hat in full_recon.items()},
    seed=run.seed)
# D is estimated with one sampled code per image: on 5,000 test
# images the paired standard error of a difference of two models'
# objectives is about 0.1 nats (measured at d = 5): smaller is noise.
suboptimal = bv.suboptimal_models(rd.reset_index(), tolerance=0.5)

# %% tags=["hide-input"]
fig, axes = plt.subplots(2, 1, figsize=(plots.COLUMN_WIDTH, 6.4), sharex=True)
for colour, d in zip(sns.color_palette("viridis", len(run.latent_sizes)), run.latent_sizes):
    part = rd.loc[d].sort_values("rate")
    for ax, y in zip(axes, ("distortion", "mse")):
        ax.plot(part["rate"], part[y], "o-", color=colour, label=f"d = {d}")
        for _, r in part.iterrows():
            ax.annotate(f"{r['β value']:.3g}", (r["rate"], r[y]), fontsize=9, xytext=(4, 3),
                        textcoords="offset points")
axes[0].set_ylabel("distortion −log p(x|z) (nats)")
axes[1].set_ylabel("MSE of the mean reconstruction")
axes[1].set_xlabel("rate: KL(q(z|x) || p(z)) (nats)")
axes[0].legend(frameon=False)
fig.tight_layout()
plt.show()
display(rd.drop(columns="β value").rename(columns={"neg_elbo": "−ELBO", "distortion": "distort."})
        .pipe(book_table).format({"rate": "{:.1f}", "distort.": "{:.1f}", "−ELBO": "{:.1f}", "mse": "{:.4f}",
                             "psnr": "{:.2f}"}))
if not suboptimal.empty:
    beaten = suboptimal.assign(**{"β": suboptimal["β"].map("{:.3g}".format),
                                  "latent size": suboptimal["latent size"].astype(int)})
    beaten = beaten.set_index(["latent size", "β"]).set_axis(["own J", "by β", "its J", "excess"], axis=1)
    display(book_table(beaten).format({"own J": "{:.1f}", "by β": "{:.3g}", "its J": "{:.1f}", "excess": "{:.1f}"}))

consistent = []
for d in run.latent_sizes:
    part = rd.loc[d].sort_values("β value")
    if len(part) > 1:
        lo, hi = part.iloc[0], part.iloc[-1]
        consistent.append((d, bool(lo["rate"] > hi["rate"] and lo["mse"] < hi["mse"])))
ok = [d for d, c in consistent if c]
report.glue("rd_consistent", "at every latent size" if len(ok) == len(consistent) else
            "at no latent size" if not ok else "at d = " + ", ".join(map(str, ok)) + " only")
_ = report.glue("suboptimal_text", (
    "no model is beaten on its own objective by more than 0.5 nats" if suboptimal.empty else
    "these models are beaten on their own objective by more than 0.5 nats (the second table): "
    + "; ".join(f"d = {int(r['latent size'])}, β = {r['β']:.3g} by β = {r['beaten by β']:.3g} "
                f"({r['excess (nats)']:.1f} nats)" for _, r in suboptimal.iterrows())))

# %% [markdown]
# The table gives each model's rate, distortion, −ELBO (their sum), and the MSE and PSNR of its mean
# reconstruction. In a converged model, lowering β moves it to the right (more nats per code) and down
# (less distortion); in this run the lowest β of the grid has both the higher rate and the lower MSE
# {glue:md}`rd_consistent`. It can be checked without knowing the optimum: model $a$ minimises
# $D + \beta_a R$, so if another model $b$ of the same latent size has
# $D_b + \beta_a R_b < D_a + \beta_a R_a$, then $b$'s weights solve $a$'s own problem better, and $a$'s
# training ended in a worse optimum. In this run {glue:md}`suboptimal_text`. The grid has one seed per
# setting (only the source-β models are trained with several, in *Across seeds*), and one run cannot tell
# a bad optimum from a bad β, which is the caution the source's single-run table needed. A
# small $\beta_{\text{eff}}$ buys its sharper reconstructions by transmitting more nats, so part of
# what the source attributed to the latent size is this trade. At a fixed β a larger latent size can
# only help if the model uses the extra dimensions; at $\beta = 1$ the KL term pushes unneeded
# dimensions to the prior, so the rate need not grow in proportion to $d$ (the traversal section counts
# the dimensions in use for the chosen model).
#
# ## Latent traversals
#
# For the chosen model: take the latent mean of one test image and move one coordinate at a time from
# −3 to 3 (prior standard deviations), decoding each point. Rows are the dimensions with the largest
# average KL on the test set (the ones the model actually uses), in decreasing order; the number is that
# dimension's mean KL in nats. Dimensions with a KL near 0 are ignored by the decoder and would give
# constant rows.

# %%
chosen_model = models[chosen]
kl_dims = bv.kl_per_dimension(chosen_model, test.x.to(dev))
top = torch.argsort(kl_dims, descending=True)[:min(8, chosen.d)]
top = top.tolist()
values = np.linspace(-3, 3, 9)
anchor = reps[2 * run.representatives]  # first representative of 2
z0 = chosen_model.latent_means(test.x[anchor:anchor + 1].to(dev))
z0 = z0[0].cpu()
traversal = bv.latent_traversal(chosen_model, z0, top, values)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(5, 0.6 * len(top) + 0.6))
plots.image_grid(traversal, nrow=len(values), ax=ax, title=f"d = {chosen.d}: traversals from a test '2'")
for row, j in enumerate(top):
    ax.text(-4, 2 + row * 30 + 14, f"z{j} ({kl_dims[j]:.1f})", ha="right", va="center", fontsize=9)
fig.tight_layout()
plt.show()
_ = report.glue("dims_used", int((kl_dims > 0.1).sum()))

# %% [markdown]
# The chosen model ($d$ = {glue:md}`chosen_d`) uses {glue:md}`dims_used` of its dimensions (mean KL
# above 0.1 nats). Each row changes several properties of the digit at once (its identity, stroke
# width, slant): the dimensions are not *disentangled* into one factor each.
# {cite:t}`higgins2017betavae` obtained more factor-aligned dimensions only with β > 1, at a cost in
# reconstruction, and {cite:t}`locatello2019challenging` showed that without supervision or inductive
# biases no method is guaranteed to find such factors.
#
# ## Choosing a model
#
# **Criterion.** We choose the $(d, \beta)$ with the lowest negative ELBO on the validation split (the
# standard bound with $\beta = 1$, whatever β the model was trained with): it is the model's
# held-out log-likelihood bound, the one number that charges both for distortion and for the rate, and it
# does not look at the test set. A reader who only wants sharp reconstructions would pick by validation
# PSNR instead, which rewards a small β (more nats per code) and ignores whether decoding prior samples
# gives plausible digits. The table lists every model, best first.

# %% tags=["hide-input"]
selection = selection.sort_values("validation −ELBO (nats)")
display(selection.drop(columns="β value")
        .rename(columns={"validation −ELBO (nats)": "validation −ELBO", "validation loss L_β": "validation L_β"})
        .pipe(book_table).format(precision=2))
report.glue("chosen_elbo", selection.loc[(chosen.d, chosen.label), "validation −ELBO (nats)"], ".2f")
report.glue("chosen_test_psnr", bv.summarise_per_digit(per_digit_all[chosen])["psnr"], ".2f")

elbo_b1 = {d: v for (d, _), v in selection.loc[selection["β value"] == 1.0, "validation −ELBO (nats)"].items()}
elbo_b1 = dict(sorted(elbo_b1.items()))
worse = bv.larger_latent_worse(elbo_b1, tolerance=0.5)
report.metric("val_neg_elbo_beta1", list(elbo_b1.values()))
if not elbo_b1:
    latent_check = "This run has no β = 1 models, so the check is not made."
    latent_check_short = "this run has no β = 1 models"
else:
    listing = ", ".join(f"{v:.2f} at d = {d}" for d, v in elbo_b1.items())
    if worse.empty:
        latent_check = (f"In this run it does not rise by more than 0.5 nats from one latent size to a "
                        f"larger one at β = 1 ({listing} nats), as it should.")
        latent_check_short = ("in this run the validation −ELBO at β = 1 does not get worse with a "
                              "larger latent size")
    else:
        sizes = " and ".join(f"d = {int(r['latent size'])}" for _, r in worse.iterrows())
        excess = " and ".join(f"{r['excess (nats)']:.2f} nats (against d = {int(r['smaller size'])})"
                              for _, r in worse.iterrows())
        latent_check = (
            f"In this run it does rise: at β = 1 ({listing} nats), {sizes} "
            f"{'have' if len(worse) > 1 else 'has'} a worse validation −ELBO than a smaller latent size, "
            f"by {excess}. That is a sign of under-training in this profile ({training_budget}), "
            f"not a property of latent size: the larger model{'s have' if len(worse) > 1 else ' has'} not "
            "reached its optimum, and with more dimensions to fit it needs more training to get there.")
        latent_check_short = (f"in this run {sizes} {'have' if len(worse) > 1 else 'has'} a worse "
                              "validation −ELBO at β = 1 than a smaller latent size, a sign of "
                              "under-training in this profile, not of the latent size")
report.glue("latent_check_short", latent_check_short)
_ = report.glue("latent_check", latent_check)

# %% [markdown]
# The chosen model is $d$ = {glue:md}`chosen_d`, β = {glue:md}`chosen_beta`, with a validation −ELBO of
# {glue:md}`chosen_elbo` nats; its test PSNR (mean over digits) is {glue:md}`chosen_test_psnr` dB.
#
# **Does a larger latent space do better at β = 1?** At the optimum it cannot do worse. A VAE with more
# latent dimensions contains every smaller one of the same architecture: give the extra coordinates zero
# weights into the decoder and let the encoder output the prior for them, and the reconstruction is
# unchanged while their KL is 0. So at a fixed β the best −ELBO can only fall as $d$ grows (on held-out
# images too, as long as the models do not overfit). {glue:md}`latent_check` The β = 1 models are
# trained with the own seed only (the extra seeds go to the source-β models), so this page cannot say
# how far these differences vary between training runs; several seeds per setting would be needed to put
# an error bar on them.
#
# ## Comparison with the source
#
# The source reports, at its effective β, the mean over digits of the per-digit mean MSE and PSNR over all
# test images of each digit (what it called its decoder-only column; see the bugs above). The same
# numbers from our models trained with $\beta = \beta_{\text{eff}}(d)$ and the own seed, one column per
# latent size; "10 reps" is our PSNR on the representatives only. How far our PSNR moves between seeds
# at the latent sizes of the source's headline is in the next section.

# %% tags=["hide-input"]
comparison = bv.source_comparison(per_digit_all, per_digit_reps)
# headline: test PSNR at the source's β with the own seed, per latent size in order (NaN, written as null:
# not measured); the other seeds' at the headline's sizes are recorded in *Across seeds*
report.metric("psnr_source_beta", [summary[bv.Setting.of(d, "source")] if "source" in run.betas else float("nan")
                                   for d in run.latent_sizes])
report.metric("psnr_source_paper", [bv.SOURCE_RESULTS[d][1] if d in bv.SOURCE_RESULTS else float("nan")
                                    for d in run.latent_sizes])
if len(comparison):
    verdict = bv.source_verdict(comparison, per_digit_all)
    labels = {"β_eff": "β_eff", "source MSE": "source MSE", "our MSE": "our MSE",
              "source PSNR (dB)": "source PSNR", "our PSNR (dB)": "our PSNR", "our PSNR, 10 reps (dB)": "our PSNR, 10 reps",
              "PSNR difference (dB)": "PSNR difference", "beats source": "beats source"}
    shown_cmp = comparison.rename(columns=labels)[list(labels.values())].T.rename(columns=lambda d: f"d = {d}")
    shown_cmp.loc["beats source"] = shown_cmp.loc["beats source"].map({True: "yes", False: "no"})
    styled = book_table(shown_cmp)
    for fmt, rows in {"{:.3f}": ["β_eff"], "{:.4f}": ["source MSE", "our MSE"],
                      "{:.2f}": ["source PSNR", "our PSNR", "our PSNR, 10 reps"], "{:+.2f}": ["PSNR difference"]}.items():
        styled = styled.format(fmt, subset=pd.IndexSlice[rows, :])
    display(styled)
    report.glue("beats_source", ("at every compared latent size" if verdict["holds"] else
                                 f"at {verdict['beats']} of {verdict['sizes']} latent sizes"))
    report.glue("our_best_d", verdict["best latent size"])
    report.glue("source_best_d", bv.SOURCE_BEST_LATENT_SIZE)
    report.glue("psnr_diff_list", ", ".join(f"{v:+.2f} dB at d = {d}"
                                            for d, v in comparison["PSNR difference (dB)"].items()))
    diffs = comparison["PSNR difference (dB)"]
    close = [int(d) for d, v in diffs.items() if abs(v) < 0.1]
    report.glue("near_ties", (
        "The difference" + (f"s at d = {' and '.join(map(str, close))} are" if len(close) > 1 else
                            f" at d = {close[0]} is") +
        " below 0.1 dB: with one training run per setting on the source's side and our own seed's on this "
        "table's, that is a tie, not a win or a loss."
        if close else "No difference is below 0.1 dB, but the source's side rests on one training run per "
        "setting, and this table's on our own seed (the spread over seeds is in the next section)."))
    ours = comparison["our PSNR (dB)"].sort_index()
    drops = [(int(a), int(b)) for a, b, pa, pb in zip(ours.index[:-1], ours.index[1:], ours.values[:-1],
                                                      ours.values[1:]) if pb < pa]
    report.glue("our_shape", "rises with every step in latent size, with no drop at the largest" if not drops else
                "drops from " + ", ".join(f"d = {a} to d = {b}" for a, b in drops))
    easy, hard = set(verdict["easiest"].values()), set(verdict["hardest"].values())
    report.glue("easiest_src_beta", " / ".join(map(str, sorted(easy))))
    report.glue("hardest_src_beta", " / ".join(map(str, sorted(hard))))
else:
    report.glue("beats_source", "at no latent size: no comparison is made, because this run's grid "
                "lacks the source's β_eff or its latent sizes 5, 10, 15, 20")
    for name in ("our_best_d", "source_best_d", "psnr_diff_list", "easiest_src_beta", "hardest_src_beta",
                 "near_ties", "our_shape"):
        report.glue(name, "(not compared)")
report.glue("source_easiest", bv.SOURCE_EASIEST_DIGIT)
report.glue("source_hardest", bv.SOURCE_HARDEST_DIGIT)
all_beat = bool(len(comparison)) and verdict["holds"]
if under_trained and not all_beat:
    report.glue("comparison_caveat", (
        "Falling short of the source's numbers here says nothing about the method: this profile's "
        "models are under-trained (" + training_budget + ", against the source's 15 epochs on 48,000), "
        "and the target is stated for the `full` profile, which uses the source's own settings."))
    report.glue("comparison_short", f"This profile's models are under-trained ({training_budget}), so "
                "falling short of the source says nothing about the method.")
elif under_trained:
    report.glue("comparison_caveat", (
        "This holds although this profile's models are under-trained (" + training_budget + ", against "
        "the source's 15 epochs on 48,000); the `full` profile uses the source's own settings."))
    report.glue("comparison_short", f"This holds although this profile's models are under-trained "
                f"({training_budget}).")
else:
    report.glue("comparison_caveat", ("This profile trains with the source's budget, so the comparison "
                                      "is like for like, up to the one training run per setting on the "
                                      "source's side (ours: the own seed here, every seed in the next section)."))
    report.glue("comparison_short", "This profile trains with the source's budget.")

# %% [markdown]
# In this run our mean per-digit PSNR beats the source's {glue:md}`beats_source` (ours minus the
# source's: {glue:md}`psnr_diff_list`). {glue:md}`near_ties` {glue:md}`comparison_caveat` With the own
# seed, our best latent size at the source's β is $d$ = {glue:md}`our_best_d` (the source's: $d$ =
# {glue:md}`source_best_d`, with a drop from $d = 15$ to $d = 20$); our PSNR at the source's β
# {glue:md}`our_shape`. At the source's β our easiest digit is
# {glue:md}`easiest_src_beta` and our hardest {glue:md}`hardest_src_beta` (one digit per latent size,
# identical sizes merged; the source found {glue:md}`source_easiest` easiest and
# {glue:md}`source_hardest` hardest).
#
# ## Across seeds
#
# The source's headline is a comparison of two models, $d = 15$ against $d = 20$ at its β, each trained
# once, and one training run is one draw: the initial weights, the order of the mini-batches and the
# training images drawn depend on the seed. So the models at the source's β with those latent sizes are
# trained with {glue:md}`n_seeds` seeds ({glue:md}`seed_list`; the own seed {glue:md}`own_seed` is the run
# shown on the rest of this page). Every one is scored exactly as above, on the same
# {glue:md}`n_seed_test` test images: the mean over digits of the per-digit mean PSNR of its
# reconstructions. The table gives that PSNR per seed and latent size.

# %%
seed_table = chapter.seed_psnr(source_by_seed, test.x, test.y, device=dev)
evidence = chapter.psnr_drop(seed_table, 15, 20)
# the own seed's row is the number of the sections above, computed the same way
for d, v in (seed_table.loc[run.seed, chapter.PSNR].items() if len(seed_table) else []):
    assert abs(v - summary[bv.Setting.of(d, "source")]) < 1e-4, (d, v)
_ = report.glue("n_seed_test", f"{len(test):,}")

# %% tags=["hide-input"]
if len(seed_table):
    seed_wide = seed_table[chapter.PSNR].unstack("latent size")
    seed_wide = seed_wide.rename(columns=lambda d: f"d = {d}").rename_axis(columns=None)
    display(book_table(seed_wide).format("{:.2f}"))
else:
    print("This run's β grid has no source β, so no model is trained with several seeds.")

# %% [markdown]
# Mean ± standard deviation over the seeds, per latent size (dB):

# %% tags=["hide-input"]
def mean_sd(d):
    """'mean ± sd' over the seeds at latent size d (no sd with one seed)."""
    m, sd = evidence["mean"][d], evidence["sd"][d]
    return f"{m:.2f} (one seed)" if np.isnan(sd) else f"{m:.2f} ± {sd:.2f}"


spread = pd.DataFrame(
    {f"d = {d}": [mean_sd(d)] for d in evidence["mean"]},
    index=[f"mean ± sd ({evidence['n_seeds']} seeds)"])
display(book_table(spread))

# %% tags=["hide-input"]
# per replicated latent size d, the test PSNR at the source's β per seed, in seed order
for d in evidence["mean"]:
    report.metric(f"psnr_source_beta_d{d}_seeds", seed_table[chapter.PSNR].xs(d, level="latent size").tolist())
# per seed, in seed order: PSNR(d = 15) − PSNR(d = 20) (> 0: a drop); empty when 15 or 20 is not run
report.metric("psnr_source_beta_drop_15_20", list(evidence["drops"].values()))
if not evidence["measured"]:
    sizes = ", ".join(map(str, run.latent_sizes))
    why = ("its β grid has no source β" if "source" not in run.betas else
           f"its latent sizes ({sizes}) do not include both d = 15 and d = 20")
    seeds_text = (f"This run does not measure the source's drop from d = 15 to d = 20: {why}, so the "
                  "comparison is not made (its per-seed drops are an empty list in the results file).")
    seeds_short = f"this run does not measure it ({why})"
else:
    n, k = evidence["n_seeds"], evidence["n_dropped"]
    # written as the change from d = 15 to d = 20 (negative: a drop), with a true minus sign
    per_seed = ", ".join(f"{-v:+.2f} dB on seed {seed}".replace("-", "−")
                         for seed, v in evidence["drops"].items())
    how = ("on every seed" if k == n else "on no seed" if k == 0 else f"on {k} of {n} seeds")
    seeds_text = (
        f"At the source's β the test PSNR dropped from d = 15 to d = 20 {how} "
        f"(its change from d = 15 to d = 20: {per_seed}; a drop is negative). Over the {n} seeds it "
        f"is {mean_sd(15)} dB at d = 15 and {mean_sd(20)} dB at d = 20 (mean ± sd). "
        + ("The source's drop is reproduced on every seed." if k == n else
           "The source's drop is not reproduced on every seed, so this run does not support it."))
    seeds_short = (f"over {n} seeds at the same β our PSNR dropped from d = 15 to d = 20 {how} "
                   f"(change {per_seed})")
report.glue("beta_seeds_short", seeds_short)
_ = report.glue("beta_seeds_verdict", seeds_text)

# %% [markdown]
# {glue:md}`beta_seeds_verdict` The claim holds only if the drop appears on every seed; the findings
# page needs at least three seeds to give a verdict.
#
# ## Reading the results
#
# * **β and d were confounded in the source.** Its models used $\beta_{\text{eff}} = 0.784/d$; with β
#   held fixed, the latent size's effect is what the β = 1 heatmaps and the rate–distortion plot show.
#   The source's peak at $d = 15$ and its drop at $d = 20$ came from one training run per setting;
#   {glue:md}`beta_seeds_short` (*Across seeds*; with the own seed alone, our PSNR at that β
#   {glue:md}`our_shape`).
#   Going from $d = 15$ to $d = 20$ the source *also* lowered β, and both changes can only lower the
#   best achievable reconstruction NLL (a larger latent space contains the smaller one, and a smaller β
#   weights distortion more), so a drop at $d = 20$ is training noise or under-training, not a property
#   of the latent size. The same argument reads this page's β = 1 models: {glue:md}`latent_check_short`.
# * **Whether we beat the source**: {glue:md}`beats_source` in this run. {glue:md}`comparison_short`
# * **Per-digit ordering.** The easiest digits over the grid are {glue:md}`easiest_digits` and the
#   hardest {glue:md}`hardest_digits`; the rank correlation between a digit's ink and its MSE is
#   {glue:md}`ink_rho`. The ten representatives per digit give a much noisier estimate than all of a
#   digit's roughly 1,000 test images, which is why the all-images numbers are the ones to trust.
# * **Encoder codes versus optimised codes.** Optimising each image's code through the frozen decoder
#   changes the PSNR by {glue:md}`psnr_gain_list`. The optimised code minimises the very objective it is
#   scored on, so it is expected to win; its size measures the encoder (and a point code against a
#   distribution), not the decoder, and it is not the amortisation gap of Cremer et al.
# * **Separation** of digits in latent space is given as k-NN accuracy ({glue:md}`knn_range`) and
#   silhouette ({glue:md}`sil_range`) beside the t-SNE picture: judge the latent space by those numbers,
#   since t-SNE can draw separate islands for classes that overlap in the original space.
#
# The numbers above come from the {glue:md}`profile` profile; with the `smoke` profile (one epoch on
# 800 images) the models have barely started and the reading above does not apply.

# %% tags=["hide-input"]
_ = report.write()  # book/generated/results/beta_vae.json

# %% [markdown]
# ## This build and the reference run
#
# The chapter's headline numbers, as written to its results file `book/generated/results/beta_vae.json`,
# beside those of the committed reference run (`book/reference/beta_vae.json`), with what produced each.
# {glue:md}`reference_note`

# %% tags=["hide-input"]
comparison = report.reference_table()
report.glue("reference_note", comparison.attrs["note"])
comparison
