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
# # GMM-VAE: classifying digits with fifteen labels
#
# Can a model that never sees a label tell a 1 from a 4 from an 8? This chapter trains a VAE with a
# **two-dimensional** latent space on MNIST's 1s, 4s and 8s, without labels, then fits a Gaussian
# mixture to where the images land in that plane. Five labelled images per digit, fifteen labels in
# all, are used only to start one of the mixture's fits and to say which cluster is which digit. The
# result is a classifier, a reconstruction model and a picture of the latent space in one.
#
# The approach comes from a university assignment (the source project); its command-line interface is
# reproduced in this book's `vaebook-gmm` tool (end of the chapter). We repeat the study on MNIST's own
# images, score it on **all** of MNIST's test 1s, 4s and 8s rather than on the fifteen validation images,
# check that it does not depend on which fifteen images are labelled, and extend it to all ten digits.
#
# ## The model in brief
#
# **The VAE.** An encoder maps an image $x$ to a Gaussian $q_\phi(z \mid x) =
# \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma_\phi^2(x))$ over $z \in \mathbb R^2$, a decoder maps
# $z$ to pixel probabilities, and both are trained to maximise the evidence lower bound
#
# $$
# \begin{aligned}
# \mathcal L(x) = {} & \mathbb E_{q_\phi(z\mid x)}\!\left[\log p_\theta(x \mid z)\right] \\
#   & - \mathrm{KL}\!\left(q_\phi(z \mid x) \,\|\, \mathcal N(0, I)\right)
# \end{aligned}
# $$
#
# with the reparameterisation $z = \mu + \sigma \odot \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$.
# (The source drew $\varepsilon$ from a *uniform* distribution, a bug: uniform noise is not Gaussian,
# and $U(0, 1)$ noise, what `torch.rand_like` draws, is not even centred, so the KL term, computed for a
# Gaussian posterior, no longer describes the codes the decoder sees.)
#
# **The mixture.** Each training image is encoded to its posterior mean $\mu_\phi(x)$, and a mixture of
# $K = 3$ Gaussians with full covariance matrices,
#
# $$
# p(z) = \sum_{k=1}^{K} \pi_k\, \mathcal N(z;\, m_k, \Sigma_k),
# $$
#
# is fitted to these codes by expectation–maximisation {cite}`dempster1977em` (scikit-learn's
# `GaussianMixture` {cite}`pedregosa2011sklearn`). EM finds a local optimum, so its start matters. The
# source started the means at $m_k^{(0)}$ = the average code of the five labelled images of digit $k$,
# and nothing else; we show below that from some draws of those five images EM ends in a poor optimum.
# So EM runs from several starts, that one and eight k-means++ starts, and keeps the fit with the
# highest likelihood. Then **classification EM** {cite}`celeux1992cem` refits each component to the codes
# it wins (weight, mean and covariance of those codes) until no code changes component: each component is
# then the Gaussian of its own codes, whichever point of a flat likelihood ridge EM stopped at.
#
# **Naming the clusters.** Which cluster is which digit is read off the labelled images, never assumed:
# we count, for every cluster $k$ and digit $c$, the labelled images of digit $c$ that fall in cluster
# $k$, and take the one-to-one assignment with the largest total count (the Hungarian algorithm). An
# image is then classified by its **responsibilities**
#
# $$
# \begin{aligned}
# r_k(z) &= \frac{\pi_k\, \mathcal N(z; m_k, \Sigma_k)}{\sum_j \pi_j\, \mathcal N(z; m_j, \Sigma_j)},
# \\ z &= \mu_\phi(x),
# \end{aligned}
# $$
#
# and the probability of a digit is the responsibility of its cluster.

# %% tags=["parameters"]
profile = "default"        # smoke | default | full
epochs = None              # None: the profile's value
batch_size = None
lr = None
hidden_size = None         # width of the MLP encoder/decoder
labelled_per_class = None  # labelled images per digit (source: 5)
train_subset = None        # training 1/4/8 (None: all 18,435)
test_subset = None         # test 1/4/8 (None: all 3,091)
ten_latent_size = None     # ten digits: latent size
ten_epochs = None
ten_train_subset = None    # ten digits: training (None: 60,000)
ten_test_subset = None
robust_pairs = None        # robustness study: (seed, draw) pairs
seed = None
device = None              # "auto", "cpu", "cuda", ...
precision = None           # "auto", "fp32", "bf16"
threads = None             # torch threads per training job

# %%
from vaebook.config import chapter_params

run = chapter_params("gmm_vae", profile, globals())
from vaebook.report import Report

report = Report(run)
run

# %% [markdown]
# The table records the profile, every parameter, the machine and the package versions. To rerun with
# other values: `make chapter NAME=gmm_vae PARAMS="-p epochs 40 -p labelled_per_class 10"`.
#
# ## Data
#
# MNIST's own 1s, 4s and 8s. From the training images we hold out, at random (seeded), five labelled
# images per digit as the validation set; everything else is the unlabelled training set. The source
# trained on 14,748 images (5,393 ones, 4,674 fours and 4,681 eights, about 80% of MNIST's) and scored
# its classifier on its fifteen validation images; we score on every MNIST test image of these digits.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from vaebook import gmm_vae as gv, plots
from vaebook.chapters import gmm_vae as chapter
from vaebook.evaluate import decode
from vaebook.jobs import train_all

sets = chapter.chapter_data(run.params)
train, val, test = sets.train, sets.val, sets.test
chapter.data_table(sets)

# %% [markdown]
# ## Training the VAE
#
# A multilayer perceptron, 784 → 512 → 2 (twice, for $\mu$ and $\log\sigma^2$) and 2 → 512 → 784, with
# a Bernoulli likelihood, trained with Adam on the negative ELBO (per-image sums, in nats). The labels are
# not used. The trained model is cached, keyed by every setting above. The same cell trains (or loads)
# the VAE of the ten-digit extension at the end of the chapter, and the VAEs of the robustness study
# (one per seed).

# %%
result, ten_result, *pair_results = train_all(chapter.jobs(run))
vae = result.model.eval()
table = chapter.training_table(result, test.x, seed=run.seed)
table.T.rename(columns={0: "2-D VAE"}).style.format(precision=2)

# %% [markdown]
# ## The mixture in latent space
#
# The training codes (a random 6,000, coloured by their true digit), the mixture fitted to them, and
# each component's $1\sigma$ (solid) and $2\sigma$ (dashed) ellipses: the contours $(z - m_k)^\top \Sigma_k^{-1} (z - m_k) = n^2$, whose axes point
# along the eigenvectors of $\Sigma_k$ with half-lengths $n\sqrt{\lambda}$. For a 2-D Gaussian they
# hold 39% and 86% of its mass. The stars are the labelled validation images.

# %%
train_codes, val_codes, test_codes = (gv.latent_codes(vae, s.x)
                                      for s in (train, val, test))
truth = test.y.numpy()
fingerprint = gv.weights_fingerprint(vae)
gmm = gv.fit_latent_gmm(train_codes, val_codes, val.y.numpy(),
                        gv.DIGITS, seed=run.seed,
                        vae_fingerprint=fingerprint)
predicted = gmm.predict(test_codes)

# %% tags=["hide-input"]
show = np.random.default_rng(run.seed).choice(len(train_codes), size=min(6000, len(train_codes)),
                                              replace=False)
fig, ax = plots.figure(width=5.0, height=4.4, constrained_layout=True)
plots.latent_scatter(train_codes[show], train.y[show], ax=ax, s=2,
                     title="training codes (true digit) and the mixture")
gv.draw_mixture(gmm, ax, labelled=(val_codes, val.y.numpy()))
plt.show()

# %%
gv.mixture_table(gmm).style.format(precision=3)

# %% [markdown]
# ## Classification of every MNIST test 1, 4 and 8
#
# The source's own score was the mean of the macro- and micro-averaged F1 scores. With one label per
# image, micro-F1 equals accuracy; macro-F1 averages the three digits' F1 scores, so a digit the model
# handles badly weighs as much as the others.

# %%
clf = gv.classification_report(truth, predicted, gv.DIGITS)
val_scores = gv.classification_scores(val.y.numpy(),
                                      gmm.predict(val_codes))
scores = pd.DataFrame({f"test ({len(test)})": clf.scores,
                       f"validation ({len(val)})": val_scores})
scores.style.format(precision=4)

# %% tags=["hide-input"]
fig, ax = plots.figure(width=3.2, height=2.8, constrained_layout=True)
sns.heatmap(clf.confusion, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
ax.set_title("confusion matrix, MNIST test")
plt.show()

report.glue("n_test", f"{len(test):,}")
report.glue("test_accuracy", clf.scores["accuracy"], ".2%")
report.glue("n_errors", clf.errors)
report.glue("macro_f1", clf.scores["macro-F1"], ".4f")
report.glue("mean_f1", clf.scores["mean of macro- and micro-F1"], ".4f")
report.glue("target", gv.TARGET_ACCURACY, ".0%")
report.glue("target_verdict", "reaches" if clf.target_met else "does not reach")
report.glue("test_margin", gv.accuracy_margin(clf.scores["accuracy"], len(test)), ".2%")
_ = report.glue("val_accuracy", val_scores["accuracy"], ".0%")

# %% [markdown]
# On all {glue:md}`n_test` test images the mixture's accuracy is {glue:md}`test_accuracy`
# ({glue:md}`n_errors` errors, macro-F1 {glue:md}`macro_f1`, the source's mean F1 score
# {glue:md}`mean_f1`); this run {glue:md}`target_verdict` the {glue:md}`target` target. With that many
# test images the accuracy is pinned to about ±{glue:md}`test_margin` (95% normal-approximation
# interval). On its fifteen validation images the accuracy is {glue:md}`val_accuracy`.
#
# **Why fifteen images cannot show accuracy 1.0.** If a classifier gets all $n$ of $n$ independent
# images right, the exact (Clopper–Pearson) 95% lower confidence bound on its accuracy is
# $0.025^{1/n}$. For the source's $n = 15$ that is {glue:md}`cp_bound_15`: fifteen correct answers are
# consistent with any accuracy above it.

# %% tags=["hide-input"]
report.glue("cp_bound_15", gv.all_correct_lower_bound(15), ".1%")

pairs = gv.error_pairs(clf.confusion)
wrong = gv.misclassified(truth, predicted)
# the errors grouped by (true, predicted) pair, the most common pair first
rank = {pair: i for i, pair in enumerate(pairs.index)}
wrong = np.array(sorted(wrong, key=lambda i: rank[f"{truth[i]} → {predicted[i]}"]))[:50]
report.glue("n_shown", len(wrong))
_ = report.glue("error_pairs", gv.and_list([f"{n} {p.split(' → ')[0]}s read as {p.split(' → ')[1]}s"
                                           for p, n in pairs.items()]) if len(pairs) else "none")

# %% [markdown]
# ## The errors
#
# The {glue:md}`n_errors` test errors are {glue:md}`error_pairs`. The first {glue:md}`n_shown` of
# them, grouped that way, with the true digit and the mixture's prediction under each image:

# %% tags=["hide-input"]
if len(wrong):
    fig = gv.labelled_image_grid(test.x[wrong], [f"true {t}\npred. {p}" for t, p in
                                                 zip(truth[wrong], predicted[wrong])],
                                 ncols=10, width=plots.COLUMN_WIDTH, row_height=1.0)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.12, hspace=0.75, wspace=0.15)
    plt.show()

# %% tags=["hide-input"]
top_true, top_pred = (int(d) for d in pairs.index[0].split(" → ")) if len(pairs) else (1, 8)
top = (truth == top_true) & (predicted == top_pred)
right = (truth == top_true) & (predicted == top_true)
width = gv.ink_width(test.x)
ink = test.x.sum(dim=(1, 2, 3)).numpy()
report.glue("top_true", top_true)
report.glue("top_pred", top_pred)
report.glue("top_n", int(top.sum()))
report.glue("top_width", float(np.median(width[top])) if top.any() else float("nan"), ".0f")
report.glue("right_width", float(np.median(width[right])), ".0f")
report.glue("top_ink_ratio", float(np.median(ink[top]) / np.median(ink[right])) if top.any() else float("nan"),
            ".1f")
_ = report.glue("pred_width", float(np.median(width[truth == top_pred])), ".0f")

# %% [markdown]
# Most of them are not ambiguous. The largest group is {glue:md}`top_n` {glue:md}`top_true`s read as
# {glue:md}`top_pred`s. In the default run these are 1s any reader would recognise: 1s with serifs (a
# flag at the top, a bar at the foot), 1s written with a heavy, slanted stroke, and a few broken into
# pieces. What they share can be measured: their ink spans a median of {glue:md}`top_width` pixel
# columns, against {glue:md}`right_width` for the {glue:md}`top_true`s the mixture gets right (and
# {glue:md}`pred_width` for the {glue:md}`top_pred`s), and they hold {glue:md}`top_ink_ratio` times as
# much ink. Two numbers per image cannot keep every detail of a shape; they keep how wide and how heavy
# a digit is, and a wide, heavy 1 lands near the 8s. Most of the 4s read as 8s are legible 4s too.
#
# ## Does it depend on the draw? A robustness study
#
# The classifier uses fifteen labelled images, drawn at random; the VAE is trained from a random seed.
# An earlier version of this chapter started EM from the labelled means only, and its accuracy depended
# on the draw. To find out why, we repeat the whole pipeline for
# {glue:md}`n_pairs` (seed, draw) pairs: for seed $s$, the VAE trained with seed $s$ (on the training
# images minus that draw's labelled images) and the five labelled images per digit drawn with seed
# $s + 2$, as the chapter does for its own seed (the first row is this page's run). For each pair the
# table gives the test accuracy (%) of the labelled-means start alone, the source's method
# (*labelled start*), and the mean log-likelihood per training code, in nats, that EM reached from it
# (*its log p*) and from the most likely of all starts (*best log p*); then the accuracy of this
# chapter's method (*this method*), and, as a ceiling, of one Gaussian per digit fitted with *all*
# training labels (*all labels*, quadratic discriminant analysis).

# %%
models = [vae] + [r.model.eval() for r in pair_results]
study = chapter.robustness_study(models, run.params)
chapter.robustness_table(study)

# %% tags=["hide-input"]
acc148 = study["new"]
report.metric("accuracy_148", acc148.tolist())
report.metric("accuracy_148_labelled_start", study["old"].tolist())
report.glue("n_pairs", len(study))
report.glue("acc148_min", acc148.min(), ".2%")
report.glue("acc148_median", acc148.median(), ".2%")
report.glue("acc148_max", acc148.max(), ".2%")
report.glue("acc148_all_verdict", "every one of" if (acc148 >= gv.TARGET_ACCURACY).all() else
            f"{int((acc148 >= gv.TARGET_ACCURACY).sum())} of")
old_fail = study[study["old"] < gv.TARGET_ACCURACY]
report.glue("old_min", study["old"].min(), ".1%")
report.glue("old_n_fail", len(old_fail))
gap = old_fail["best_ll"] - old_fail["old_ll"]
report.glue("ll_gap_min", float(gap.min()) if len(gap) else float("nan"), ".3f")
if not len(gap):
    verdict = "none failed, so this run cannot show where EM stopped"
elif (gap > 0).all():
    verdict = (f"{'there' if len(gap) == 1 else 'in each of them'} EM from the labelled "
               f"means stopped at a likelihood {'' if len(gap) == 1 else 'at least '}"
               f"{gap.min():.3f} nats per code below the best start's")
else:
    verdict = ("EM from the labelled means did not stop below the best start's "
               "likelihood in every one of them")
report.glue("ll_gap_verdict", verdict)
maps_right = int(np.isclose(study["new"], study["new_best_map"]).sum())
report.glue("maps_right", "every pair" if maps_right == len(study) else f"{maps_right} of {len(study)} pairs")
report.glue("qda_gap_max", float((study["qda"] - study["new"]).max() * 100), ".2f")
report.glue("qda_min", study["qda"].min(), ".2%")
one_cause = (len(gap) and (gap > 0).all() and maps_right == len(study)
             and study["qda"].min() >= gv.TARGET_ACCURACY)
_ = report.glue("why_verdict", "That is a local optimum of EM, not a poor latent space, and not "
                "the naming of clusters" if one_cause else
                "In this run the measurements below do not single out one cause")

# %% [markdown]
# **Why some draws failed.** The labelled-means start alone fell below {glue:md}`target` in
# {glue:md}`old_n_fail` of the {glue:md}`n_pairs` pairs (lowest {glue:md}`old_min`), and
# {glue:md}`ll_gap_verdict`. {glue:md}`why_verdict`:
#
# * *The latent space* is good enough in every pair: one Gaussian per digit fitted with all labels
#   reaches at least {glue:md}`qda_min`, and the same mixture, started well, comes within
#   {glue:md}`qda_gap_max` points of that ceiling.
# * *The naming from fifteen labels* was right in {glue:md}`maps_right`: the accuracy with the map read
#   off the fifteen labels equals the accuracy with the best map, the one the test labels would choose.
# * *The start*: when the five labelled images of one digit happen to lie on one side of its cloud,
#   their mean does too, and EM lets the compact cloud of 8s, in the middle, grow a wide component that
#   takes in the edges of the 1s and 4s. The figure shows it for the pair where the labelled start did
#   worst: on the left, where EM went from the labelled means; on the right, this chapter's method.
#   The wide component explains the codes worse (lower likelihood), which is why keeping the most likely
#   of several starts avoids it.

# %% tags=["hide-input"]
worst_seed = int(study["old"].idxmin())
i = chapter.robust_seeds(run.params).index(worst_seed)
worst = chapter.robustness_pair(models[i], run.params, worst_seed, details=True)
codes, labels = worst["train_codes"], worst["train_labels"]
show = np.random.default_rng(run.seed).choice(len(codes), size=min(4000, len(codes)), replace=False)
fig, axes = plots.figure(1, 2, height=3.6, sharex=True, sharey=True, constrained_layout=True)
for ax, key in zip(axes, ("old", "new")):
    name = "labelled start" if key == "old" else "this method"
    plots.latent_scatter(codes[show], labels[show], ax=ax, s=1.5, legend=key == "old",
                         title=f"seed {worst_seed}, {name}: {worst[key]:.1%}")
    gv.draw_mixture(worst[key + "_gmm"], ax, labelled=(worst["val_codes"], worst["val_labels"]))
axes[1].set_ylabel("")
plt.show()

# %% [markdown]
# **After the fix.** This chapter's method reaches {glue:md}`acc148_min` / {glue:md}`acc148_median` /
# {glue:md}`acc148_max` (min / median / max) over the {glue:md}`n_pairs` pairs: at least
# {glue:md}`target` in {glue:md}`acc148_all_verdict` them. {glue:md}`draw_verdict` To see the effect of
# the draw alone, we keep this page's VAE and draw the fifteen labelled images {glue:md}`n_draws` more
# times (from the training images): the labelled-means start alone ranges from
# {glue:md}`draws_old_min` to {glue:md}`draws_old_max` and falls below {glue:md}`target` in
# {glue:md}`draws_old_fail` of them; this chapter's method gives {glue:md}`draws_new_range` over the
# draws. What still varies is the VAE: each seed's latent space has its
# own ceiling, and these {glue:md}`n_pairs` seeds are a small sample of the seeds one might use.

# %%
draws = gv.draw_study(train_codes, train.y.numpy(), test_codes,
                      truth, gv.DIGITS, n_draws=20, seed=run.seed)

# %% tags=["hide-input"]
report.glue("n_draws", len(draws))
report.glue("draws_old_min", draws["labelled start"].min(), ".1%")
report.glue("draws_old_max", draws["labelled start"].max(), ".1%")
report.glue("draws_old_fail", int((draws["labelled start"] < gv.TARGET_ACCURACY).sum()))
lo, hi = draws["this method"].min(), draws["this method"].max()
report.glue("draws_new_range", f"{lo:.2%}" if np.isclose(lo, hi) else f"{lo:.2%} to {hi:.2%}")
_ = report.glue("draw_verdict", "Its result no longer depends on the draw: the draw only names "
                "the clusters." if np.isclose(lo, hi) else "In this run its result still varies with the draw.")

# %% [markdown]
# ## Reconstructions
#
# The assignment scored reconstructions by $1 - \text{MSE}$ and by SSIM {cite}`wang2004ssim` (computed as
# scikit-image does: $11\times11$ Gaussian window, $\sigma = 1.5$, averaged over the window positions
# inside the image). A reconstruction is the decoded posterior mean, $\hat x = \text{decoder}(\mu_\phi(x))$.
# The assignment did not say how it called scikit-image; called without options,
# `structural_similarity(a, b, data_range=1)` uses a $7\times7$ uniform window instead, and gives
# different numbers on these blurry digits, so we show both (the last column).
# Two numbers cannot hold much detail: expect the digit's identity, slant and thickness, but not its
# quirks.

# %%
recon = vae.reconstruct(test.x.to(run.torch_device)).cpu()
recon_table = gv.reconstruction_table(test.x, recon, test.y)
short = {"SSIM, scikit-image defaults": "SSIM (7×7)"}
(recon_table.rename(columns=short).style.format(precision=4)
 .set_properties(**{"padding": "2px 8px"}))

# %% tags=["hide-input"]
by_digit = recon_table.drop(index="all")["SSIM"]
report.glue("best_recon_digit", by_digit.idxmax())
report.glue("best_recon_ssim", by_digit.max(), ".3f")
report.glue("worst_recon_digit", by_digit.idxmin())
report.glue("worst_recon_ssim", by_digit.min(), ".3f")
report.glue("ssim_all", recon_table.loc["all", "SSIM"], ".3f")

show_idx = torch.cat([torch.nonzero(test.y == d)[:8, 0] for d in gv.DIGITS])
fig, axes = plots.figure(1, 2, height=1.5, constrained_layout=True)
plots.image_grid(test.x[show_idx], nrow=8, ax=axes[0], title="test images")
plots.image_grid(recon[show_idx], nrow=8, ax=axes[1], title="reconstructions")
plt.show()

# %% [markdown]
# SSIM over all test images is {glue:md}`ssim_all`; the {glue:md}`best_recon_digit`s reconstruct best
# (SSIM {glue:md}`best_recon_ssim`), the {glue:md}`worst_recon_digit`s worst
# ({glue:md}`worst_recon_ssim`).
#
# ## The latent manifold
#
# Decoding a $20 \times 20$ grid of latent points $z = (\Phi^{-1}(u_i), \Phi^{-1}(u_j))$ with
# $u = 0.05, \dots, 0.95$ ($\Phi^{-1}$ the standard normal quantile function) shows what each region of
# the plane means to the decoder: the grid covers the central 90% of the prior in each coordinate, so
# it is spaced evenly in probability, not in distance. $z_2$ increases upwards, as in the scatter plots.

# %% tags=["hide-input"]
fig, ax = plots.figure(width=5.0, height=5.0, constrained_layout=True)
plots.image_grid(gv.latent_manifold(vae, n=20), nrow=20, ax=ax, title="decoder(z) on a 20 × 20 grid")
plt.show()

# %% [markdown]
# ## The source's figures beside ours
#
# The source reported accuracy 1.0. The table gives what each number was measured on.

# %%
chapter.source_comparison(clf.scores, recon_table, train,
                          len(test))

# %% [markdown]
# ## Extension: all ten digits, no labels at all
#
# The source stopped at three well-separated digits. With all ten, two latent dimensions are too few to
# keep the digits apart, so we give the VAE a larger latent space, fit a ten-component full-covariance
# mixture to the training codes **without any labels** (k-means start, best of three; EM on a random
# 20,000 of the training codes when there are more), and score it
# as unsupervised clustering is scored in the literature: the **clustering accuracy**
#
# $$
# \mathrm{ACC} = \max_{m} \frac1N \sum_{i=1}^N \mathbb 1\left[y_i = m(c_i)\right],
# $$
#
# the accuracy under the best one-to-one map $m$ from clusters to labels, found by the Hungarian
# algorithm (`scipy.optimize.linear_sum_assignment`) on the test set. VaDE {cite}`jiang2017vade`, which
# trains the VAE and the mixture prior *jointly*, reports {glue:md}`vade_acc` on MNIST; DEC
# {cite}`xie2016dec` {glue:md}`dec_acc`. For comparison we also fit the mixture the way the source's
# 1/4/8 classifier did, with means started from five labelled images per digit (that start alone) and
# the map read off those labels (then no test labels are used for the map).

# %%
ten_vae = ten_result.model.eval()
ten, _ = chapter.ten_digit_comparison(
    ten_vae, sets, run.params)
table = chapter.ten_digit_table(ten, run.params)
table.style.format({"test accuracy": "{:.2%}"})

# %% tags=["hide-input"]
report.glue("vade_acc", chapter.VADE_ACCURACY, ".2%")
report.glue("dec_acc", chapter.DEC_ACCURACY, ".1%")
report.metric("ten_acc_unsupervised", ten.unsupervised, ".2%")
report.metric("ten_acc_label_started", ten.seeded, ".2%")
report.glue("ten_gap_vade", (chapter.VADE_ACCURACY - ten.unsupervised) * 100, ".1f")
report.glue("ten_seeded_gain", (ten.seeded - ten.unsupervised) * 100, "+.1f")
report.glue("ten_seeded_verdict", "better" if ten.seeded > ten.unsupervised else "no better")
report.glue("ten_split", gv.and_list(ten.split_digits) if ten.split_digits else "none")
report.glue("ten_unclaimed", gv.and_list(ten.unclaimed_digits) if ten.unclaimed_digits else "none")
mixed = gv.mixed_clusters(ten.contingency)
report.glue("ten_mixed", "; ".join(f"{a:.0%} {d}s with {b:.0%} {e}s" for _, d, a, e, b in mixed)
            if mixed else "none")
report.glue("ten_n_mixed", len(mixed))
_ = report.glue("ten_n_test", f"{len(sets.ten_test):,}")

# %% [markdown]
# On {glue:md}`ten_n_test` test images the label-free mixture's clustering accuracy is
# {glue:md}`ten_acc_unsupervised`, {glue:md}`ten_gap_vade` percentage points below VaDE. Started from
# the labelled images' means it reaches {glue:md}`ten_acc_label_started`
# ({glue:md}`ten_seeded_gain` points). The table counts the label-free clusters' test images by true
# digit (rows: clusters; columns: digits). Digits that are the majority of two or more clusters:
# {glue:md}`ten_split`; digits that are the majority of none, merged into others:
# {glue:md}`ten_unclaimed`. Clusters whose most common digit is less than 70% of their test images:
# {glue:md}`ten_n_mixed` ({glue:md}`ten_mixed`).

# %% tags=["hide-input"]
(ten.contingency.style.background_gradient(cmap="Blues", axis=None)
 .set_properties(**{"text-align": "right", "padding": "2px 5px"}))

# %% [markdown]
# What each cluster stands for is easiest to see in its mean: decoding each component's mean code gives
# one prototype image per cluster. Top: the label-free mixture's ten components, ordered by the most
# common true digit among their test images, with that digit and its share under each. Bottom: the
# label-started mixture's components, with the digit the labelled images named them.

# %% tags=["hide-input"]
order, captions = chapter.cluster_majority_captions(ten)
rows = [(ten.unsupervised_means[order], captions,
         "label-free mixture: most common digit, its share"),
        (ten.seeded_means, [str(d) for d in ten.seeded_digits],
         "label-started mixture: the digit its labels named")]
for means, caps, title in rows:
    images = decode(ten_vae, torch.from_numpy(means).float())
    fig = gv.labelled_image_grid(images, caps, ncols=10, width=plots.COLUMN_WIDTH,
                                 row_height=1.35)
    fig.suptitle(title)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.8, bottom=0.25, wspace=0.15)
    plt.show()

# %% [markdown]
# ## Reading the results
#
# * **Three digits, fifteen labels.** On 1, 4 and 8 the VAE's two-dimensional codes fall into three
#   clouds that overlap only at their edges, and a full-covariance Gaussian per cloud describes them well:
#   {glue:md}`test_accuracy` of all test images in this run, pinned to ±{glue:md}`test_margin` by
#   their number. The errors are not mostly ambiguous digits: the largest group is
#   {glue:md}`top_true`s read as {glue:md}`top_pred`s, wide or heavy ones, which a two-number code puts
#   near the other digit.
# * **The result does not depend on the draw.** Over {glue:md}`n_pairs` (seed, draw) pairs this
#   chapter's method reaches {glue:md}`acc148_min` to {glue:md}`acc148_max` (median
#   {glue:md}`acc148_median`); the source's start from the labelled means alone fell to
#   {glue:md}`old_min`, because EM stopped in a less likely optimum. Each pair has its own VAE, so this is
#   also a first look at the spread over seeds; {glue:md}`n_pairs` seeds cannot bound how bad an unlucky
#   seed could be.
# * **The source's 1.0 is not evidence.** It was measured on the fifteen validation images, the very
#   images used to start the mixture's means and to name its clusters; and even fifteen fresh images
#   that were all right would only show an accuracy above {glue:md}`cp_bound_15` with 95% confidence.
# * **Reconstructions are blurry but faithful to the digit.** Two numbers per image keep the class, the
#   slant and the stroke weight; SSIM ({glue:md}`ssim_all`), which rewards local structure, is well
#   below 1 because the decoder draws a smoothed prototype rather than the writer's strokes.
# * **The manifold** shows the three digits as regions of the plane and smooth morphs between them;
#   regions between the clouds decode to hybrids, which is where the misclassified images live.
# * **Ten digits are another matter.** A mixture fitted after the fact to a VAE's latent means, with no
#   labels, lands {glue:md}`ten_gap_vade` points below VaDE's {glue:md}`vade_acc`: the VAE was trained to
#   reconstruct, and nothing in its objective asks the codes of one digit to form one Gaussian cloud.
#   The table and the prototypes show where it goes wrong: clusters that mix look-alike digits
#   ({glue:md}`ten_mixed`) have blended prototypes. VaDE closes the gap by making
#   the mixture the VAE's *prior* and training both together.
# * **Where EM starts matters here too.** Started from the mean codes of a few labelled images per
#   digit, the same mixture on the same codes does {glue:md}`ten_seeded_verdict` in this run
#   ({glue:md}`ten_seeded_gain` points, one seed and one draw; how much depends on which few images are
#   labelled), but it uses labels and VaDE uses none.
#
# The numbers come from the profile at the top of the page; with `smoke` (one epoch on a few thousand
# images) the models have barely started and this reading does not apply.
#
# ## The command-line tool
#
# The same pipeline is installed as `vaebook-gmm` (also `python -m vaebook.gmm_vae`), with the
# assignment's interface: `TRAIN.npz VAL.npz train vae.pth gmm_params.pkl`, then
# `TEST.npz test_reconstruction vae.pth` (writes `vae_reconstructed.npz`) and
# `TEST.npz test_classifier vae.pth gmm_params.pkl` (writes `vae.csv`, column `Predicted_Label`).
# `gmm_params.pkl` keeps its name but holds plain arrays (NumPy `.npz`), never a pickle, and bad input
# stops with one line saying what is wrong. It fits the mixture as this chapter does (several EM starts,
# classification EM, clusters named by the labelled images). `vaebook-gmm --help` explains the rest and
# states the accuracy it reached with its defaults on the five (seed, draw) pairs above, each run from
# the tool's own input files.

# %%
_ = report.write()  # book/generated/results/gmm_vae.json

# %% [markdown]
# ## This build and the reference run
#
# The chapter's headline numbers, as written to its results file `book/generated/results/gmm_vae.json`,
# beside those of the committed reference run (`book/reference/gmm_vae.json`), with what produced each.
# {glue:md}`reference_note`

# %% tags=["hide-input"]
comparison = report.reference_table()
report.glue("reference_note", comparison.attrs["note"])
comparison
