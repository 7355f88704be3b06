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
# # The g-and-k distribution and Levenberg–Marquardt fitting
#
# A VAE's prior, or the base distribution of a normalizing flow, is almost always a standard normal. Is
# that a good description of where the encoder actually puts its codes? Codes are often skewed and
# heavier-tailed than a Gaussian. The **g-and-k distribution** {cite}`haynes1997gk,rayner2002gk`, a
# relative of Tukey's g-and-h family {cite}`tukey1977gh`, is a
# four-parameter family that bends a normal into a skewed and heavy- or light-tailed shape. It has no
# closed-form density, but its *quantile function* is explicit. That makes sampling trivial and fitting by
# least squares on quantiles natural. Its multivariate version {cite}`drovandi2011gk` puts a
# g-and-k on every margin and ties the margins together with a Gaussian copula.
#
# This chapter defines the distribution, shows what its parameters do, fits it by Levenberg–Marquardt
# (LM), measures how well the fit recovers known parameters, and fits a bivariate example with
# correlation. The chapter on flows, {doc}`flow_vae`, uses the same code (`vaebook.gk`) as a learnable
# base and as a prior fitted to trained latent codes after training.

# %% tags=["parameters"]
profile = "default"  # smoke | default | full
n_seeds = None       # None: the profile's value; simulated samples per sample size
sample_sizes = None  # sample sizes of the recovery study, e.g. [1000, 10000]
n_bivariate = None   # size of the bivariate example
seed = None
device = None        # unused: this chapter trains nothing

# %%
from vaebook.config import chapter_params

run = chapter_params("gk_distribution", profile, globals())
run

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats

from vaebook import gk
from vaebook.chapters.gk_distribution import THETA, log_density_grid, one_residual_lm_error  # THETA = (3, 1, 2, 0.5)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## The quantile function
#
# Let $z = \Phi^{-1}(p)$ be the standard-normal score of a probability $p$. The g-and-k quantile function is
#
# $$
# Q(z; A, B, g, k) = A + B\,\Bigl[1 + c \tanh\!\Bigl(\frac{g z}{2}\Bigr)\Bigr]\,(1 + z^2)^k\, z ,
# \qquad c = 0.8 .
# $$
#
# - $A$ is the **location**: $Q(0) = A$, so $A$ is the median.
# - $B > 0$ is the **scale**.
# - $g$ controls **skewness**. The factor $1 + c\tanh(gz/2)$ stretches one side of the median and
#   compresses the other. With $g > 0$ the upper side is stretched, giving a long right tail.
# - $k \ge -\tfrac12$ controls **tail weight**. The factor $(1+z^2)^k$ grows like $|z|^{2k}$: for $k > 0$
#   the tails are heavier than normal, and for $k < 0$ they are lighter. At $k = -\tfrac12$ the support
#   becomes bounded, $(A - B(1-c\,\mathrm{sign}\,g),\ A + B(1 + c\,\mathrm{sign}\,g))$.
#
# With $g = k = 0$ it is the normal distribution $N(A, B^2)$.
#
# A draw is just $x = Q(z)$ with $z \sim N(0, 1)$. There is no closed-form density. Since $F(x) = \Phi(z)$
# where $Q(z) = x$, the density follows by the change of variables:
#
# $$
# f(x) = \frac{\varphi(z)}{Q'(z)}, \qquad
# Q'(z) = B (1+z^2)^k \left[\Bigl(1 + c \tanh\frac{gz}{2}\Bigr)\frac{1 + (2k+1) z^2}{1 + z^2}
#        + \frac{c\, g\, z}{2 \cosh^2(gz/2)}\right].
# $$
#
# `vaebook.gk.inverse` solves $Q(z) = x$. A table of $Q$ on a grid gives a bracket and a cubic-Hermite
# starting point, and a bracketed Newton iteration finishes in about two steps. It is vectorised, and
# `log_prob` of a million points takes under a second on this machine's CPU. Gradients with respect
# to $x$ and the parameters come from implicit differentiation: one final Newton step
# $z = z^* - (Q(z^*) - x)/Q'(z^*)$ is taken with autograd on, from the detached root $z^*$. So a flow or a
# prior can train these parameters.
#
# The distribution is only **valid** if $Q$ is increasing, i.e. $Q'(z) > 0$ for every $z$. The R package
# `gk` {cite}`prangle2020gk` checks this numerically, and so does `vaebook.gk.validate_params`, which every
# function of `vaebook.gk` calls before it returns a number (the flow layers, whose parameters are valid by
# construction, skip it). With $c = 0.8$,
# every $k \ge 0$ is valid. For $k < 0$ a small nonzero $|g|$ is *not* valid: the
# $c\,g\,z/(2\cosh^2)$ term dips below zero around $z \approx -2/g$, where $(1+(2k+1)z^2)/(1+z^2)$ has
# already fallen towards $2k+1$. The next figure maps the invalid region.

# %%
gs, ks = np.linspace(-8, 8, 161), np.linspace(-0.5, 0.2, 71)
valid = gk.is_valid(0.0, 1.0, gs[None, :], ks[:, None])
fig, ax = plt.subplots(figsize=(6.5, 3.2), constrained_layout=True)
ax.pcolormesh(gs, ks, valid, cmap="RdYlGn", vmin=-0.3, vmax=1.3, shading="nearest")
ax.set(xlabel="g", ylabel="k", title="Valid (green) and invalid (red) g-and-k parameters, c = 0.8")
plt.show()

# %% [markdown]
# ## Shapes
#
# The densities below are computed with `vaebook.gk.log_prob`, which runs the numerical inverse. Two
# features are worth a look. With $k = 0$ and $|g| = 2$ the short side is squeezed into a sharp peak: there
# $Q'$ nearly vanishes at $z \approx \mp 1.2$, because $c = 0.8$ sits just below the value 0.83 at which
# $k = 0$ stops being valid. And as $k$ approaches $-\tfrac12$ the density becomes bimodal, with its mass
# piling up towards the edges of a support that becomes bounded at $k = -\tfrac12$.

# %%
x = torch.linspace(-5, 8, 1301, dtype=torch.float64)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
for g_ in (-2.0, -1.0, 0.0, 1.0, 2.0):
    axes[0].plot(x, gk.log_prob(x, 0.0, 1.0, g_, 0.0).exp(), label=f"g = {g_:g}")
axes[0].set(title="skewness: A=0, B=1, k=0", xlabel="x", ylabel="density", xlim=(-5, 6))
for k_ in (-0.4, -0.2, 0.0, 0.3, 0.6, 1.0):
    axes[1].plot(x, gk.log_prob(x, 0.0, 1.0, 0.0, k_).exp(), label=f"k = {k_:g}")
axes[1].set(title="tail weight: A=0, B=1, g=0", xlabel="x", xlim=(-5, 5))
for k_ in (-0.4, 0.0, 0.3, 1.0):
    axes[2].plot(x, gk.log_prob(x, 0.0, 1.0, 0.0, k_), label=f"k = {k_:g}")
axes[2].plot(x, stats.norm.logpdf(x.numpy()), "k:", label="N(0, 1)")
axes[2].set(title="log density: the tails", xlabel="x", ylabel="log density", ylim=(-20, 0), xlim=(-5, 8))
for ax in axes:
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### Why it is so flexible: the octile view
#
# Moments are a poor handle on the g-and-k distribution. They all exist (with Gaussian $z$, $|Q(z)|$ grows
# only like $|z|^{2k+1}$, so every moment is finite for $k > -1/2$; the conditions $k < 1$ and $k < 1/2$
# sometimes quoted belong to the g-and-h family's $h$), but they have no closed form and heavy tails make
# their sample estimates converge slowly. Its octiles $E_i = Q(\Phi^{-1}(i/8))$ are exact, and with $z_i =
# \Phi^{-1}(i/8)$ they separate the parameters exactly:
#
# $$
# E_4 = A, \qquad E_6 - E_2 = 2 B z_6 (1 + z_6^2)^k, \qquad
# \frac{E_6 + E_2 - 2E_4}{E_6 - E_2} = c \tanh\frac{g z_6}{2}, \qquad
# \frac{E_7 - E_5 + E_3 - E_1}{E_6 - E_2} = \frac{(1+z_7^2)^k z_7 - (1+z_5^2)^k z_5}{(1+z_6^2)^k z_6}.
# $$
#
# The robust skewness depends on $g$ alone and the robust kurtosis on $k$ alone. So $g$ moves skewness and
# $k$ moves tail weight independently, and the four equations can be inverted in closed form. That
# inversion is the **octile estimator** (`vaebook.gk.octile_estimate`), the starting point of every fit
# below. The octile skewness is bounded by $\pm c = \pm 0.8$: $c$ caps how skewed the family can be.
# (`vaebook.gk.octile_summaries` computes the two summaries from $Q$. The right panel evaluates them also
# at the $(g, k)$ pairs left of the validity boundary, `validate=False`: they are formulas in $Q$, defined
# whether or not $Q$ is increasing.)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3), constrained_layout=True)
g_grid, k_grid = np.linspace(-6, 6, 121), np.linspace(-0.5, 2, 101)
for k_ in (0.0, 0.5, 1.0):
    axes[0].plot(g_grid, gk.octile_summaries(g_grid, k_)[0], label=f"k = {k_:g}")
axes[0].set(xlabel="g", ylabel="octile skewness", title="skewness depends on g only (curves coincide)")
for g_ in (0.0, 2.0, 5.0):
    axes[1].plot(k_grid, gk.octile_summaries(g_, k_grid, validate=False)[1], label=f"g = {g_:g}")
axes[1].axhline(gk.octile_summaries(0.0, 0.0)[1], color="k", ls=":", lw=1, label="normal")
axes[1].set(xlabel="k", ylabel="octile kurtosis", title="tail weight depends on k only (curves coincide)")
for ax in axes:
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Fitting by Levenberg–Marquardt on quantiles
#
# Given a sample $x_1, \dots, x_n$, sort it and compare the order statistics with the model's quantiles
# at the same probabilities $p_i = (i - \tfrac12)/n$:
#
# $$
# r_i(\theta) = w_i \bigl[x_{(i)} - Q(\Phi^{-1}(p_i); \theta)\bigr], \qquad
# \hat\theta = \arg\min_\theta \tfrac12 \sum_i r_i(\theta)^2 .
# $$
#
# For $n > 2000$ the library uses the 1000 empirical quantiles at $p_j = (j - \tfrac12)/1000$ instead,
# which keeps the cost of an iteration independent of $n$. The weights
# $w_i \propto \varphi(z_i)/(\sqrt{p_i(1-p_i)}\,Q'(z_i;\theta_0))$ are the reciprocal of the asymptotic
# standard deviation of an empirical quantile, evaluated at the octile start $\theta_0$. Without them,
# the few, very noisy extreme order statistics of a heavy-tailed sample dominate the sum, and the table
# below shows what that costs. This is a nonlinear least-squares problem with four parameters and a
# Jacobian in closed form. **Levenberg–Marquardt** {cite}`levenberg1944leastsquares,marquardt1963leastsquares`
# interpolates between Gauss–Newton steps
# $(J^\top J)^{-1} J^\top r$ and gradient-descent steps by solving
# $(J^\top J + \lambda D)\,\delta = -J^\top r$, and adapts $\lambda$ to how well the local linear model
# predicted the last step. We use MINPACK's implementation {cite}`more1978lm,more1980minpack`
# (`scipy.optimize.least_squares(method="lm")`).
# It has no bounds, so the fit runs in unconstrained coordinates $B = e^{b}$ and
# $k = -\tfrac12 + \operatorname{softplus}(\kappa)$.
#
# The fit below uses one sample of $n = 10{,}000$ from the classic $(A, B, g, k) = (3, 1, 2, 0.5)$. The cost
# is recorded at every residual evaluation, rejected trial steps included.

# %%
x_demo = gk.sample(10_000, *THETA, generator=torch.Generator().manual_seed(run.seed)).numpy()
fit = gk.fit_lm(x_demo, trace=True)
fit.summary(truth=THETA)

# %%
print(f"{fit.message}\nresidual evaluations: {fit.nfev}, Jacobians: {fit.njev}, converged: {fit.converged}, "
      f"{1e3 * fit.seconds:.1f} ms")
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
hist = np.array(fit.history)
axes[0].semilogy(np.arange(1, len(hist) + 1), hist - fit.cost + 1e-12 * fit.cost, "o-")
axes[0].set(xlabel="residual evaluation", ylabel="cost − final cost",
            title="LM convergence from the octile start")
fitted_q, emp = gk.qq_points(x_demo, fit.params)  # 1000 quantiles, p = (j - 1/2)/1000
axes[1].plot(fitted_q, emp, ".", ms=3)
axes[1].plot([emp.min(), emp.max()], [emp.min(), emp.max()], "k:", lw=1)
axes[1].set(xlabel="fitted quantile", ylabel="empirical quantile", title="QQ plot of the fit")
xs = torch.linspace(-2, 25, 800, dtype=torch.float64)
axes[2].hist(x_demo, bins=np.linspace(-2, 25, 120), density=True, alpha=0.4, label="sample")
axes[2].plot(xs, gk.log_prob(xs, *fit.params).exp(), label="LM fit")
axes[2].plot(xs, gk.log_prob(xs, *THETA).exp(), "k:", label="truth")
axes[2].set(xlabel="x", ylabel="density", title="density", xlim=(-2, 25))
axes[2].legend()
plt.show()

# %% [markdown]
# ## How well are known parameters recovered?
#
# For each sample size, `n_seeds` samples are drawn from $(3, 1, 2, 0.5)$ and fitted five ways. The five
# are LM on the weighted residuals (the library default), LM on the plain unweighted residuals, scipy's
# trust-region reflective method on the same weighted residuals, Nelder–Mead on their sum of squares, and
# the octile estimator on its own. The table gives the median absolute error of each parameter over the
# seeds and the median time per fit. This is a smaller run of `bench/bench_gk.py`.

# %%
table = gk.recovery_study(THETA, run.sample_sizes, n_seeds=run.n_seeds, seed=run.seed)
table.style.format({c: "{:.4f}" for c in ["|A err|", "|B err|", "|g err|", "|k err|"]}
                   | {"ms/fit": "{:.1f}", "cpu ms/fit": "{:.1f}"})

# %% [markdown]
# What the table shows:
#
# - **The optimiser does not matter much; the objective does.** LM, TRF and Nelder–Mead minimise the same
#   sum of squares and reach the same minimum, so their errors agree to the digits shown. LM and TRF get
#   there in a handful of Jacobian evaluations and take milliseconds. Nelder–Mead uses no Jacobian, needs
#   hundreds of function evaluations and is several times slower. (The times are wall-clock times on a
#   shared machine; the CPU column is less sensitive to other load.)
# - **The octile estimator is a good start but a poor final answer**, especially for $g$, because it uses
#   only seven numbers of the sample.
# - **Weighting matters once the sample is large.** Unweighted residuals are dominated by the extreme order
#   statistics, which for a heavy-tailed sample are very noisy. In the 20-seed benchmark
#   (`bench/bench_gk.py`) the unweighted errors of $B$, $g$ and $k$ at $n = 10{,}000$ are about twice the
#   weighted ones. At $n = 1000$ the two are about the same.
# - Errors fall roughly like $1/\sqrt n$. At $n = 10{,}000$ every parameter is within 0.05 of the truth
#   (median over seeds).
#
# ## The multivariate g-and-k
#
# {cite:t}`drovandi2011gk` draw $z \sim N(0, R)$ with a correlation matrix $R$ and apply a g-and-k
# quantile to each coordinate, $x_i = Q(z_i; A_i, B_i, g_i, k_i)$. This is a Gaussian copula with g-and-k
# margins. Its density is
#
# $$
# \log p(x) = \log N\bigl(z;\, 0, R\bigr) - \sum_{i=1}^{d} \log Q_i'(z_i), \qquad z_i = Q_i^{-1}(x_i).
# $$
#
# `vaebook.gk.MultivariateGK` implements it as a `torch.distributions.Distribution`, so a VAE can use it
# as a prior or a flow as a base. The fit (`vaebook.gk.fit_multivariate_lm`) runs LM on each margin, maps
# the data to normal scores $z_{ij} = \hat Q_j^{-1}(x_{ij})$ under the fitted margins, and takes their
# Pearson correlation. It then projects that onto valid correlation matrices by clipping eigenvalues and
# rescaling to a unit diagonal. The example below is the bivariate case with $A = (3, 4)$,
# $B = (1, 0.5)$, $g = (1, 2)$, $k = (0.5, 0.4)$ and $\rho = 0.6$.

# %%
truth = gk.MultivariateGK([3.0, 4.0], [1.0, 0.5], [1.0, 2.0], [0.5, 0.4], [[1.0, 0.6], [0.6, 1.0]])
X = truth.sample((run.n_bivariate,), generator=torch.Generator().manual_seed(run.seed + 1))
mfit = gk.fit_multivariate_lm(X)
print(mfit.message)
mfit.summary(truth).style.format("{:.3f}")

# %%
fitted = mfit.distribution()
X_test = truth.sample((5000,), generator=torch.Generator().manual_seed(run.seed + 2))
print(f"mean held-out log-likelihood: truth {truth.log_prob(X_test).mean():.4f}, "
      f"fitted {fitted.log_prob(X_test).mean():.4f} nats per point")
U, V, logd = log_density_grid(fitted, (0.0, 12.0), (2.5, 9.0))
fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
axes[0].plot(X[:3000, 0], X[:3000, 1], ".", ms=2, alpha=0.4, label="sample")
axes[0].contour(U, V, logd, levels=[logd.max().item() - d for d in (10, 8, 6, 4, 2, 1)],  # nats below the peak
                colors="C3", linewidths=1, linestyles="solid")
axes[0].set(xlabel="x₁", ylabel="x₂", title="sample and fitted log-density contours", xlim=(0, 12), ylim=(2.5, 9))
Z = fitted.scores(X).numpy()
axes[1].plot(Z[:3000, 0], Z[:3000, 1], ".", ms=2, alpha=0.4)
axes[1].set(xlabel="z₁", ylabel="z₂", title=f"normal scores under the fitted margins: ρ̂ = {mfit.R[0, 1]:.3f}",
            aspect="equal")
plt.show()

# %% [markdown]
# ## A note on the source project's "LM fit"
#
# The project this book revisits also "fitted a g-and-k by Levenberg–Marquardt". Its residual was a
# *single scalar*: a distance between fresh random draws from the g-and-k and the VAE's latent codes,
# with no pairing between them. That cannot work. MINPACK's LM needs at least as many residuals as
# parameters, and `scipy.optimize.least_squares(method="lm")` refuses a problem with one residual and four
# parameters. A distance between unpaired random draws is also a noisy objective, not a smooth function of
# the parameters. The fitted distribution was never used for any figure either.

# %%
print(f"scipy refuses it: {one_residual_lm_error()}")

# %% [markdown]
# Here the residuals are *quantile residuals*, one per order statistic or empirical quantile. They are a
# deterministic, smooth function of the parameters with an analytic Jacobian, which is the problem LM was
# designed for. The flow chapter ({doc}`flow_vae`) uses the fitted multivariate g-and-k after training, as
# a prior on trained latent codes.
