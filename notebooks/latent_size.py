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
# # How big should the latent space be?
#
# A variational autoencoder squeezes each 784-pixel digit through a handful of numbers, the *latent
# code*, and learns to rebuild the image from it. How many numbers does it need? This chapter trains the
# same VAE with latent sizes 2, 4 and 16 and follows, epoch by epoch, how well each reconstructs digits
# (MSE, PSNR, SSIM on training and test images), how its latent space organises itself, and what its
# reconstructions look like while it learns.
#
# ## The model in brief
#
# A VAE is a latent-variable model $p_\theta(x, z) = p(z)\,p_\theta(x \mid z)$ with a standard normal
# prior $p(z) = \mathcal N(0, I_d)$ and a decoder network that outputs, for every pixel, the probability
# of ink: $p_\theta(x \mid z) = \prod_{i=1}^{784} \mathrm{Bernoulli}(x_i;\, \pi_i(z))$. The likelihood
# $p_\theta(x) = \int p(z)\,p_\theta(x\mid z)\,dz$ has no closed form, so the VAE trains an *encoder*
# $q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))$ alongside and maximises
# the **evidence lower bound** (ELBO):
#
# $$
# \log p_\theta(x) \;\ge\; \mathcal L(x) \;=\;
# \underbrace{\mathbb E_{q_\phi(z\mid x)}\!\left[\log p_\theta(x \mid z)\right]}_{\text{reconstruction}}
# \;-\; \underbrace{\mathrm{KL}\!\left(q_\phi(z \mid x)\,\|\,p(z)\right)}_{\text{rate}} .
# $$
#
# The gap between the two sides is $\mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\theta(z \mid x))$: the bound is
# tight when the encoder matches the true posterior. For a diagonal Gaussian the KL term is exact,
#
# $$
# \mathrm{KL} = \tfrac12 \sum_{j=1}^{d} \left(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\right),
# $$
#
# and the expectation is estimated with one sample $z = \mu + \sigma \odot \varepsilon$,
# $\varepsilon \sim \mathcal N(0, I)$. This **reparameterisation** moves the randomness into
# $\varepsilon$, so gradients flow through $\mu$ and $\sigma$ into the encoder.
#
# Why a *probabilistic* latent space rather than a plain autoencoder's points? The KL term pulls every
# code towards the prior and gives it a spread $\sigma$, so nearby codes must decode to similar images and
# the space between training codes is filled: sampling $z \sim \mathcal N(0, I)$ and decoding gives new
# digits, and paths through latent space morph one digit into another. The price is blur: the decoder
# must explain a whole neighbourhood of codes with one image.
#
# All losses in this book are **per-image sums in nats** (the negative ELBO of one image). In this chapter
# the targets are MNIST's grey levels, and a Bernoulli likelihood of grey levels is not the likelihood of
# binarised MNIST that papers report. So the losses below compare with each other and with other runs on
# the same data and preprocessing, not with published numbers. For those, see the flow chapter,
# {doc}`flow_vae`, which binarises the digits.

# %% tags=["parameters"]
profile = "default"   # smoke | default | full
latent_sizes = None   # None: the profile's value, e.g. [2, 4, 16]
epochs = None
batch_size = None
lr = None
train_subset = None   # number of training images (None: all 60,000)
test_subset = None    # number of test images (None: all 10,000)
eval_subset = None    # training images scored each epoch
seed = None
seeds = None          # training seeds per latent size (seed, seed + 1, ...)
device = None         # "auto", "cpu", "cuda", ...
precision = None      # "auto", "fp32", "bf16"
threads = None        # torch threads per training job

# %%
from vaebook.config import chapter_params

run = chapter_params("latent_size", profile, globals())
from vaebook.report import Report

report = Report(run)
run

# %% [markdown]
# This table records the profile and every parameter that produced this page, with the machine and
# package versions. To rerun this chapter with other values:
# `make chapter NAME=latent_size PARAMS="-p epochs 20 -p latent_sizes '[2, 8, 32]'"`.
#
# ## Data
#
# MNIST's 60,000 training and 10,000 test digits, read from the original IDX files, pixel values scaled
# to $[0, 1]$ and used as Bernoulli probabilities' targets (the grey levels are kept, as in most VAE code;
# the flow chapter, {doc}`flow_vae`, binarises them for likelihood numbers that compare with the literature).

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from vaebook import plots
from vaebook.chapters import latent_size as chapter
from vaebook.evaluate import batched, latent_separation, metrics_long, prior_coverage
from vaebook.jobs import train_all
from vaebook.models import count_parameters

sets = chapter.chapter_data(run.params)
test, gif_idx, recon_idx = sets.test, sets.gif_idx, sets.recon_idx
pd.DataFrame({"images": [len(sets.train), len(test), len(sets.train_eval)]},
             index=["training", "test", "training images scored each epoch"])

# %% [markdown]
# ## Training
#
# One model per latent size and training seed: the classic multilayer perceptron of {cite:t}`kingma2014vae`,
# 784 → 400 → $d$ for the encoder (twice, for $\mu$ and $\log\sigma^2$) and $d$ → 400 → 784 for the
# decoder, trained with Adam on the negative ELBO, once with each of {glue:md}`n_seeds` seeds
# ({glue:md}`seed_list`). The seed sets the initial weights, the order of the mini-batches and the training
# images scored each epoch (and, with a training subset, which images are drawn); every model is scored on
# the same test images. The rest of the page shows the chapter's own seed, {glue:md}`own_seed`, in detail;
# the section *Across seeds* compares the sizes on every seed. After every epoch the training engine scores
# mean reconstructions (decode $\mu(x)$) on the test set and on a fixed sample of training images, and
# keeps the latent codes of 2,000 test images for the animations. Trained models are cached under
# `cache/`, keyed by every setting above: rebuilding the book reloads them instead of retraining.

# %%
by_seed = chapter.fits_by_seed(run.params, train_all(chapter.jobs(run)))
results = by_seed[run.seed]   # the chapter's own seed: the detailed pages below
report.glue("n_seeds", run.seeds)
report.glue("seed_list", ", ".join(str(s) for s in run.params.seed_values()))
report.glue("own_seed", run.seed)
# one colour per latent size (categorical palette)
colors = dict(zip(results, sns.color_palette("colorblind", len(results))))

pd.DataFrame({
    "parameters": [count_parameters(r.model) for r in results.values()],
    "s/epoch (median)": [round(r.seconds_per_epoch, 2) for r in results.values()],
    "from cache (every seed)": [all(fits[d].loaded for fits in by_seed.values()) for d in results],
}, index=pd.Index(list(results), name="latent size"))

# %% [markdown]
# ## Metrics per epoch
#
# Three views of reconstruction quality, each averaged over images:
#
# * **MSE**, the mean squared pixel error (lower is better);
# * **PSNR** $= 10 \log_{10}(1/\mathrm{MSE})$ in dB, computed per image, then averaged (higher is better);
# * **SSIM** {cite}`wang2004ssim`, which compares local means, contrasts and correlations in an $11\times11$
#   Gaussian window ($\sigma = 1.5$). We average its map over the pixels whose window lies inside the
#   image, as the reference code and scikit-image do; torchmetrics' default also averages the padded
#   border, which on 28×28 digits shifts SSIM by up to 0.3, so numbers from different tools differ.
#
# Solid lines are test images, dashed lines the fixed sample of training images.

# %% tags=["hide-input"]
long = metrics_long({d: r.history for d, r in results.items()})
long = long[long.metric.isin(["mse", "psnr", "ssim", "neg_elbo"])]
names = {"mse": "MSE", "psnr": "PSNR (dB)", "ssim": "SSIM", "neg_elbo": "negative ELBO (nats)"}
fig, axes = plots.figure(2, 2, height=5.0, sharex=True, constrained_layout=True)
for ax, metric in zip(axes.flat, names):
    sns.lineplot(data=long[long.metric == metric], x="epoch", y="value", hue="latent size",
                 style="split", style_order=["test", "train"], palette=colors, marker="o", ms=4,
                 ax=ax, legend=False)
    ax.set(title=names[metric], ylabel="")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
handles = [Line2D([], [], color=c, marker="o", ms=4, label=f"d = {d}") for d, c in colors.items()]
handles += [Line2D([], [], color="0.3", ls=ls, label=split) for split, ls in (("test", "-"), ("train", "--"))]
fig.legend(handles=handles, loc="outside lower center", ncol=len(handles))
plt.show()

# %% tags=["hide-input"]
last_epoch, still_falling = chapter.last_epoch_change({d: r.history for d, r in results.items()})
last_epoch = report.glue("last_epoch", last_epoch)

# %% [markdown]
# {glue:md}`last_epoch` The comparisons below are between models at this training length, not between
# converged ones (the `full` profile trains for 50 epochs).

# %% [markdown]
# ## The latent space while it learns
#
# Each frame shows the latent means of the same 2,000 test digits after one more epoch of training,
# coloured by their true label (which the VAE never sees). With $d = 2$ we see the space itself; for
# $d = 4$ and $16$ we see its first two principal components, a shadow of a larger space.

# %%
for d, r in results.items():
    display(plots.show_gif(plots.latent_gif(r.snapshots["codes"], test.y[gif_idx], title=f"d = {d},")))

# %% [markdown]
# Final latent spaces side by side, with a number that does not depend on the eye: the accuracy of a
# 5-nearest-neighbour classifier on the latent means of the 2,000 test codes (stratified 5-fold
# cross-validation, the protocol every chapter uses), and their silhouette. They measure how well the
# digits separate in the full latent space, not just in the 2-D view. For $d > 2$ the axes are the first
# two principal components, each labelled with its share of the variance.

# %%
separation = {d: latent_separation(r.snapshots["codes"][-1], test.y[gif_idx], seed=run.seed)
              for d, r in results.items()}

# %% tags=["hide-input"]
n_rows = (len(results) + 2) // 2  # two panels per row, and a slot for the legend
fig, axes = plots.figure(n_rows, 2, height=2.75 * n_rows, squeeze=False, constrained_layout=True)
for ax, (d, r) in zip(axes.flat, results.items()):
    knn = separation[d]["knn_accuracy"]
    plots.latent_scatter(r.snapshots["codes"][-1], test.y[gif_idx], ax=ax, s=2, legend=False,
                         title=f"d = {d}: 5-NN accuracy {knn:.1%}")
for ax in axes.flat[len(results):]:
    ax.set_axis_off()
digit_handles = [Line2D([], [], ls="", marker="o", ms=6, color=plots.DIGIT_COLORS(i), label=str(i))
                 for i in range(10)]
axes.flat[len(results)].legend(handles=digit_handles, loc="center", ncol=2, title="digit", frameon=False)
plt.show()

# %% [markdown]
# ## Reconstructions over training
#
# Top two rows: sixteen test digits (two of each of the first eight classes). Bottom two rows: their
# reconstructions, one frame per epoch.

# %%
originals = test.x[recon_idx]
for d, r in results.items():
    display(Markdown(f"**Latent size d = {d}**"))
    display(plots.show_gif(plots.reconstruction_gif(r.snapshots["recons"], originals)))

# %% [markdown]
# After the last epoch, side by side:

# %% tags=["hide-input"]
fig, axes = plots.figure(len(results) + 1, 1, height=0.95 * (len(results) + 1), constrained_layout=True)
plots.image_grid(originals, nrow=16, ax=axes[0], title="test images")
for ax, (d, r) in zip(axes[1:], results.items()):
    plots.image_grid(r.snapshots["recons"][-1], nrow=16, ax=ax, title=f"reconstructed, d = {d}")
plt.show()

# %% [markdown]
# ## Samples from the prior
#
# Decoding $z \sim \mathcal N(0, I)$ shows what each model has learnt to *generate*, not just to copy:
# 48 draws per model.

# %% tags=["hide-input"]
fig, axes = plots.figure(len(results), 1, height=1.75 * len(results), squeeze=False, constrained_layout=True)
for ax, (d, r) in zip(axes[:, 0], results.items()):
    samples = r.model.sample(48, generator=torch.Generator().manual_seed(run.seed)).cpu()
    plots.image_grid(samples, nrow=16, ax=ax, title=f"samples from the prior, d = {d}")
plt.show()

# %% [markdown]
# Better reconstructions do not make better samples. A sample is only as good as the decoder's output at
# a random point of $\mathcal N(0, I)$, and the decoder has only been trained on codes of real images. The
# codes of all images together, the *aggregate posterior* $\bar q(z) = \frac1N\sum_i q_\phi(z \mid x_i)$,
# need not fill the prior. `vaebook.evaluate.prior_coverage` measures this on the {glue:md}`n_coverage`
# test images. It draws 2,000 points from the prior and counts those where $\bar q$ is less than a tenth
# of the prior's density ("uncovered"), and it estimates $\mathrm{KL}(p \,\|\, \bar q)$ in nats, which is
# large when the prior puts mass where the encoder puts none. It also gives the KL of the per-dimension
# moments of $\bar q$ against $\mathcal N(0, 1)$ alone ("moment KL"), and the number of active dimensions
# (variance of $\mu_j(x)$ over the images above 0.01).

# %%
coverage = {}
for d, r in results.items():
    stats = batched(lambda b, m=r.model: torch.cat(m.encode(b), dim=1), test.x, module=r.model)
    coverage[d] = prior_coverage(stats[:, :d], stats[:, d:], n_prior=2000, seed=run.seed)
coverage_table = pd.DataFrame(coverage).T.rename(columns={
    "kl_prior_aggregate": "KL(p‖q̄)", "uncovered_fraction": "uncovered", "marginal_kl": "moment KL",
    "active_dims": "active", "mean_posterior_sd": "mean σ"}).rename_axis("latent size")
coverage_table.style.format({"KL(p‖q̄)": "{:.2f}", "uncovered": "{:.1%}", "moment KL": "{:.3f}",
                             "active": "{:.0f}", "mean σ": "{:.2f}"})

# %% tags=["hide-input"]
sizes = list(results)
report.glue("n_coverage", f"{len(test):,}")
report.glue("uncovered", ", ".join(f"{coverage[d]['uncovered_fraction']:.1%} for d = {d}" for d in sizes))
report.glue("kl_agg", ", ".join(f"{coverage[d]['kl_prior_aggregate']:.1f}" for d in sizes))
report.glue("moment_kl", ", ".join(f"{coverage[d]['marginal_kl']:.2f}" for d in sizes))
report.glue("active", ", ".join(f"{coverage[d]['active_dims']} of {d}" for d in sizes))
report.glue("sizes", ", ".join(map(str, sizes)))
d_big = max(sizes)
report.glue("d_big", d_big)
report.glue("uncovered_big", coverage[d_big]["uncovered_fraction"], ".1%")
report.glue("sd_big", coverage[d_big]["mean_posterior_sd"], ".2f")
best_recon = max(sizes, key=lambda d: results[d].history.test_ssim.iloc[-1])
report.glue("big_recon_clause", "although it reconstructs best (the highest test SSIM)" if best_recon == d_big
            else "and it does not reconstruct best either")
grows = all(coverage[a]["uncovered_fraction"] <= coverage[b]["uncovered_fraction"]
            for a, b in zip(sizes, sizes[1:]))
cover_verdict = report.glue("uncovered_grows", "grows with every step up in d" if grows
                            else "does not grow steadily with d")

# %% [markdown]
# In this run the share of uncovered prior draws is {glue:md}`uncovered`: it {glue:md}`uncovered_grows`.
# $\mathrm{KL}(p \,\|\, \bar q)$ is {glue:md}`kl_agg` nats for d = {glue:md}`sizes`. The per-dimension
# moments do not show this: their KL is {glue:md}`moment_kl` nats, and {glue:md}`active` dimensions are
# active. Each coordinate of the codes looks standard normal on its own. Jointly, though, the codes of the
# d = {glue:md}`d_big` model are small clouds (a posterior's $\sigma$ is {glue:md}`sd_big` on average,
# against the prior's 1) in a {glue:md}`d_big`-dimensional space, and most of the prior's volume lies
# between them. A draw from there decodes to something the decoder never had to reconstruct. That is why,
# in the grid above, many of the d = {glue:md}`d_big` samples are strokes and fragments rather than
# digits, more than for the smaller models, {glue:md}`big_recon_clause`. This is a known weakness of a
# fixed $\mathcal N(0, I)$ prior; a learnt prior is one answer (the flow chapter fits a g-and-k to the
# codes). Here $\bar q$ is the mixture over the test images only; with more images it would fill somewhat
# more of the prior.
#
# ## Final results
#
# All numbers on the whole test set after the last epoch (mean over images; the ELBO uses one sample of
# $z$ per image), one column per latent size, for the chapter's own seed ({glue:md}`own_seed`).

# %%
rows = {}
for d, r in results.items():
    last = r.history.iloc[-1]
    rows[f"d = {d}"] = {
        "test MSE": last.test_mse, "test PSNR (dB)": last.test_psnr, "test SSIM": last.test_ssim,
        "train SSIM": last.train_ssim, "test −ELBO (nats)": last.test_neg_elbo,
        "train −ELBO (nats)": last.train_neg_elbo,
        "KL (nats)": r.model.evaluate(test.x.to(run.torch_device))["kl"],
        "5-NN accuracy": separation[d]["knn_accuracy"], "silhouette": separation[d]["silhouette"],
        "s/epoch": r.seconds_per_epoch}
final = pd.DataFrame(rows)
one_decimal = ["test PSNR (dB)", "test −ELBO (nats)", "train −ELBO (nats)", "KL (nats)", "s/epoch"]
final.style.format(precision=3).format(precision=1, subset=pd.IndexSlice[one_decimal, :])

# %% tags=["hide-input"]
col = {d: f"d = {d}" for d in sizes}
row = lambda name: {d: float(final.loc[name, col[d]]) for d in sizes}  # noqa: E731
ssim_test, psnr, mse = row("test SSIM"), row("test PSNR (dB)"), row("test MSE")
elbo, kl, knn = row("test −ELBO (nats)"), row("KL (nats)"), row("5-NN accuracy")


def increasing(values):
    v = [values[d] for d in sizes]
    return all(a < b for a, b in zip(v, v[1:]))


def ordering(values, reverse):
    return sorted(sizes, key=values.get, reverse=reverse)


best_ssim = max(sizes, key=ssim_test.get)
report.glue("best_ssim_d", best_ssim)
report.glue("best_ssim", ssim_test[best_ssim], ".3f")
report.glue("ssim_list", ", ".join(f"{ssim_test[d]:.3f}" for d in sizes))
report.glue("ssim_trend", "rises with every step up in d" if increasing(ssim_test)
            else "does not rise with every step up in d")
agree = ordering(mse, False) == ordering(psnr, True) == ordering(ssim_test, True)
report.glue("metrics_agree", "agree on the ordering of the models" if agree
            else "do not all order the models the same way")
report.glue("kl_list", ", ".join(f"{kl[d]:.1f}" for d in sizes))
report.glue("kl_trend", "grows with d" if increasing(kl) else "does not grow steadily with d")
report.glue("elbo_list", ", ".join(f"{elbo[d]:.1f}" for d in sizes))
report.glue("elbo_trend", "still improves (falls) with every step up in d"
            if increasing({d: -v for d, v in elbo.items()}) else "does not improve with every step up in d")
best_knn = max(sizes, key=knn.get)
report.glue("knn_list", ", ".join(f"{knn[d]:.1%}" for d in sizes))
report.glue("best_knn_d", best_knn)
report.glue("knn_verdict", "separate the digits better than the smallest one" if best_knn != min(sizes)
            else "do not separate the digits better than the smallest one")
gaps = [abs(r.history.train_ssim - r.history.test_ssim).max() for r in results.values()]
report.glue("ssim_gap", max(gaps), ".3f")
elbo_gap = {d: float(final.loc["test −ELBO (nats)", col[d]] - final.loc["train −ELBO (nats)", col[d]])
            for d in sizes}
report.glue("elbo_gap", ", ".join(f"{v:+.1f}" for v in elbo_gap.values()))
falling_note = report.glue("falling_note", (
    "The curves were still falling at the last epoch, so longer training may change this." if still_falling
    else "No test loss fell over the last epoch." if run.epochs > 1 else "One epoch shows no trend."))

# %% [markdown]
# ## Across seeds
#
# One training run is one draw: the initial weights and the order of the mini-batches (and, with a
# training subset, the training images) depend on the seed. The table below gives, for each of the {glue:md}`n_seeds` seeds
# ({glue:md}`seed_list`) and each latent size, the last epoch's scores on the same test images.

# %%
seed_table = chapter.seed_scores(run.params, by_seed)
steps = chapter.psnr_steps(seed_table)

# %% tags=["hide-input"]
seed_table.style.format({chapter.SCORES["test_psnr"]: "{:.2f}", chapter.SCORES["test_ssim"]: "{:.3f}",
                         chapter.SCORES["test_neg_elbo"]: "{:.1f}"})

# %% [markdown]
# Mean ± standard deviation over the seeds, per latent size:

# %% tags=["hide-input"]
by_size = seed_table.groupby(level="latent size")
digits_of = {chapter.SCORES["test_psnr"]: 2, chapter.SCORES["test_ssim"]: 3, chapter.SCORES["test_neg_elbo"]: 1}
mean, sd = by_size.mean(), by_size.std(ddof=1)
pd.DataFrame({col: [f"{mean.loc[d, col]:.{k}f} ± {sd.loc[d, col]:.{k}f}" for d in mean.index]
              for col, k in digits_of.items()}, index=mean.index)

# %% tags=["hide-input"]
n_sizes = len(seed_table.index.unique("latent size"))
if n_sizes < 2:
    steps_text = "With a single latent size there is no step up in d to compare."
else:
    seed_at, d_from, d_to = steps["min_at"]
    steps_text = (f"The test PSNR rose with every step up in d on {steps['n_increasing']} of {run.seeds} seeds. "
                  f"The smallest step up, over all seeds and consecutive sizes, was {steps['min_step']:+.2f} dB "
                  f"(d = {d_from} → {d_to}, seed {seed_at}).")
report.glue("seeds_verdict", steps_text);

# %% [markdown]
# {glue:md}`seeds_verdict`

# %% [markdown]
# ## Reading the results
#
# The claim that reconstructions improve with the latent size rests on the table *Across seeds*: it
# holds only if the test PSNR rises with every step up in d on every one of the {glue:md}`n_seeds` seeds.
# {glue:md}`seeds_verdict` The numbers in the bullets below are those of the chapter's own seed
# ({glue:md}`own_seed`), the run shown in detail on this page; a difference in them smaller than the
# spread between seeds in the table above is not a difference between the sizes.
#
# * **Reconstruction.** The test SSIM is {glue:md}`ssim_list` for
#   d = {glue:md}`sizes`: it {glue:md}`ssim_trend`, and is best for d = {glue:md}`best_ssim_d`
#   ({glue:md}`best_ssim`). MSE, PSNR and SSIM {glue:md}`metrics_agree`. Two numbers cannot hold stroke
#   width, slant and identity at once: in the grid of reconstructions, several of the d = 2 model's
#   outputs are a different digit from the input.
# * **The KL term {glue:md}`kl_trend`.** It is {glue:md}`kl_list` nats. A larger latent space transmits
#   more information about each image (the "rate"), which is what buys the better reconstruction. The
#   test negative ELBO, which charges for that information, is {glue:md}`elbo_list` nats: it
#   {glue:md}`elbo_trend`.
# * **Separation.** With d = 2 the digits form visible clusters that overlap where digits look alike
#   (4/9, 3/5/8). The 5-NN accuracy is {glue:md}`knn_list`, highest for d = {glue:md}`best_knn_d`: the
#   larger spaces {glue:md}`knn_verdict`, which their 2-D projections hide.
# * **Generation.** Of the d = {glue:md}`d_big` model's prior draws, {glue:md}`uncovered_big` land
#   where the codes of real images are rare, and in the grid of samples many of them are fragments
#   rather than digits: a better reconstruction does not make a better generator.
# * **Overfitting.** The largest gap between training and test SSIM at any epoch is
#   {glue:md}`ssim_gap`. At the last epoch the test negative ELBO minus the training one is
#   {glue:md}`elbo_gap` nats for d = {glue:md}`sizes`. {glue:md}`falling_note`
#
# These numbers come from the {glue:md}`profile_name` profile; with the `smoke` profile (one epoch on
# 2,000 images) the models have barely started and the reading above does not apply.

# %%
report.glue("profile_name", f"`{run.profile}`")
# test PSNR, SSIM and negative ELBO per latent size: the MEAN over the seeds (the seeds table above);
# the 5-NN accuracy per latent size: the chapter's own seed
seed_means = seed_table.groupby(level="latent size").mean()
report.metric("test_psnr", [seed_means.loc[d, chapter.SCORES["test_psnr"]] for d in sizes], ".2f")
report.metric("test_ssim", [seed_means.loc[d, chapter.SCORES["test_ssim"]] for d in sizes], ".3f")
report.metric("test_neg_elbo", [seed_means.loc[d, chapter.SCORES["test_neg_elbo"]] for d in sizes], ".1f")
report.metric("knn_accuracy", [knn[d] for d in sizes], ".3f")
# the claim's evidence: the smallest PSNR step up (dB) over seeds and consecutive sizes, and the number of
# seeds on which the PSNR rose at every step
report.metric("test_psnr_min_step", steps["min_step"], ".2f")
report.metric("test_psnr_increasing_seeds", steps["n_increasing"])
results_file = report.write()

# %% [markdown]
# ## This build and the reference run
#
# The chapter's headline numbers, as written to its results file `book/generated/results/latent_size.json`,
# beside those of the committed reference run (`book/reference/latent_size.json`), with what produced each.
# {glue:md}`reference_note`

# %% tags=["hide-input"]
comparison = report.reference_table()
report.glue("reference_note", comparison.attrs["note"])
comparison
