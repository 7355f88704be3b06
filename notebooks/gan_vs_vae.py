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
# translated to PyTorch (in the `default` profile the generator at a quarter of its width, a
# discriminator that can judge whole digits and samples from an average of the generator's weights;
# *How the GAN works* says why), each with
# several seeds, and compares what they produce: loss curves, samples while they learn, walks
# through their latent spaces, a check for memorised training digits, and sample-quality numbers that are
# calibrated so a reader can tell what they mean.
#
# {glue:md}`opening`
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
# **Two changes to the discriminator** (in the `default` profile; the `full` profile keeps the source's).
# The source's discriminator ends in one linear layer on 7×7×64 features, each of which sees a
# 7×7-pixel patch of the image (two 3×3 convolutions of stride 2). Its logit is therefore a weighted sum
# of local stroke detectors: it can learn *where* digits have ink, but not whether the strokes in two
# places belong to one digit, and a generator can satisfy it with pieces of strokes in plausible places.
# The `default` profile puts one hidden layer (LeakyReLU) between those features and the logit, which
# makes the discriminator's verdict a nonlinear function of the whole image. It also adds the R1
# penalty {cite}`mescheder2018r1` to the discriminator's loss,
# $R_1 = \frac{\gamma}{2}\,\mathbb E_{x \sim p_\text{data}} \lVert \nabla_x \operatorname{logit} D(x) \rVert^2$,
# which keeps the discriminator flat on the real digits; Mescheder et al. show that it makes the game
# converge locally where unregularised GAN training can circle for ever. As in StyleGAN2
# {cite}`karras2020stylegan2` it is "lazy": computed on every 4th mini-batch and weighted by 4. The
# section *What each change of the recipe did* measures what each of the two did.
#
# **Samples from an averaged generator** (`default` profile). Even a GAN that trains circles around its
# equilibrium: from one mini-batch to the next the generator moves as far as the learning rate lets it,
# so the generator at the last step is one point on that orbit. The `default` profile draws its samples
# from an exponential moving average of the generator's weights instead, updated after every generator
# step, $\theta_\text{avg} \leftarrow d\,\theta_\text{avg} + (1 - d)\,\theta$ with
# $d = \min(\delta, (1 + t)/(10 + t))$ at step $t$, $\delta$ = {glue:md}`gan_ema` (the second term keeps
# the average from remembering the random initial weights). The average never enters the game: the discriminator always
# trains against the current generator. Yazıcı et al. {cite}`yazici2019averaging` prove that such an
# average shrinks the orbit around the equilibrium of simple games and find that it improves FID across
# GAN architectures and objectives.
#
# The VAE is trained to explain *every* training image (its loss punishes any digit it cannot
# reconstruct), so it tends to cover all of the data but average over details. The GAN is only
# punished for samples the discriminator can spot, so it tends to produce sharp images but may drop
# parts of the data ("mode collapse"). Its training can also stall: a discriminator that rejects every
# sample can leave the generator without a usable gradient, and one stuck at chance gives it little to
# learn from. The metrics below measure realism and coverage separately, and the training curves show
# which, if either, of these stalls happened.

# %% tags=["parameters"]
profile = "default"        # smoke | default | full | reference
vae_epochs = None          # None: the profile's value
gan_epochs = None
vae_train_subset = None    # training images for the VAE (None: all 60,000)
gan_train_subset = None    # training images for the GAN (None: all 60,000)
vae_batch_size = None
gan_batch_size = None
vae_lr = None
gan_lr = None
gan_width = None           # generator channels (the source's: 128)
gan_dropout = None         # discriminator dropout (the source's: 0.4)
gan_disc_hidden = None     # units of the discriminator's hidden read-out layer (the source: none, 0)
gan_r1_gamma = None        # weight of the R1 penalty on the discriminator (the source: 0)
gan_ema = None             # decay of the averaged generator that samples come from (the source: 0, none)
vae_loss = None            # "sum": per-image ELBO; "mean": the source's loss
latent_size = None         # VAE latent dimensions (the GAN's noise: 100)
classifier_epochs = None   # epochs of the MNIST classifier behind the metrics
classifier_subset = None   # its training images (None: all 60,000)
n_samples = None           # generated (and real) images per quality score
seed = None
seeds = None               # training seeds per model (seed, seed + 1, ...)
device = None              # "auto", "cpu", "cuda", ...
precision = None      # "auto", "fp32", "bf16"
threads = None        # torch threads per training job

# %%
from vaebook.config import chapter_params

run = chapter_params("gan_vs_vae", profile, globals())
from vaebook.report import Report

report = Report(run)
run

# %% [markdown]
# The table records every parameter behind this page. **Training budget.** The source's generator is by
# far the most expensive network here: its two 128-channel transposed convolutions make it about 70
# million multiply-adds per image, ten times the whole VAE (encoder and decoder, about 7 million). The
# `default` profile therefore keeps the source's architecture but gives the generator
# {glue:md}`gan_width` channels per hidden layer ({glue:md}`gan_params` parameters against the source's
# 1,164,289), drops the discriminator's dropout, adds a hidden layer of {glue:md}`gan_disc_hidden` units to the
# discriminator's read-out, adds the R1 penalty ($\gamma$ = {glue:md}`gan_r1_gamma`) to its loss, raises the
# learning rate to {glue:md}`gan_lr_default` and draws samples from an average of the generator's weights
# (the section *What each change of the recipe did* measures each change). This run's GAN trained at {glue:md}`gan_minutes_60k` minutes per
# 60,000 images on {glue:md}`train_device`: {glue:md}`gan_epochs` on {glue:md}`gan_images` images
# ({glue:md}`gan_updates` generator updates); the VAE trained for {glue:md}`vae_epochs` on
# {glue:md}`vae_images` images ({glue:md}`vae_updates` updates). Both were trained with
# {glue:md}`n_seeds` seeds each, and every comparison below is made on each seed. The `full` profile
# uses the source's exact networks and settings, all 60,000 images for 30 VAE and 50 GAN epochs, and
# wants a GPU (about 4.5 hours for its GAN on 2 CPU cores). The `reference` profile is what one working
# session on 2 CPU cores can run instead: this recipe with five times the GAN's training (10 epochs) and
# the VAE for 10 epochs on all images, scored exactly as the `default` profile is (the same classifier and
# number of samples), so that only the training budget differs; its run is the reference at the end of the
# page. Numbers on this page belong to the profile shown.
#
# ## Data

# %%
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import torch

from vaebook import plots
from vaebook.chapters import gan_vs_vae as chapter
from vaebook.gan import discriminator_scores
from vaebook.jobs import train_all
from vaebook.quality import class_coverage, sample_quality
from vaebook.sample_analysis import (
    COVERAGE_RANGE, MIN_GAN_PRECISION, MIN_RECONSTRUCTION_ACCURACY,
    calibration_sets, collapse_check,
    copying_verdict, fid_standing, gan_criteria,
    gan_diagnosis, grey_share, latent_walks, memorisation, observed_failures,
    quality_table, repeated_quality, seeds_conclusion, training_statement,
    vae_criteria)

dev = run.torch_device
sets = chapter.chapter_data(run.params)
test, real_test = sets.test, sets.real_test
pd.DataFrame({"images": [len(sets.vae_train), len(sets.gan_train),
                         run.n_samples]},
             index=["VAE training", "GAN training", "per quality score"])

# %% [markdown]
# The last row is the number of real test digits, and of generated images, behind every quality score
# below.
#
# ## Measuring sample quality without Inception
#
# The usual yardstick, the Fréchet Inception Distance (FID) {cite}`heusel2017fid`, compares generated and
# real images in the feature space of an ImageNet classifier. Those weights cannot be downloaded here, and
# photographs' features are a poor lens for 28×28 digits anyway. So the book trains its own small MNIST
# classifier (two strided convolutions and a 128-unit dense layer; trained on images shifted at random by up
# to two pixels, with a one-cycle learning-rate schedule) and measures everything in the space of its 128
# penultimate features $f(x)$. Features are only as trustworthy as the classifier: this one, trained for
# {glue:md}`classifier_epochs` epochs on {glue:md}`classifier_images` images, labels
# {glue:md}`classifier_acc` of all 10,000 test digits correctly. A feature space that could not tell the
# digits apart would blur the distances between them.
#
# * **FID (MNIST classifier features).** Fit a Gaussian to the features of real and of generated
#   images and take the Fréchet (2-Wasserstein) distance between the two,
#
#   $$
#   \begin{aligned}
#   \mathrm{FID} = {}& \lVert\mu_r-\mu_g\rVert^2 \\
#   &+ \operatorname{tr}\bigl(\Sigma_r+\Sigma_g-2(\Sigma_r\Sigma_g)^{1/2}\bigr).
#   \end{aligned}
#   $$
#
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

# %% tags=["hide-input"]
report.glue("classifier_acc", classifier_acc, ".2%")
report.glue("classifier_epochs", run.classifier_epochs)
report.glue("classifier_images", run.classifier_subset or 60000, ",");

# %% [markdown]
# **Calibration.** What does a Fréchet distance of 5 mean? The sets below are real MNIST *training*
# images ({glue:md}`calib_overlap`), scored against the same real test digits as the models' samples:
# untouched (the floor that finite samples allow: two sets of real digits do not score 0), spoiled by
# pixel noise of standard deviation 0.1 or 0.3, or blurred by a Gaussian of 0.7 or 1.5 pixels.

# %%
calibration = calibration_sets(sets.real_train,
                               noise_seed=run.seed + 1)
quality = {name: sample_quality(classifier, real_test, x)
           for name, x in calibration.items()}
chapter.formatted(quality_table(quality).T)

# %% tags=["hide-input"]
n_used = max(len(sets.vae_train), len(sets.gan_train))
in_training = n_used + run.n_samples > len(sets.train)
report.glue("calib_overlap", "some of them are in the models' training sets, as this profile "
            "trains on (nearly) all 60,000" if in_training
            else "none of them in either model's training subset")
fig, axes = plt.subplots(1, len(calibration), figsize=(plots.COLUMN_WIDTH, 1.7))
for ax, (name, x) in zip(axes, calibration.items()):
    plots.image_grid(x[:9], nrow=3, ax=ax, title=name)
fig.tight_layout()

# %% [markdown]
# ## Training
#
# **VAE:** the source's convolutional encoder (two stride-2 convolutions, 32 and 64 channels, a
# 128-unit dense layer, 16 latent dimensions) and its mirror-image decoder. **GAN:** the source's
# DCGAN-style discriminator (two stride-2 convolutions with 64 channels, LeakyReLU, dropout 0.4 in the
# source, {glue:md}`gan_dropout_used` here, then a dense read-out: one linear layer in the source, here
# {glue:md}`gan_readout`) and generator (a dense layer to 7×7×$w$, two stride-2
# transposed convolutions with $w$ channels, a 7×7 convolution to one channel; $w$ = 128 in the source,
# {glue:md}`gan_width` here). After each epoch the training engine decodes the same 64 noise vectors
# (for the grids and animations below) and scores 500 samples with the Fréchet distance above. The
# table gives each model's budget and the measured seconds of its training.

# %%
by_seed = chapter.fits_by_seed(run.params, train_all(chapter.jobs(run)))
vae_fit, gan_fit = by_seed[run.seed]   # the chapter's own seed: the detailed pages below
vae, gan = vae_fit.model, gan_fit.model
cost = chapter.training_cost(run.params, vae_fit, gan_fit)

# %% tags=["hide-input"]
epochs = lambda n: f"{n} epoch" + ("s" if n != 1 else "")
report.glue("n_seeds", run.seeds)
report.glue("gan_width", run.gan_width)
report.glue("gan_dropout_used", f"{run.gan_dropout:g}")
report.glue("gan_disc_hidden", chapter.DEFAULT.gan_disc_hidden, ",")   # the paragraph describes `default`
report.glue("gan_r1_gamma", f"{chapter.DEFAULT.gan_r1_gamma:g}")
report.glue("gan_ema", f"{chapter.DEFAULT.gan_ema:g}")
report.glue("gan_lr_default", f"{chapter.DEFAULT.gan_lr:.0e}".replace("e-0", "e-"))
report.glue("gan_readout", f"a hidden layer of {run.gan_disc_hidden:,} units (LeakyReLU) before the output"
            if run.gan_disc_hidden else "the same")
from vaebook.models import count_parameters
report.glue("gan_params", count_parameters(gan.generator), ",")
report.glue("vae_epochs", epochs(run.vae_epochs))
report.glue("gan_epochs", epochs(run.gan_epochs))
report.glue("vae_images", len(sets.vae_train), ",")
report.glue("gan_images", len(sets.gan_train), ",")
report.glue("vae_updates", cost.loc["VAE", "updates (mini-batches)"], ",")
report.glue("gan_updates", cost.loc["GAN", "updates (mini-batches)"], ",")
per_image = cost["seconds per 10,000 images"]
report.glue("cost_ratio", per_image["GAN"] / per_image["VAE"], ".1f")
report.glue("gan_minutes_60k", per_image["GAN"] * 6 / 60, ".0f")
report.glue("train_device", "a GPU" if run.torch_device.type == "cuda" else
            "a CPU" if run.torch_device.type == "cpu" else str(run.torch_device))
chapter.formatted(cost.T, {"training images": ",", "epochs": ",", "updates (mini-batches)": ","},
                  default=".2f")

# %% [markdown]
# **The four networks.** Each network's parameter count here and in the source's Keras model summary.
# {glue:md}`params_match`

# %% tags=["hide-input"]
params = chapter.parameter_table(vae, gan)
report.glue("params_match", "All four agree with the source." if params["same"].all() else
            "The rows marked False differ from the source.")
chapter.formatted(params.T, default=",").T

# %% [markdown]
# ## Training curves
#
# Top: the VAE's two loss terms per image (reconstruction, i.e. BCE, and KL) on the training batches
# and on 2,000 test images. Bottom left: the GAN's losses. A discriminator that can no longer tell real
# from fake sits at $L_D = 2\ln 2 \approx 1.39$ and $L_G = \ln 2 \approx 0.69$ (dotted lines); the GAN's
# losses do not fall steadily as a VAE's do, because each network's loss is the other's gain. Bottom
# right: the discriminator's accuracy on real and on generated images (means over each epoch's
# batches, with dropout on).

# %% tags=["hide-input"]
vh, gh = vae_fit.history, gan_fit.history
fig, axes = plt.subplots(2, 2, figsize=(plots.COLUMN_WIDTH, 5))
ax = axes[0, 0]
ax.plot(vh.epoch, vh.recon, "o-", label="train")
ax.plot(vh.epoch, vh.test_recon, "o--", label="test")
ax.set_title("VAE: reconstruction (nats/image)")
ax.legend()
ax = axes[0, 1]
ax.plot(vh.epoch, vh.kl, "o-", label="train")
ax.plot(vh.epoch, vh.test_kl, "o--", label="test")
ax.set_title("VAE: KL (nats/image)")
ax.legend()
ax = axes[1, 0]
ax.plot(gh.epoch, gh.d_loss, "o-", label="$L_D$")
ax.plot(gh.epoch, gh.g_loss, "o-", label="$L_G$")
ax.axhline(2 * np.log(2), color="C0", ls=":")
ax.axhline(np.log(2), color="C1", ls=":")
ax.set_title("GAN losses")
ax.legend()
ax = axes[1, 1]
ax.plot(gh.epoch, gh.d_acc_real, "o-", label="real images")
ax.plot(gh.epoch, gh.d_acc_fake, "o-", label="generated")
ax.axhline(0.5, color="grey", ls=":")
ax.set_ylim(0, 1.02)
ax.set_title("discriminator accuracy")
ax.legend()
for ax in axes.flat:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
for ax in axes[1]:
    ax.set_xlabel("epoch")
fig.tight_layout()

# %% [markdown]
# The Fréchet distance and the precision of 500 samples after every epoch, against 500 real test digits
# (500 samples give larger FIDs than the {glue:md}`n_samples` of the final scores, and these curves have
# no error bars: only their trends matter). The two answer different questions: FID falls as the samples'
# features approach the real digits' as a whole, precision rises only as more of the samples themselves
# land among real digits. The dotted line is the precision of 0.6 asked of the GAN's final score (fewer
# real digits make wider balls, so a 500-sample precision tends to read a little higher than the final
# one).

# %% tags=["hide-input"]
report.glue("n_samples", run.n_samples, ",")
fig, axes = plt.subplots(1, 2, figsize=(plots.COLUMN_WIDTH, 3.2))
for label, h in (("VAE", vh), ("GAN", gh)):
    axes[0].plot(h.epoch, h.fid_500, "o-", label=label)
    axes[1].plot(h.epoch, h.precision_500, "o-", label=label)
axes[0].set_ylabel("FID, 500 samples")
axes[0].set_yscale("log")
axes[1].set_ylabel("precision, 500 samples")
axes[1].axhline(MIN_GAN_PRECISION, color="grey", ls=":")
axes[1].set_ylim(0, 1.02)
for ax in axes:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Samples while they learn
#
# The same noise vectors decoded after the first, a middle and the last epoch (16 of them), then an
# animation of all 64 over every epoch. The VAE shows its decoder's *mean*, the pixel probabilities, as VAE papers usually do
# (a Bernoulli draw from it would add salt-and-pepper noise); the GAN shows its generator's output.

# %% tags=["hide-input"]
rows = [(label, e, result.snapshots["samples"][e - 1][:16])
        for label, result in (("VAE", vae_fit), ("GAN", gan_fit))
        for e in sorted({1, (len(result.snapshots["samples"]) + 1) // 2, len(result.snapshots["samples"])})]
fig, axes = plt.subplots(len(rows), 1, figsize=(plots.COLUMN_WIDTH, 0.75 * len(rows)))
for ax, (label, e, images) in zip(np.atleast_1d(axes), rows):
    plots.image_grid(images, nrow=16, ax=ax, title=f"{label}, epoch {e}")
fig.tight_layout()

# %% [markdown]
# The VAE's samples, one frame per epoch:

# %% tags=["hide-input"]
def samples_gif(result):
    frames = [np.kron(1 - plots.grid_array(s, nrow=8), np.ones((2, 2), dtype=np.float32))
              for s in result.snapshots["samples"]]
    return plots.show_gif(plots.gif_bytes(frames, duration_ms=500))


samples_gif(vae_fit)

# %% [markdown]
# The GAN's, one frame per epoch:

# %% tags=["hide-input"]
samples_gif(gan_fit)

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
seeded = lambda k: torch.Generator().manual_seed(run.seed + k)
pairs = torch.randperm(len(test), generator=seeded(4))[:12]
vae_ends = vae.latent_means(test.x[pairs].to(dev)).cpu().view(6, 2, -1)
gan_ends = torch.randn(6, 2, gan.noise_size, generator=seeded(5))
walks = {"VAE: between the codes of two test digits":
             latent_walks(vae, vae_ends, 10),
         "GAN: between two noise vectors (spherical)":
             latent_walks(gan, gan_ends, 10, spherical=True)}

# %% tags=["hide-input"]
fig, axes = plt.subplots(2, 1, figsize=(plots.COLUMN_WIDTH, 7.4))
for ax, (title, images) in zip(axes, walks.items()):
    plots.image_grid(images, nrow=10, ax=ax, title=title)
fig.tight_layout()

# %% [markdown]
# ## Did they memorise? Nearest training neighbours
#
# A generator that copies training images would score well on every metric above. For generated
# samples we find the closest image (Euclidean pixel distance) among the images that model was trained
# on, and compare with the same distance for real test digits, which the models never saw: samples
# much closer to the training set than new real digits are would point to copying. The VAE's samples
# lie {glue:md}`memo_ratio_vae` times as far from their nearest training image as real test digits do
# ({glue:md}`memo_verdict_vae`), the GAN's {glue:md}`memo_ratio_gan` times
# ({glue:md}`memo_verdict_gan`); the ratios come from {glue:md}`n_nn` samples and digits each, and
# their sampling noise is not measured here.

# %%
n_nn = min(500, run.n_samples)
sample_gen = torch.Generator().manual_seed(run.seed + 6)
samples = {label: model.sample(run.n_samples, generator=sample_gen)
           for label, model in (("VAE", vae), ("GAN", gan))}
samples = {label: x.cpu() for label, x in samples.items()}
pools = {"VAE": sets.vae_train, "GAN": sets.gan_train}
memo = {label: memorisation(samples[label][:n_nn], real_test[:n_nn],
                            pool, device=dev)
        for label, pool in pools.items()}
memo_table = pd.DataFrame({label: m.row() for label, m in memo.items()})
chapter.formatted(memo_table, {"training images searched": ",.0f"})

# %% tags=["hide-input"]
report.glue("n_nn", n_nn, ",")
for label, m in memo.items():
    report.glue(f"memo_ratio_{label.lower()}", m.ratio, ".2f")
    report.glue(f"memo_verdict_{label.lower()}", copying_verdict(m.ratio))
fig, axes = plt.subplots(2, 1, figsize=(plots.COLUMN_WIDTH, 2.6))
for ax, label in zip(axes, ("VAE", "GAN")):
    show = torch.cat([samples[label][:12], pools[label][memo[label].neighbours[:12]]])
    plots.image_grid(show, nrow=12, ax=ax, title=f"{label}: samples (top), nearest training images")
fig.tight_layout()

# %% [markdown]
# ## Sample quality side by side
#
# Both models' samples scored exactly like the calibration sets, against the same real test digits
# and with the same number of images ({glue:md}`n_samples`). **Sampling noise.** Each score comes from
# one set of samples; {glue:md}`noise_sets` more independent sets of the same size from each model give
# each score's standard deviation (the "sd" columns). For the VAE and the GAN in turn it is
# {glue:md}`fid_vae_sd` and {glue:md}`fid_gan_sd` for FID, {glue:md}`precision_vae_sd` and
# {glue:md}`precision_gan_sd` for precision, {glue:md}`recall_vae_sd` and {glue:md}`recall_gan_sd` for
# recall. The
# real test digits are the same in every set, so their own sampling noise is not included, and the
# spread between training runs (seeds), which one seed cannot show, is not included either. The "real"
# column is the untouched calibration set.

# %%
for label in ("VAE", "GAN"):
    quality[f"{label} samples"] = sample_quality(
        classifier, real_test, samples[label])
vq, gq = quality["VAE samples"], quality["GAN samples"]
floor = quality["real"]
# sampling noise: NOISE_SETS more sample sets per model, scored alike
spread = {}
for label, model in (("VAE", vae), ("GAN", gan)):
    more = [model.sample(run.n_samples, generator=seeded(100 + i)).cpu()
            for i in range(chapter.NOISE_SETS)]
    spread[label] = repeated_quality(classifier, real_test,
                                     [samples[label]] + more).std()
scores = quality_table({"VAE": vq, "GAN": gq, "real": floor}).T
side_by_side = pd.DataFrame({
    "VAE": scores["VAE"], "VAE sd": spread["VAE"],
    "GAN": scores["GAN"], "GAN sd": spread["GAN"], "real": scores["real"]})
chapter.formatted(side_by_side)

# %% tags=["hide-input"]
report.glue("noise_sets", chapter.NOISE_SETS)
for label in ("VAE", "GAN"):
    sd = spread[label]
    report.glue(f"fid_{label.lower()}_sd", sd["FID (classifier features)"], ".1f")
    report.glue(f"precision_{label.lower()}_sd", sd["precision"], ".3f")
    report.glue(f"recall_{label.lower()}_sd", sd["recall"], ".3f")

# %% [markdown]
# **Precision against recall.** Every scored set as one point: the calibration sets (grey: untouched
# real digits filled, noisy and blurred ones open) and the two models (with bars of one standard
# deviation over the sample sets, often smaller than the marker). Real digits sit near the top right;
# the calibration sets show how far named defects move a set from there.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(plots.COLUMN_WIDTH, 4.2))
for name, marker in zip(calibration, "o^v<>"):
    q = quality[name]
    ax.plot(q["recall"], q["precision"], marker, color="dimgrey" if name == "real" else "darkgrey",
            mfc="none" if name != "real" else "dimgrey", ms=8, mew=1.5, label=f"calibration: {name}")
for color, label, q in (("C0", "VAE", vq), ("C3", "GAN", gq)):
    ax.errorbar(q["recall"], q["precision"], xerr=spread[label]["recall"], yerr=spread[label]["precision"],
                fmt="s", color=color, ms=7, capsize=3, label=f"{label} samples")
ax.axhline(MIN_GAN_PRECISION, color="C3", ls=":", lw=1, label=f"GAN target precision {MIN_GAN_PRECISION:g}")
ax.set_xlim(-0.02, 1.05)
ax.set_ylim(-0.02, 1.05)
ax.set_xlabel("recall (coverage of real digits)")
ax.set_ylabel("precision (realism)")
ax.legend(loc="best", ncol=2)
fig.tight_layout()

# %% [markdown]
# **Which digits.** The share of each digit among real test digits and the two models' samples, as the
# classifier labels them; the grey band is the coverage target of every digit between 5% and 15%.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(plots.COLUMN_WIDTH, 3))
width = 0.27
real_hist = class_coverage(classifier, real_test)["hist"]
for i, (label, hist) in enumerate((("real test digits", real_hist), ("VAE", vq["class_hist"]),
                                   ("GAN", gq["class_hist"]))):
    ax.bar(np.arange(10) + (i - 1) * width, hist, width, label=label)
ax.axhspan(*COVERAGE_RANGE, color="grey", alpha=0.15, lw=0)
ax.set_xticks(range(10))
ax.set_xlabel("digit predicted by the classifier")
ax.set_ylabel("share of images")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Did each model train?
#
# The project counts the GAN as trained when every digit has 5-15% of its samples, its FID is below the
# VAE's, and its precision is at least 0.6. This chapter checks the VAE's training on its own terms: did
# its test loss fall in every epoch, did its samples avoid collapsing to near-identical or blank images,
# and does its decoder draw recognisable digits from the codes of real ones? The last is measured on its
# reconstructions of {glue:md}`n_recon` labelled test digits: the classifier must recognise at least
# {glue:md}`min_recon_accuracy` of them as the digit they came from; it recognised
# {glue:md}`recon_accuracy`. How evenly the VAE's samples from the prior spread over the digits is not a
# check of its training: the prior $\mathcal N(0, I)$ puts mass where the encoder put no codes, where the
# decoder draws blends, so a VAE can reconstruct every digit and still draw one too often (the reason
# {cite}`ghosh2020rae` fit a density to the codes after training). Here its reconstructions' digit
# shares run from {glue:md}`recon_share_min` to {glue:md}`recon_share_max` (real test digits:
# {glue:md}`real_share_min` to {glue:md}`real_share_max`), its prior samples' from
# {glue:md}`min_digit_share_vae` to {glue:md}`max_digit_share_vae`; the comparison below reports that
# evenness for both models. The discriminator is also scored once more after training, with dropout off,
# on the final samples and real test digits. The table lists the GAN's criteria.

# %%
collapse = {label: collapse_check(samples[label], real_test)
            for label in samples}
final_d = discriminator_scores(gan, real_test, samples["GAN"])
gan_checks = gan_criteria(gq["class_hist"], gq["fid"], vq["fid"],
                          gq["precision"])
recon = chapter.reconstruction_quality(run.params, classifier, vae)
vae_checks = vae_criteria((vh.test_recon + vh.test_kl).to_numpy(),
                          collapse["VAE"], recon["accuracy"])
gan_state, diagnosis = gan_diagnosis(gh, final_d, collapse["GAN"],
                                     gq["precision"])
gan_trained = all(c.passed for c in gan_checks)
vae_trained = all(c.passed for c in vae_checks)

# %% tags=["hide-input"]
real_hist_all = class_coverage(classifier, test.x[:chapter.N_TEST_ELBO])["hist"]
report.glue("n_recon", chapter.N_TEST_ELBO, ",")
report.glue("min_recon_accuracy", MIN_RECONSTRUCTION_ACCURACY, ".0%")
report.glue("recon_accuracy", recon["accuracy"], ".1%")
report.glue("recon_share_min", recon["hist"].min(), ".1%")
report.glue("recon_share_max", recon["hist"].max(), ".1%")
report.glue("real_share_min", real_hist_all.min(), ".1%")
report.glue("real_share_max", real_hist_all.max(), ".1%")

# %% tags=["hide-input"]
hist = gq["class_hist"]
pd.DataFrame({"GAN": [f"{hist.min():.1%}", f"{hist.max():.1%}", f"{gq['fid']:.1f}", f"{gq['precision']:.3f}"],
              "required": [f"≥ {COVERAGE_RANGE[0]:.0%}", f"≤ {COVERAGE_RANGE[1]:.0%}", f"< {vq['fid']:.1f} (VAE)",
                           f"≥ {MIN_GAN_PRECISION:g}"],
              "met": ["yes" if ok else "no" for ok in (hist.min() >= COVERAGE_RANGE[0],
                                                       hist.max() <= COVERAGE_RANGE[1],
                                                       gan_checks[1].passed, gan_checks[2].passed)]},
             index=["rarest digit's share", "commonest digit's share", "FID", "precision"])

# %% [markdown]
# These numbers, the training curves and the discriminator's final scores make up the verdict stated at
# the top of the page.

# ## Across seeds
#
# One training run of a GAN is one draw from a noisy process, so the page trains both models with each
# of {glue:md}`n_seeds` seeds ({glue:md}`seed_list`) and scores every one the same way:
# {glue:md}`n_samples` samples against the same real test digits, in the same classifier's features.
# The sampling noise of one score, measured above on the chapter's own seed from
# {glue:md}`noise_sets_plus_one` sample sets, is an FID standard deviation of {glue:md}`fid_gan_sd`
# (GAN) and {glue:md}`fid_vae_sd` (VAE). {glue:md}`across_seeds`

# %%
seed_table = chapter.seed_scores(run.params, classifier, by_seed)

# %% tags=["hide-input"]
gan_rows = seed_table.xs("GAN", level="model")
vae_rows = seed_table.xs("VAE", level="model")
n_met = int(gan_rows["trained"].astype(bool).sum())
report.glue("seed_list", ", ".join(str(s) for s in run.params.seed_values()))
report.glue("noise_sets_plus_one", chapter.NOISE_SETS + 1)
across_seeds = (f"Over the {run.seeds} seeds the GAN's FID ran from {gan_rows.FID.min():.1f} to "
                f"{gan_rows.FID.max():.1f} and the VAE's from {vae_rows.FID.min():.1f} to "
                f"{vae_rows.FID.max():.1f}; the GAN's precision from {gan_rows.precision.min():.2f} to "
                f"{gan_rows.precision.max():.2f}, its digit shares from {gan_rows['rarest digit'].min():.1%} "
                f"to {gan_rows['commonest digit'].max():.1%}. The GAN met all three criteria on {n_met} of "
                f"{run.seeds} seeds, the VAE passed its checks on {int(vae_rows['trained'].sum())}.")
report.glue("across_seeds", across_seeds)
yes_no = {True: "yes", False: "no"}
table = seed_table.assign(**{column: seed_table[column].map(yes_no) for column in ("even digits", "trained")})
table.style.format({"FID": "{:.1f}", "precision": "{:.3f}", "recall": "{:.3f}",
                    "rarest digit": "{:.1%}", "commonest digit": "{:.1%}"})

# %% [markdown]
# ## What each change of the recipe did
#
# With the source's networks and recipe (generator width 128, discriminator dropout 0.4, learning rate
# $2\cdot10^{-4}$, batch 64) on this page's earlier budget of 1,536 generator steps on 12,288 images,
# the GAN did not train. The tables below are an ablation, split to fit the page: each numbered column
# is one training run that adds one change to the run before it, with seed 0 and about that budget
# (whole epochs, so the runs on all 60,000 images take a few more steps; the tables give each run's),
# scored like the models above (2,000 samples against the same 2,000 test digits, the same
# classifier); the last two lines are the discriminator's loss and mean accuracy in its last epoch (at
# chance: 1.39 and 50%). It is measured by `bench/bench_gan_recipe.py` (about 12 minutes on two cores)
# and read from `book/reference/gan_recipe.csv`. Runs 6 and 7 are the two changes to the
# discriminator described under *How the GAN works*: a hidden layer in its read-out, then the R1 penalty;
# runs 8 and 9 raise the learning rate again and draw the samples from the averaged generator.
# {glue:md}`ablation_note` {glue:md}`ablation_legend`

# %% tags=["hide-input"]
ablation = chapter.recipe_ablation()
if ablation is None:
    report.glue("ablation_note", "**It has not been measured in this checkout**: run the script to fill it.")
    report.glue("ablation_legend", "(No rows yet.)")
else:
    gan_fid = seed_table.xs("GAN", level="model")["FID"]
    report.glue("ablation_note", chapter.recipe_reading(ablation, gan_fid.max() - gan_fid.min()))
    report.glue("ablation_legend", "Columns: " + chapter.recipe_legend(ablation))
    for part in chapter.recipe_tables(ablation):   # in parts, so that each fits the page
        display(part)

# %% tags=["hide-input"]
report.glue("opening", training_statement(gan_checks, vae_checks, diagnosis) + " " + across_seeds)
calib_fid = {("the untouched set" if k == "real" else k): quality[k]["fid"] for k in calibration}
blur = quality["blur σ=1.5"]
report.glue("fid_floor", floor["fid"], ".2f")
report.glue("fid_standing_vae", fid_standing(vq["fid"], calib_fid))
report.glue("fid_vae_own", vq["fid"], ".1f")
report.glue("fid_gan_own", gq["fid"], ".1f")
report.glue("fid_standing_gan", fid_standing(gq["fid"], calib_fid))
report.glue("precision_real", floor["precision"], ".3f")
report.glue("precision_blur", blur["precision"], ".3f")
report.glue("blur_effect", "so a visible defect raised precision" if blur["precision"] > floor["precision"]
            else "so here blur lowered precision, but it need not")
failures = observed_failures(gan_state, gan_checks, vae_checks, grey_share(samples["VAE"]), grey_share(real_test))
report.glue("failures", ("In this run " + "; ".join(failures) + ".") if failures else
            "Neither model showed a failure that this page measures.")
report.glue("coverage_met", "met" if gan_checks[0].passed else "missed")
for label, q in (("gan", gq), ("vae", vq)):
    report.glue(f"min_digit_share_{label}", q["class_hist"].min(), ".1%")
    report.glue(f"max_digit_share_{label}", q["class_hist"].max(), ".1%")
report.glue("conclusion", seeds_conclusion(seed_table));

# %% [markdown]
# ## Reading the results
#
# * **Calibrate before comparing.** Two sets of real digits do not score 0: the untouched calibration
#   set's FID of {glue:md}`fid_floor` is the floor for this sample size, and the noise and blur sets show
#   how fast the numbers degrade for defects we can name. On the chapter's own seed the VAE's FID of
#   {glue:md}`fid_vae_own` is {glue:md}`fid_standing_vae`; the GAN's, {glue:md}`fid_gan_own`, is
#   {glue:md}`fid_standing_gan`. A model's FID is best read against those sets, not against
#   Inception FID values from papers, which live on another scale.
# * **Precision alone can be fooled.** Blur of 1.5 pixels gives precision {glue:md}`precision_blur`
#   against {glue:md}`precision_real` for the untouched digits, {glue:md}`blur_effect`: blurred digits'
#   features can crowd into the densest part of the real manifold. The same can happen to any set of
#   near-identical samples that lands inside one real ball (a collapsed generator can score precision 1
#   with recall 0). Read precision together with recall and the class histogram.
# * **What failed.** {glue:md}`failures`
# * **Coverage.** The GAN {glue:md}`coverage_met` the target of every digit between 5% and 15% of its
#   samples: its digit shares run from {glue:md}`min_digit_share_gan` to
#   {glue:md}`max_digit_share_gan`, the VAE's from {glue:md}`min_digit_share_vae` to
#   {glue:md}`max_digit_share_vae`. The target is set for the `full` profile; with this run's budget of
#   {glue:md}`gan_updates` generator updates, an uneven histogram may say more about the budget than
#   about GANs.
# * **Cost.** Per training image, a GAN update took {glue:md}`cost_ratio` times as long as a VAE update
#   when these models were trained (seconds in the training table): each update runs the generator
#   forward and backward once and the discriminator three times (real digits and fakes for its own step,
#   the same fakes again for the generator's), and the generator's {glue:md}`gan_width`-channel transposed
#   convolutions at full resolution are the largest layers of either network. On a CPU the VAE gets much
#   further for the same time, so a `default`-profile comparison compares budgets as much as models.
# * **Where the source differs.** The source trained its VAE on mean BCE plus mean KL, a $\beta = 49$
#   objective that over-smooths; the per-image ELBO used here is the VAE's actual objective. The source
#   judged samples by eye; here every claim rests on a computed, calibrated number.
#
# ## Conclusion
#
# {glue:md}`conclusion`

# %% tags=["hide-input"]
gan_rows = seed_table.xs("GAN", level="model")   # one value per seed, in seed order
vae_rows = seed_table.xs("VAE", level="model")
report.metric("fid_gan", gan_rows["FID"], ".1f")
report.metric("fid_vae", vae_rows["FID"], ".1f")
report.metric("precision_gan", gan_rows["precision"])
report.metric("recall_gan", gan_rows["recall"])
report.metric("precision_vae", vae_rows["precision"])
report.metric("recall_vae", vae_rows["recall"])
report.metric("min_digit_share_gan", gan_rows["rarest digit"])
report.metric("max_digit_share_gan", gan_rows["commonest digit"])
report.metric("gan_trained", gan_rows["trained"].astype(float))
report.metric("vae_trained", vae_rows["trained"].astype(float))
report.metric("fid_real_floor", floor["fid"])
for label in ("gan", "vae"):   # one model's sampling noise (the chapter's own seed)
    sd = spread[label.upper()]
    report.metric(f"fid_{label}_sd", sd["FID (classifier features)"])
    report.metric(f"precision_{label}_sd", sd["precision"])
    report.metric(f"recall_{label}_sd", sd["recall"])
report.write();

# %% [markdown]
# ## This build and the reference run
#
# The chapter's headline numbers, as written to its results file `book/generated/results/gan_vs_vae.json`,
# beside those of the committed reference run (`book/reference/gan_vs_vae.json`), with what produced each.
# {glue:md}`reference_note` {glue:md}`budget_reading`

# %% tags=["hide-input"]
comparison = report.reference_table()
report.glue("reference_note", comparison.attrs["note"])
report.glue("budget_reading", chapter.budget_reading(report.record(), report.reference(), run.params))
comparison
