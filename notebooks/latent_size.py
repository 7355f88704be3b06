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
# All losses in this book are **per-image sums in nats** (the negative ELBO of one image), as in the
# literature, so the numbers below can be compared with papers.

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
device = None         # "auto", "cpu", "cuda", ...
precision = None      # "auto", "fp32", "bf16"
threads = None        # torch threads per training job

# %%
from vaebook.config import chapter_params

run = chapter_params("latent_size", profile, globals())
run

# %% [markdown]
# The table above records the profile and every parameter that produced this page, with the machine and
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

from vaebook import plots
from vaebook.chapters import latent_size as chapter
from vaebook.evaluate import latent_separation, metrics_long
from vaebook.jobs import train_all
from vaebook.models import count_parameters

sets = chapter.chapter_data(run.params)
test, gif_idx, recon_idx = sets.test, sets.gif_idx, sets.recon_idx
pd.DataFrame({"images": [len(sets.train), len(test), len(sets.train_eval)]},
             index=["training", "test", "training images scored each epoch"])

# %% [markdown]
# ## Training
#
# One model per latent size: the classic multilayer perceptron of {cite:t}`kingma2014vae`, 784 → 400 → $d$
# for the encoder (twice, for $\mu$ and $\log\sigma^2$) and $d$ → 400 → 784 for the decoder, trained with
# Adam on the negative ELBO. After every epoch the training engine scores mean reconstructions
# (decode $\mu(x)$) on the test set and on a fixed sample of training images, and keeps the latent
# codes of 2,000 test images for the animations. Trained models are cached under `cache/`, keyed by
# every setting above: rebuilding the book reloads them instead of retraining.

# %%
results = dict(zip(run.latent_sizes, train_all(chapter.jobs(run))))

pd.DataFrame({
    "parameters": [count_parameters(r.model) for r in results.values()],
    "seconds per epoch (median)": [round(r.seconds_per_epoch, 2) for r in results.values()],
    "from cache": [r.loaded for r in results.values()],
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

# %%
long = metrics_long({d: r.history for d, r in results.items()})
long = long[long.metric.isin(["mse", "psnr", "ssim", "neg_elbo"])]
names = {"mse": "MSE", "psnr": "PSNR (dB)", "ssim": "SSIM", "neg_elbo": "negative ELBO (nats)"}
fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
for ax, metric in zip(axes, names):
    sns.lineplot(data=long[long.metric == metric], x="epoch", y="value", hue="latent size",
                 style="split", style_order=["test", "train"], palette="viridis", marker="o", ax=ax,
                 legend=(metric == "neg_elbo"))
    ax.set_title(names[metric])
    ax.set_ylabel("")
if len(long):
    sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
fig.tight_layout()

# %% [markdown]
# ## The latent space while it learns
#
# Each frame shows the latent means of the same 2,000 test digits after one more epoch of training,
# coloured by their true label (which the VAE never sees). With $d = 2$ we see the space itself; for
# $d = 4$ and $16$ we see its first two principal components, a shadow of a larger space.

# %%
from IPython.display import display

for d, r in results.items():
    display(plots.show_gif(plots.latent_gif(r.snapshots["codes"], test.y[gif_idx], title=f"d = {d},")))

# %% [markdown]
# Final latent spaces side by side, with a number that does not depend on the eye: the accuracy of a
# 5-nearest-neighbour classifier on the latent means of the 2,000 test codes (stratified 5-fold
# cross-validation, the protocol every chapter uses), and their silhouette. They measure how well the
# digits separate in the full latent space, not just in the 2-D view.

# %%
fig, axes = plt.subplots(1, len(results), figsize=(4.3 * len(results), 4))
axes = [axes] if len(results) == 1 else axes
separation = {}
for ax, (d, r) in zip(axes, results.items()):
    codes, labels = r.snapshots["codes"][-1], test.y[gif_idx]
    separation[d] = latent_separation(codes, labels, seed=run.seed)
    knn = separation[d]["knn_accuracy"]
    plots.latent_scatter(codes, labels, ax=ax, title=f"d = {d}: 5-NN accuracy {knn:.1%}", legend=(d == 2))
fig.tight_layout()

# %% [markdown]
# ## Reconstructions over training
#
# Top two rows: sixteen test digits (two of each of the first eight classes). Bottom two rows: their
# reconstructions, one frame per epoch.

# %%
originals = test.x[recon_idx]
for d, r in results.items():
    print(f"latent size {d}")
    display(plots.show_gif(plots.reconstruction_gif(r.snapshots["recons"], originals)))

# %%
fig, axes = plt.subplots(len(results) + 1, 1, figsize=(8, 1.2 * (len(results) + 1)))
plots.image_grid(originals, nrow=16, ax=axes[0], title="test images")
for ax, (d, r) in zip(axes[1:], results.items()):
    plots.image_grid(r.snapshots["recons"][-1], nrow=16, ax=ax, title=f"reconstructed, d = {d}")
fig.tight_layout()

# %% [markdown]
# ## Samples from the prior
#
# Decoding $z \sim \mathcal N(0, I)$ shows what each model has learnt to *generate*, not just to copy.

# %%
fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4))
axes = [axes] if len(results) == 1 else axes
for ax, (d, r) in zip(axes, results.items()):
    samples = r.model.sample(64, generator=torch.Generator().manual_seed(run.seed)).cpu()
    plots.image_grid(samples, nrow=8, ax=ax, title=f"d = {d}")
fig.tight_layout()

# %% [markdown]
# ## Final results
#
# All numbers on the whole test set after the last epoch (mean over images; the ELBO uses one sample of
# $z$ per image).

# %%
rows = {}
for d, r in results.items():
    last = r.history.iloc[-1]
    rows[d] = {"test MSE": last.test_mse, "test PSNR (dB)": last.test_psnr, "test SSIM": last.test_ssim,
               "train SSIM": last.train_ssim, "test −ELBO (nats)": last.test_neg_elbo,
               "KL (nats)": r.model.evaluate(test.x.to(run.torch_device))["kl"],
               "5-NN accuracy": separation[d]["knn_accuracy"],
               "silhouette": separation[d]["silhouette"], "s/epoch": r.seconds_per_epoch}
final = pd.DataFrame(rows).T
final.index.name = "latent size"
final.style.format(precision=3)

# %%
best = final["test SSIM"].idxmax()
gap = (final["train SSIM"] - final["test SSIM"]).abs().max()
print(f"best test SSIM: d = {best} ({final.loc[best, 'test SSIM']:.3f}); "
      f"largest train-test SSIM gap: {gap:.3f}")

# %% [markdown]
# ## Reading the results
#
# * **Reconstruction improves with latent size.** Two numbers cannot hold stroke width, slant and
#   identity at once: the $d = 2$ model keeps the rough shape and often the wrong digit, while $d = 16$
#   reconstructs most digits recognisably. MSE, PSNR and SSIM agree on the ordering; SSIM, being a
#   structural measure, separates the models most clearly.
# * **The KL term grows with $d$.** A larger latent space transmits more information about each image
#   (the "rate"), which is exactly what buys the better reconstruction; the ELBO, which charges for that
#   information, still improves.
# * **Small latent spaces organise more visibly.** With $d = 2$ the digits form visible clusters that
#   overlap where digits look alike (4/9, 3/5/8), but the 5-NN accuracy shows that the larger spaces
#   separate digits *better*: their 2-D projections simply hide it.
# * **Little overfitting.** Training and test curves stay close over the epochs shown; the MLP VAE with
#   these sizes does not memorise MNIST at this training length.
#
# The numbers above come from the profile at the top of the page; with the `smoke` profile (one epoch on
# 2,000 images) the models have barely started and the reading above does not apply.
