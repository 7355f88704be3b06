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
# # GAN versus VAE: which draws better digits?
#
# Two families of deep generative models turn random numbers into images. A **variational autoencoder**
# {cite}`kingma2014vae` learns an encoder and a decoder and is trained on a bound of the likelihood; a
# **generative adversarial network** {cite}`goodfellow2014gan` learns a generator by pitting it against a
# discriminator. This chapter trains both on MNIST with the source study's own (Keras) networks,
# translated to PyTorch, and compares what they produce: loss curves, samples while they learn, walks
# through their latent spaces, a check for memorised training digits, and sample-quality numbers that are
# calibrated so a reader can tell what they mean.
#
# ## How the VAE works
#
# The VAE (see {doc}`latent_size` for a longer account) models an image $x$ through a latent code
# $z \in \mathbb R^{16}$ with prior $p(z) = \mathcal N(0, I)$ and a decoder that gives every pixel a
# probability of ink, $p_\theta(x\mid z) = \prod_i \mathrm{Bernoulli}(x_i; \pi_i(z))$. An encoder
# $q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))$ is trained with it
# to maximise the evidence lower bound
#
# $$
# \mathcal L(x) = \mathbb E_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)]
#   - \mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z)) \;\le\; \log p_\theta(x),
# $$
#
# whose first term is minus the binary cross-entropy (BCE) summed over the 784 pixels and whose second
# is $\tfrac12\sum_{j=1}^{16}(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2)$. New digits come from decoding
# $z \sim \mathcal N(0, I)$.
#
# **Which loss.** The source study minimised the *mean* BCE over pixels plus the *mean* KL over latent
# dimensions. Multiplying by 784 shows what that is:
#
# $$
# \tfrac1{784}\mathrm{BCE}_\text{sum} + \tfrac1{16}\mathrm{KL}
#   = \tfrac1{784}\Bigl(\mathrm{BCE}_\text{sum} + \tfrac{784}{16}\,\mathrm{KL}\Bigr),
# $$
#
# a $\beta$-VAE with $\beta = 49$: the KL term is weighted 49 times more than in the ELBO, which pushes
# codes towards the prior so hard that the decoder can be told little about each image: expect
# blurrier reconstructions and samples. This chapter trains the **per-image ELBO** ($\beta = 1$,
# `loss_reduction="sum"`), the objective a VAE is defined by; the source's loss is available as the
# parameter `vae_loss = "mean"`.
#
# ## How the GAN works
#
# A GAN has no encoder and no likelihood. A generator $G$ maps noise $z \sim \mathcal N(0, I_{100})$ to
# an image; a discriminator $D$ maps an image to the probability that it is real. $D$ is trained as a
# classifier, minimising the cross-entropy
#
# $$
# L_D = -\mathbb E_{x \sim \text{data}}[\log D(x)] - \mathbb E_{z}[\log(1 - D(G(z)))],
# $$
#
# and $G$ is trained to fool it. The minimax game $\min_G \max_D (-L_D)$ has its optimum where the
# generated distribution equals the data distribution (then $D = \tfrac12$ everywhere and $L_D = 2\ln 2$);
# but early in training $D$ rejects samples easily, $\log(1 - D(G(z)))$ is flat there, and $G$ learns
# nothing. So $G$ minimises the **non-saturating** loss $L_G = -\mathbb E_z[\log D(G(z))]$ instead
# {cite}`goodfellow2014gan`, which has the same fixed point and strong gradients exactly when $G$ is bad.
# Each mini-batch takes one step on $D$ (real images and as many fresh samples), then one on $G$ (Adam,
# learning rate $2\cdot10^{-4}$, $\beta_1 = 0.5$, as in DCGAN {cite}`radford2016dcgan` and the source).
#
# The VAE is trained to explain *every* training image (its loss punishes any digit it cannot
# reconstruct), so it tends to cover all of the data but average over details. The GAN is only
# punished for samples the discriminator can spot, so it tends to produce sharp images but may drop
# parts of the data ("mode collapse"). The metrics below measure both tendencies separately.

# %% tags=["parameters"]
profile = "default"        # smoke | default | full
vae_epochs = None          # None: the profile's value
gan_epochs = None
vae_train_subset = None    # training images for the VAE (None: all 60,000)
gan_train_subset = None    # training images for the GAN (None: all 60,000)
vae_batch_size = None
gan_batch_size = None
vae_lr = None
gan_lr = None
vae_loss = None            # "sum": per-image ELBO (used here); "mean": the source's mean BCE + mean KL
latent_size = None         # VAE latent dimensions (the GAN's noise has 100, as in the source)
classifier_epochs = None   # epochs of the MNIST classifier behind the quality metrics
classifier_subset = None   # its training images (None: all 60,000)
n_samples = None           # generated (and real) images scored by the quality metrics
seed = None
device = None              # "auto", "cpu", "cuda", ...
precision = None      # "auto", "fp32", "bf16"
threads = None        # torch threads per training job

# %%
from vaebook.config import chapter_params

run = chapter_params("gan_vs_vae", profile, globals())
run

# %% [markdown]
# The table records every parameter behind this page. **Training budget.** The generator is by far
# the most expensive network here: its two 128-channel transposed convolutions make it about 70
# million multiply-adds per image, ten times the whole VAE (encoder and decoder, about 7 million), so
# on a CPU a GAN epoch over 60,000 images takes several minutes. The `default` profile therefore
# trains the VAE for a few epochs on a subset and the GAN for a few hundred generator steps on a
# smaller one (sizes in the table above and below); the `full` profile uses the source's settings, all
# 60,000 images for 30 VAE and 50 GAN epochs, and wants a GPU. Numbers on this page belong to the
# profile shown.
#
# ## Data

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from vaebook import plots
from vaebook.chapters import gan_vs_vae as chapter
from vaebook.jobs import train_all
from vaebook.quality import class_coverage, sample_quality
from vaebook.sample_analysis import (COVERAGE_RANGE, calibration_sets, collapse_check, copying_verdict,
                                     coverage_met, fid_standing, latent_walks, leader, memorisation,
                                     quality_table)

dev = run.torch_device
sets = chapter.chapter_data(run.params)
test, real_test = sets.test, sets.real_test
pd.DataFrame({"images": [len(sets.vae_train), len(sets.gan_train), run.n_samples]},
             index=["VAE training", "GAN training", "real and generated images per quality score"])

# %% [markdown]
# ## Measuring sample quality without Inception
#
# The usual yardstick, the Fréchet Inception Distance (FID) {cite}`heusel2017fid`, compares generated and
# real images in the feature space of an ImageNet classifier. Those weights cannot be downloaded here, and
# photographs' features are a poor lens for 28×28 digits anyway. So the book trains its own small MNIST
# classifier (two strided convolutions and a 128-unit dense layer; trained on images shifted at random by up
# to two pixels, with a one-cycle learning-rate schedule, which lifts it past 99% test accuracy within five
# epochs) and measures everything in the space of its 128 penultimate features $f(x)$. Features are only as
# trustworthy as the classifier, so its accuracy is printed below; a feature space that could not tell the
# digits apart would blur the distances between them.
#
# * **FID (MNIST classifier features).** Fit a Gaussian to the features of real and of generated
#   images and take the Fréchet (2-Wasserstein) distance between the two,
#   $\lVert\mu_r-\mu_g\rVert^2 + \operatorname{tr}\bigl(\Sigma_r+\Sigma_g-2(\Sigma_r\Sigma_g)^{1/2}\bigr)$.
#   Lower is better; 0 means identical first two moments. It is **not** comparable to Inception FID
#   numbers in papers (such as those of {cite:t}`lucic2018gans`), and it shrinks with more samples, so
#   only numbers computed here with the same sample size compare.
# * **Precision and recall** {cite}`kynkaanniemi2019precision`. Around every real feature vector draw a
#   ball reaching its third-nearest real neighbour; precision is the share of generated images falling in
#   some real ball (are samples realistic?). Swap the roles for recall: the share of real images inside
#   the generated balls (does the model cover the variety of the data?).
# * **Class coverage.** The classifier labels every sample; the histogram over the ten digits, its
#   entropy (at most $\ln 10 \approx 2.303$ nats, for a perfectly even spread) and the classifier's mean
#   top probability (confidence: do samples look like *some* digit?).

# %%
classifier, classifier_acc = chapter.classifier(run.params)
print(f"MNIST classifier: test accuracy {classifier_acc:.2%} on all 10,000 test images "
      f"({run.classifier_epochs} epochs on {run.classifier_subset or 60000:,} training images)")

# %% [markdown]
# **Calibration.** What does a Fréchet distance of 5 mean? The rows below score sets of *real* images
# against the same real test images: other real digits (training images: the floor that finite samples
# allow), and test digits spoiled by pixel noise or Gaussian blur.

# %%
calibration = calibration_sets(sets.real_train, noise_seed=run.seed + 1)
quality = {name: sample_quality(classifier, real_test, x) for name, x in calibration.items()}
quality_table(quality).style.format(precision=3)

# %%
fig, axes = plt.subplots(1, len(calibration), figsize=(2.2 * len(calibration), 2.4))
for ax, (name, x) in zip(axes, calibration.items()):
    plots.image_grid(x[:16], nrow=4, ax=ax, title=name)
fig.tight_layout()

# %% [markdown]
# ## Training
#
# **VAE:** the source's convolutional encoder (two stride-2 convolutions, 32 and 64 channels, a
# 128-unit dense layer, 16 latent dimensions) and its mirror-image decoder. **GAN:** the source's
# DCGAN-style discriminator (two stride-2 convolutions with 64 channels, LeakyReLU, dropout 0.4) and
# generator (a dense layer to 7×7×128, two stride-2 transposed convolutions with 128 channels, a 7×7
# convolution to one channel). After each epoch the training engine decodes the same 64 noise vectors
# (for the grids and animations below) and scores 500 samples with the Fréchet distance above.

# %%
_, vae_fit, gan_fit = train_all(chapter.jobs(run))
vae, gan = vae_fit.model, gan_fit.model
cost = chapter.training_cost(run.params, vae_fit, gan_fit)
cost.style.format(precision=2)

# %% [markdown]
# ## Training curves
#
# Left: the VAE's two loss terms per image (reconstruction, i.e. BCE, and KL) on the training batches
# and on 2,000 test images. Middle: the GAN's losses. A discriminator that can no longer tell real from
# fake sits at $L_D = 2\ln 2 \approx 1.39$ and $L_G = \ln 2 \approx 0.69$ (dotted lines); the GAN's
# losses do not fall steadily as a VAE's do, because each network's loss is the other's gain. Right:
# the discriminator's accuracy on real and on generated images.

# %%
vh, gh = vae_fit.history, gan_fit.history
fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
ax = axes[0]
ax.plot(vh.epoch, vh.recon, "o-", label="reconstruction (train)")
ax.plot(vh.epoch, vh.test_recon, "o--", label="reconstruction (test)")
ax.set_title("VAE: reconstruction (nats/image)")
ax.legend(fontsize=8)
ax = axes[1]
ax.plot(vh.epoch, vh.kl, "o-", label="KL (train)")
ax.plot(vh.epoch, vh.test_kl, "o--", label="KL (test)")
ax.set_title("VAE: KL (nats/image)")
ax.legend(fontsize=8)
ax = axes[2]
ax.plot(gh.epoch, gh.d_loss, "o-", label="$L_D$")
ax.plot(gh.epoch, gh.g_loss, "o-", label="$L_G$")
ax.axhline(2 * np.log(2), color="C0", ls=":")
ax.axhline(np.log(2), color="C1", ls=":")
ax.set_title("GAN losses")
ax.legend(fontsize=8)
ax = axes[3]
ax.plot(gh.epoch, gh.d_acc_real, "o-", label="on real images")
ax.plot(gh.epoch, gh.d_acc_fake, "o-", label="on generated images")
ax.axhline(0.5, color="grey", ls=":")
ax.set_ylim(0, 1.02)
ax.set_title("discriminator accuracy")
ax.legend(fontsize=8)
for ax in axes:
    ax.set_xlabel("epoch")
fig.tight_layout()

# %% [markdown]
# The Fréchet distance of 500 samples after every epoch (500 samples give larger values than the
# 2,000 or more used in the final table; only the trend matters here).

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(vh.epoch, vh.fid_500, "o-", label="VAE")
ax.plot(gh.epoch, gh.fid_500, "o-", label="GAN")
ax.set_xlabel("epoch")
ax.set_ylabel("FID (classifier features), 500 samples")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Samples while they learn
#
# The same 64 noise vectors decoded after the first, a middle and the last epoch, then an animation of
# every epoch. The VAE shows its decoder's *mean*, the pixel probabilities, as VAE papers usually do
# (a Bernoulli draw from it would add salt-and-pepper noise); the GAN shows its generator's output.

# %%
for label, result in (("VAE", vae_fit), ("GAN", gan_fit)):
    shown = sorted({1, (len(result.snapshots["samples"]) + 1) // 2, len(result.snapshots["samples"])})
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.8))
    for ax, e in zip(np.atleast_1d(axes), shown):
        plots.image_grid(result.snapshots["samples"][e - 1], nrow=8, ax=ax, title=f"{label}, epoch {e}")
    fig.tight_layout()
    plt.show()

# %%
for label, result in (("VAE", vae_fit), ("GAN", gan_fit)):
    print(f"{label}: fixed noise, one frame per epoch")
    frames = [np.kron(1 - plots.grid_array(s, nrow=8), np.ones((3, 3), dtype=np.float32))
              for s in result.snapshots["samples"]]
    display(plots.show_gif(plots.gif_bytes(frames, duration_ms=500)))

# %% [markdown]
# ## Walking through latent space
#
# Rows: straight-line paths between two latent points, decoded at ten evenly spaced steps. For the
# VAE the end points are the codes (posterior means) of two test digits, so each row morphs one real
# digit into another. The GAN has no encoder, so its end points are two random noise vectors. In 100
# dimensions a straight line between two draws passes through points of smaller norm than typical
# draws (the midpoint has about 0.71 times their length), so we walk along the great circle instead
# (spherical interpolation), which keeps the norm typical.

# %%
pairs = torch.randperm(len(test), generator=torch.Generator().manual_seed(run.seed + 4))[:12]
vae_ends = vae.latent_means(test.x[pairs].to(dev)).cpu().view(6, 2, -1)
gan_ends = torch.randn(6, 2, gan.noise_size, generator=torch.Generator().manual_seed(run.seed + 5))
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
plots.image_grid(latent_walks(vae, vae_ends, 10), nrow=10, ax=axes[0],
                 title="VAE: between the codes of two test digits")
plots.image_grid(latent_walks(gan, gan_ends, 10, spherical=True), nrow=10, ax=axes[1],
                 title="GAN: between two noise vectors (spherical)")
fig.tight_layout()

# %% [markdown]
# ## Did they memorise? Nearest training neighbours
#
# A generator that copies training images would score well on every metric above. For generated
# samples we find the closest image (Euclidean pixel distance) among the images that model was trained
# on, and compare with the same distance for real test digits, which the models never saw: samples
# much closer to the training set than new real digits are would point to copying.

# %%
n_nn = min(500, run.n_samples)
sample_gen = torch.Generator().manual_seed(run.seed + 6)
samples = {"VAE": vae.sample(run.n_samples, generator=sample_gen).cpu(),
           "GAN": gan.sample(run.n_samples, generator=sample_gen).cpu()}
pools = {"VAE": sets.vae_train, "GAN": sets.gan_train}
memo = {label: memorisation(samples[label][:n_nn], real_test[:n_nn], pool, device=dev)
        for label, pool in pools.items()}
for label, m in memo.items():
    print(f"{label}: samples lie {m.ratio:.2f} times as far from their nearest training image as real test "
          f"digits do ({copying_verdict(m.ratio)})")
pd.DataFrame({label: m.row() for label, m in memo.items()}).T.style.format(precision=3).format(
    "{:,.0f}", subset=["training images searched"])

# %%
fig, axes = plt.subplots(2, 1, figsize=(9, 3.2))
for ax, label in zip(axes, ("VAE", "GAN")):
    show = torch.cat([samples[label][:12], pools[label][memo[label].neighbours[:12]]])
    plots.image_grid(show, nrow=12, ax=ax, title=f"{label}: samples (top) and their nearest training images")
fig.tight_layout()

# %% [markdown]
# ## Sample quality side by side
#
# Both models' samples scored exactly like the calibration sets, against the same real test digits
# and with the same number of images.

# %%
quality["VAE samples"] = sample_quality(classifier, real_test, samples["VAE"])
quality["GAN samples"] = sample_quality(classifier, real_test, samples["GAN"])
summary = chapter.summary_table(quality_table(quality), vae, gan, cost)
summary.style.format(precision=3, na_rep="").format("{:,.0f}", subset=["parameters"], na_rep="")

# %%
fig, ax = plt.subplots(figsize=(7, 3))
width = 0.27
real_hist = class_coverage(classifier, real_test)["hist"]
for i, (label, hist) in enumerate((("real test digits", real_hist), ("VAE", quality["VAE samples"]["class_hist"]),
                                   ("GAN", quality["GAN samples"]["class_hist"]))):
    ax.bar(np.arange(10) + (i - 1) * width, hist, width, label=label)
ax.axhspan(*COVERAGE_RANGE, color="grey", alpha=0.15, lw=0)
ax.set_xticks(range(10))
ax.set_xlabel("digit predicted by the classifier")
ax.set_ylabel("share of images")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
vq, gq, floor = quality["VAE samples"], quality["GAN samples"], quality["real (training images)"]
print(f"classifier test accuracy: {classifier_acc:.2%}")
for label in ("VAE", "GAN"):
    c = collapse_check(samples[label], real_test)
    print(f"{label}: mean ink {c['ink']:.3f} (real digits {c['real_ink']:.3f}), spread between samples "
          f"{c['spread']:.3f}: {c['verdict']}")
print(f"coverage target (every digit {COVERAGE_RANGE[0] * 100:.0f}-{COVERAGE_RANGE[1]:.0%} of GAN samples): "
      f"{'met' if coverage_met(gq['class_hist']) else 'NOT met'}; "
      f"GAN digit shares range from {gq['class_hist'].min():.1%} to {gq['class_hist'].max():.1%}")
print(f"FID (MNIST classifier features), {run.n_samples} images: real-vs-real floor {floor['fid']:.2f}, "
      f"VAE {vq['fid']:.2f}, GAN {gq['fid']:.2f}")
print(f"precision / recall: VAE {vq['precision']:.3f} / {vq['recall']:.3f}, "
      f"GAN {gq['precision']:.3f} / {gq['recall']:.3f}")
print(f"lower FID: {leader({'GAN': gq['fid'], 'VAE': vq['fid']}, higher_is_better=False)}; "
      f"higher precision: {leader({'GAN': gq['precision'], 'VAE': vq['precision']})}; "
      f"higher recall: {leader({'GAN': gq['recall'], 'VAE': vq['recall']})}")
calib = {k: v["fid"] for k, v in quality.items() if k.startswith("real")}
for label, q in (("VAE", vq), ("GAN", gq)):
    print(f"{label} samples' FID ({q['fid']:.1f}) is {fid_standing(q['fid'], calib)}")

# %% [markdown]
# ## Reading the results
#
# * **Calibrate before comparing.** Two sets of real digits do not score 0: the real-versus-real row is
#   the floor for this sample size, and the noise and blur rows show how fast the numbers degrade for
#   defects we can name. A model's FID is best read against those rows, not against Inception FID values
#   from papers, which live on another scale.
# * **Precision alone can be fooled.** In the calibration rows, heavy blur *raises* precision: blurred
#   digits' features crowd into the densest part of the real manifold. The same happens to any set of
#   near-identical samples that lands inside one real ball (a collapsed generator can score precision
#   1 with recall 0). Read precision together with recall and the class histogram.
# * **The two models fail differently.** The VAE's samples are smooth and blurred, as its
#   pixel-averaging objective predicts, but it trains stably: its loss falls every epoch. A GAN can
#   draw crisper strokes but is fragile. If the discriminator wins outright (accuracy near 1 on real
#   and generated images, $L_D \to 0$, $L_G$ climbing), the generator stops learning; this one ends
#   in a sigmoid, and once its outputs saturate towards black the gradient through that sigmoid
#   vanishes and it does not recover. The "collapsed" diagnostic above says whether that happened in
#   this run; precision (realism) and recall (coverage) then separate the two failure modes that a
#   single FID number mixes.
# * **Coverage.** The class histogram shows whether a model favours some digits. The printed line says
#   whether the GAN's samples meet the target of every digit between 5% and 15%. That target is set for
#   the `full` profile; with the `default` profile's budget (its generator updates are in the training-cost
#   table) the GAN is far from converged, and an uneven histogram there says more about the budget than
#   about GANs.
# * **Memorisation.** The nearest-neighbour table compares samples with unseen real digits; the
#   printed verdict says whether either model's samples sit suspiciously close to its training images.
#   Copying would show as samples much closer than real test digits, and as near-duplicates in the
#   sample/neighbour rows.
# * **Cost.** Per image, a GAN update costs many times a VAE update here (see the training-cost
#   table): the generator's 128-channel transposed convolutions at full resolution dominate. On a CPU
#   the VAE gets much further for the same time, so a `default`-profile comparison compares budgets as
#   much as models, and one seed cannot settle it; the `full` profile gives both models the source's budgets.
# * **Where the source differs.** The source trained its VAE on mean BCE plus mean KL, a $\beta = 49$
#   objective that over-smooths; the per-image ELBO used here is the VAE's actual objective. The source
#   judged samples by eye; here every claim rests on a computed, calibrated number.
