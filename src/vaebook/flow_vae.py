r"""Flow-VAE: a VAE whose posterior is a diagonal Gaussian pushed through normalizing flows; its evaluation
(importance-sampled NLL), ex-post priors for generation, a VAE-GAN, and the flow chapter's analysis.

**Model** (Rezende & Mohamed 2015). The encoder gives :math:`q_0(z_0 \mid x) = N(\mu(x), \mathrm{diag}\,
\sigma^2(x))` and, when amortised, the raw parameters of K flow layers (:mod:`vaebook.flows`);
:math:`z_K = f_K \circ \dots \circ f_1(z_0)`. The negative ELBO per image is

.. math::

    -\mathcal L(x) = \mathbb E_{q_0}\Bigl[-\log p(x \mid z_K)
    + \underbrace{\log q_0(z_0) - \textstyle\sum_k \log|\det J_k| - \log p(z_K)}_{\text{Monte-Carlo KL}}\Bigr],

estimated with one reparameterised sample per image in training. The prior :math:`p(z)` is
:math:`N(0, I)` or a learnt multivariate g-and-k (Drovandi & Pettitt 2011; :class:`GKPrior`, its log-density
through :class:`vaebook.gk.MultivariateGK`, exact gradients by implicit differentiation of the root).

**Evaluation.** :func:`iwae_bound` (Burda et al. 2016): with :math:`w_i = p(x, z_K^{(i)})/q_K(z_K^{(i)}\mid x)`,
:math:`\log p(x) \ge \mathcal L_k = \mathbb E[\log \tfrac1k \sum_{i=1}^k w_i]`, non-decreasing in k and
tending to :math:`\log p(x)`; the same weights give the ELBO :math:`\tfrac1k\sum_i \log w_i`.

**Ex-post priors** (Ghosh et al. 2020, "From variational to deterministic autoencoders"; pythae's
``GaussianMixtureSampler``): fit a density to the aggregate posterior (codes of the training images) and
sample it for generation: N(0, I) as is, a Gaussian mixture, or a multivariate g-and-k fitted by
Levenberg–Marquardt on quantiles (:func:`vaebook.gk.fit_multivariate_lm`).

**VAE-GAN** (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric", ICML):
:class:`VAEGAN` with its MLP :class:`FeatureDiscriminator`.

**Analysis** (the flow chapter's tables): :func:`evaluate_model` (NLL, ELBO, sample quality and latent
separation of one model), :func:`ex_post_fit` and :func:`ex_post_comparison` (generation with each
ex-post prior), :func:`least_normal_dims` (which code margins to plot), :func:`flow_verdict` (best flow
model against the plain VAE, with the thresholds :data:`MIN_NLL_GAIN` and :data:`TARGET_NLL`),
:func:`gains_over_baseline`, :func:`paired_gain` (an NLL gain with its standard error over test images),
:func:`fid_draws` and :func:`difference_and_spread` (how much FID moves between sample draws), and
:func:`nll_beside_published` (:data:`PUBLISHED_NLL`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import gk
from .config import ParameterError
from .evaluate import batched, decode, latent_separation
from .flows import FLOW_KINDS, make_flow
from .models import IMAGE_PIXELS, VAE, ELBOTerms, MLPDecoder, VAEConfig, reconstruction_nll

__all__ = ["FlowVAEConfig", "FlowEncoder", "NormalPrior", "GKPrior", "FlowVAE", "FeatureDiscriminator",
           "VAEGAN", "VAEGAN_TERMS", "IWAEResult", "iwae_bound", "fixed_binarization", "aggregate_codes",
           "ExPostPrior", "fit_ex_post_priors",
           "ModelEvaluation", "evaluate_model", "ExPostFit", "ex_post_fit", "ex_post_comparison",
           "least_normal_dims", "paired_gain", "fid_draws", "difference_and_spread", "FlowVerdict", "flow_verdict",
           "gains_over_baseline", "MIN_NLL_GAIN", "TARGET_NLL", "PUBLISHED_NLL", "nll_beside_published"]

LOG_2PI = math.log(2 * math.pi)


def _log_std_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * LOG_2PI


# --- priors -----------------------------------------------------------------------------------------

class NormalPrior(nn.Module):
    """p(z) = N(0, I)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return _log_std_normal(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.dim, generator=generator)


class GKPrior(nn.Module):
    r"""A learnt multivariate g-and-k prior: :math:`u \sim N(0, R)`, :math:`z_i = Q(u_i; A_i, B_i, g_i, k_i)`
    (Drovandi & Pettitt 2011's Gaussian copula), with

    .. math:: \log p(z) = \log N(u; 0, R) - \sum_i \log Q_i'(u_i), \qquad u_i = Q_i^{-1}(z_i).

    Parameters are unconstrained: :math:`B = e^{b}`, :math:`k = \mathrm{softplus}(\kappa - 4) \ge 0` (every g
    then gives Q' > 0 for c = 0.8), and :math:`R = LL^\top` with :math:`L` lower-triangular, rows scaled to
    unit norm (a valid correlation matrix for any raw values). Raw zeros give (nearly) N(0, I). Gradients of
    ``log_prob`` reach every parameter and ``z`` (implicit differentiation in :func:`vaebook.gk.inverse`).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.A = nn.Parameter(torch.zeros(dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.g = nn.Parameter(torch.zeros(dim))
        self.kappa = nn.Parameter(torch.zeros(dim))
        self.L_raw = nn.Parameter(torch.zeros(dim, dim))

    def correlation(self) -> torch.Tensor:
        L = torch.tril(self.L_raw, diagonal=-1) + torch.eye(self.dim, device=self.L_raw.device,
                                                            dtype=self.L_raw.dtype)
        L = L / L.norm(dim=1, keepdim=True)
        R = L @ L.T
        return 0.5 * (R + R.T)

    def params(self) -> tuple[torch.Tensor, ...]:
        return self.A, torch.exp(self.b), self.g, F.softplus(self.kappa - 4.0)

    def distribution(self) -> gk.MultivariateGK:
        A, B, g, k = self.params()
        # B = exp(b) > 0 and k = softplus(.) >= 0 are valid by construction: skip the per-step region check
        return gk.MultivariateGK(A, B, g, k, self.correlation(), validate_args=False)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.distribution().log_prob(z).to(z.dtype)

    forward = log_prob

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.distribution().sample((n,), generator=generator).float()


# --- the model --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FlowVAEConfig:
    """Everything that defines a flow-VAE (and therefore its cache key)."""

    latent_size: int = 20
    hidden_size: int = 400
    flow: str = "none"          # one of vaebook.flows.FLOW_KINDS
    n_flows: int = 0            # K
    amortized: bool = True      # flow parameters from the encoder (Rezende & Mohamed) or global
    prior: str = "normal"       # "normal" or "gk" (learnt multivariate g-and-k)

    def __post_init__(self) -> None:
        for name in ("latent_size", "hidden_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ParameterError(f"{name} must be an integer >= 1, got {v!r}")
        if self.flow not in FLOW_KINDS:
            raise ParameterError(f"flow must be one of {FLOW_KINDS}, got {self.flow!r}")
        if not isinstance(self.n_flows, int) or isinstance(self.n_flows, bool) or self.n_flows < 0:
            raise ParameterError(f"n_flows must be an integer >= 0, got {self.n_flows!r}")
        if self.prior not in ("normal", "gk"):
            raise ParameterError(f"prior must be 'normal' or 'gk', got {self.prior!r}")

    @property
    def label(self) -> str:
        flow = "no flow" if self.flow == "none" or self.n_flows == 0 else f"{self.flow} K={self.n_flows}"
        return flow + ("" if self.prior == "normal" else ", g-and-k prior")


class FlowEncoder(nn.Module):
    """784 -> hidden (ReLU) -> mu, logvar, and (when amortised) the flows' raw parameters per image."""

    def __init__(self, latent_size: int, hidden_size: int, n_flow_params: int):
        super().__init__()
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_PIXELS, hidden_size), nn.ReLU())
        self.mu = nn.Linear(hidden_size, latent_size)
        self.logvar = nn.Linear(hidden_size, latent_size)
        self.flow_params = nn.Linear(hidden_size, n_flow_params) if n_flow_params > 0 else None
        if self.flow_params is not None:
            # start near the identity flow: small raw parameters for every image
            nn.init.normal_(self.flow_params.weight, std=1e-3)
            nn.init.zeros_(self.flow_params.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        h = self.hidden(x)
        return self.mu(h), self.logvar(h), None if self.flow_params is None else self.flow_params(h)


class FlowVAE(VAE):
    """VAE with q(z|x) = flow-transformed diagonal Gaussian and a N(0, I) or g-and-k prior.

    ``encode``/``latent_means``/``reconstruct`` use the flow image of the posterior mean,
    :math:`f(\\mu(x))`, the code the decoder actually sees (for K = 0 it is :math:`\\mu(x)`).
    """

    def __init__(self, config: FlowVAEConfig = FlowVAEConfig()):
        flow = make_flow(config.flow, config.latent_size, config.n_flows, amortized=config.amortized)
        super().__init__(VAEConfig(latent_size=config.latent_size, arch="mlp", hidden_size=config.hidden_size),
                         encoder=FlowEncoder(config.latent_size, config.hidden_size, flow.n_params),
                         decoder=MLPDecoder(config.latent_size, config.hidden_size))
        self.flow_config = config
        self.flow = flow
        self.prior = NormalPrior(config.latent_size) if config.prior == "normal" else GKPrior(config.latent_size)

    def cache_key(self) -> dict:
        return {"class": type(self).__name__, **asdict(self.flow_config), "version": 1}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar, params = self.encoder(x)
        return self.flow(mu, params)[0], logvar

    def posterior_sample(self, x: torch.Tensor, n: int = 1, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws z_K ~ q_K(z|x) per image and log q_K(z_K|x) = log q_0(z_0) - sum log|det J|.

        Shapes (N, n, d) and (N, n). With a generator the noise is drawn on the CPU (reproducible).
        """
        mu, logvar, params = self.encoder(x)
        return self._push(mu, logvar, params, n, generator)

    def _push(self, mu, logvar, params, n, generator):
        # Under bf16 autocast the networks run in bf16, but the flow, its log-determinants and the density
        # terms are sums of many small numbers: they stay in fp32 (autocast off, inputs cast up).
        with torch.autocast(mu.device.type, enabled=False):
            return self._push_fp32(mu.float(), logvar.float(), None if params is None else params.float(), n,
                                   generator)

    def _push_fp32(self, mu, logvar, params, n, generator):
        N, d = mu.shape
        eps = torch.randn(N, n, d, generator=generator).to(mu.device) if generator is not None \
            else torch.randn(N, n, d, device=mu.device)
        std = torch.exp(0.5 * logvar)
        z0 = (mu[:, None] + std[:, None] * eps).reshape(N * n, d)
        log_q0 = -0.5 * (eps * eps + logvar[:, None] + LOG_2PI).sum(-1).reshape(N * n)
        p = None if params is None else params.repeat_interleave(n, dim=0)
        zK, log_det = self.flow(z0, p)
        return zK.reshape(N, n, d), (log_q0 - log_det).reshape(N, n)

    def elbo_terms(self, x: torch.Tensor) -> ELBOTerms:
        zK, log_qK = self.posterior_sample(x)
        zK, log_qK = zK[:, 0], log_qK[:, 0]
        recon = reconstruction_nll(self.decoder(zK), x)
        with torch.autocast(zK.device.type, enabled=False):  # the prior's density (g-and-k root finder) in fp32
            kl = log_qK - self.prior.log_prob(zK.float())    # Monte-Carlo KL(q_K || p), one sample
        return ELBOTerms((recon + kl).mean(), recon, kl)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return decode(self, self.prior.sample(n, generator=generator))

    @torch.no_grad()
    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                    max_rows: int = 20000) -> torch.Tensor:
        """(N, k) importance log-weights log p(x|z_K) + log p(z_K) - log q_K(z_K|x), z_K ~ q_K(.|x)."""
        mu, logvar, params = self.encoder(x)
        chunk = max(1, max_rows // max(1, len(x)))
        out = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            zK, log_qK = self._push(mu, logvar, params, n, generator)
            N, _, d = zK.shape
            logits = self.decoder(zK.reshape(N * n, d))
            log_px = -reconstruction_nll(logits.float(), x.repeat_interleave(n, dim=0)).reshape(N, n)
            with torch.autocast(zK.device.type, enabled=False):  # fp32 terms for the IWAE log-sum-exp
                log_pz = self.prior.log_prob(zK.reshape(N * n, d).float()).reshape(N, n)
            out.append(log_px + log_pz - log_qK)
        return torch.cat(out, dim=1)


# --- VAE-GAN ----------------------------------------------------------------------------------------

class FeatureDiscriminator(nn.Module):
    """The VAE-GAN's discriminator: an MLP 784 -> 400 -> 256 (LeakyReLU 0.2) -> 1 logit that also returns
    its 256 hidden features, Larsen et al.'s learnt similarity (the feature reconstruction term).

    Not :class:`vaebook.gan.Discriminator`: that one is the GAN chapter's convolutional Keras network
    (two strided 3x3 convolutions with dropout, 40,705 parameters) and returns only the logit; this one is
    fully connected (416,913 parameters) and must expose a feature layer, so the two are different networks.
    """

    def __init__(self, hidden_size: int = 400, feature_size: int = 256):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_PIXELS, hidden_size), nn.LeakyReLU(0.2),
                                      nn.Linear(hidden_size, feature_size), nn.LeakyReLU(0.2))
        self.head = nn.Linear(feature_size, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(f).squeeze(-1)


class VAEGAN(FlowVAE):
    r"""VAE-GAN (Larsen et al. 2016) on the MLP VAE, kept a likelihood model so its NLL can be measured.

    Per image, the encoder and decoder minimise

    .. math::

        \underbrace{-\log p(x\mid z)}_{\text{pixel BCE}} + \mathrm{KL}
        + \lambda_{\text{feat}}\,\tfrac12\lVert D_l(x) - D_l(\tilde x)\rVert^2
        + \lambda_{\text{adv}}\,\bigl[-\log D(\mathrm{Dec}(z^{\text{sg}})) - \log D(\mathrm{Dec}(z_p))\bigr],

    with :math:`\tilde x = \mathrm{Dec}(z)`, :math:`D_l` the discriminator's hidden features (Larsen's learnt
    similarity), the non-saturating generator loss on reconstructions (encoder gradient stopped, as Larsen
    train the encoder without the GAN term) and on prior samples :math:`z_p \sim N(0, I)`; the
    discriminator minimises :math:`-\log D(x) - \log(1 - D(\tilde x)) - \log(1 - D(\mathrm{Dec}(z_p)))`.
    Unlike Larsen we keep the pixel likelihood (so the test NLL is defined and comparable).

    Weighting: the terms are per-image sums; ``adv_weight`` scales the adversarial term so that it is a
    visible share of the reconstruction (logged per epoch as ``adv_share``). The source project summed its
    reconstruction over the batch (~1e4) and added an unweighted mean adversarial loss (~0.7): ~1e-4 of it.

    Data: train with ``fit(..., binarize=False)``: the discriminator compares grey-level images with decoder
    means (a binary image against a probability map would be trivially told apart), while the likelihood
    terms use a fresh binarisation of every batch, exactly as the other models' dynamic binarisation.
    """

    def __init__(self, config: FlowVAEConfig = FlowVAEConfig(), adv_weight: float = 10.0,
                 feature_weight: float = 1.0):
        super().__init__(config)
        for name, v in (("adv_weight", adv_weight), ("feature_weight", feature_weight)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0) or not math.isfinite(v):
                raise ParameterError(f"{name} must be a finite number >= 0, got {v!r}")
        self.adv_weight, self.feature_weight = float(adv_weight), float(feature_weight)
        self.discriminator = FeatureDiscriminator()

    def cache_key(self) -> dict:
        return {**super().cache_key(), "adv_weight": self.adv_weight, "feature_weight": self.feature_weight}

    def vae_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("discriminator.")]

    def make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.vae_parameters(), lr=lr),
                torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))]

    def train_batch(self, x: torch.Tensor, y, optimizers) -> dict[str, float]:
        opt_vae, opt_d = optimizers
        x_bin = torch.bernoulli(x)
        zK, log_qK = self.posterior_sample(x_bin)
        zK, log_qK = zK[:, 0], log_qK[:, 0]
        logits = self.decoder(zK)
        recon = reconstruction_nll(logits, x_bin)
        kl = log_qK - self.prior.log_prob(zK)
        x_tilde = torch.sigmoid(logits)
        f_real, _ = self.discriminator(x)
        f_tilde, _ = self.discriminator(x_tilde)
        feature = 0.5 * (f_real.detach() - f_tilde).pow(2).sum(1)
        z_p = torch.randn_like(zK)
        x_p = torch.sigmoid(self.decoder(z_p))
        _, d_rec = self.discriminator(torch.sigmoid(self.decoder(zK.detach())))
        _, d_p = self.discriminator(x_p)
        adversarial = F.softplus(-d_rec) + F.softplus(-d_p)          # -log D(.) for both fakes
        loss = (recon + kl + self.feature_weight * feature + self.adv_weight * adversarial).mean()
        opt_vae.zero_grad(set_to_none=True)
        loss.backward()
        opt_vae.step()

        _, d_real = self.discriminator(x)
        _, d_fake1 = self.discriminator(x_tilde.detach())
        _, d_fake2 = self.discriminator(x_p.detach())
        d_loss = (F.softplus(-d_real) + F.softplus(d_fake1) + F.softplus(d_fake2)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        r, a = recon.mean().item(), (self.adv_weight * adversarial).mean().item()
        return {"loss": loss.item(), "recon": r, "kl": kl.mean().item(),
                "feature": (self.feature_weight * feature).mean().item(), "adversarial": a,
                "adv_share": a / max(r, 1e-12), "disc_loss": d_loss.item()}


VAEGAN_TERMS = ("recon", "kl", "feature", "adversarial", "adv_share", "disc_loss")
"""The per-epoch terms :meth:`VAEGAN.train_batch` logs (the training history's columns)."""


# --- evaluation -------------------------------------------------------------------------------------

def fixed_binarization(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One fixed Bernoulli draw of every pixel (the evaluation set of 'dynamically binarised' MNIST)."""
    return torch.bernoulli(x.cpu(), generator=torch.Generator().manual_seed(seed)).to(x.device)


class IWAEResult(NamedTuple):
    """Per-image log-likelihood bound L_k (nats) and ELBO (mean log-weight over the same k samples)."""

    log_px: torch.Tensor
    elbo: torch.Tensor
    k: int
    seconds: float

    @property
    def nll(self) -> float:
        return -self.log_px.mean().item()

    @property
    def neg_elbo(self) -> float:
        return -self.elbo.mean().item()


def iwae_bound(model: FlowVAE, x: torch.Tensor, k: int, seed: int = 0, batch_size: int | None = None,
               max_rows: int = 20000) -> IWAEResult:
    r"""Importance-sampled :math:`\log p(x) \ge \log\frac1k\sum_i w_i` (Burda et al. 2016) per image.

    ``x`` should already be binary (see :func:`fixed_binarization`). Work is batched so that at most
    ``max_rows`` decoder evaluations are alive at once; noise comes from a CPU generator seeded with
    ``seed`` (reproducible on any device).
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ParameterError(f"k (importance samples per image) must be an integer >= 1, got {k!r}")
    if not ((x == 0) | (x == 1)).all():
        raise ParameterError("iwae_bound needs binary images; binarise them first (fixed_binarization)")
    gen = torch.Generator().manual_seed(seed)
    if batch_size is None:
        batch_size = max(1, min(len(x), max_rows // k))

    def bound_and_elbo(batch: torch.Tensor) -> torch.Tensor:
        lw = model.log_weights(batch, k, generator=gen, max_rows=max_rows).double()
        return torch.stack([torch.logsumexp(lw, 1) - math.log(k), lw.mean(1)], dim=1)

    t0 = time.perf_counter()
    out = batched(bound_and_elbo, x, batch_size, module=model, width=2)
    return IWAEResult(out[:, 0], out[:, 1], k, time.perf_counter() - t0)


def aggregate_codes(model: FlowVAE, x: torch.Tensor, seed: int = 0, batch_size: int = 2000) -> torch.Tensor:
    """One draw z_K ~ q_K(z|x) per image: a sample of the aggregate posterior q(z) = E_x q(z|x). CPU."""
    gen = torch.Generator().manual_seed(seed)
    return batched(lambda b: model.posterior_sample(b, 1, generator=gen)[0][:, 0], x, batch_size, module=model,
                   width=model.latent_size)


@dataclass
class ExPostPrior:
    """A density fitted (or not) to training codes: ``sample(n, seed)`` -> (n, d) codes; ``log_prob`` on
    held-out codes (nats per code); ``seconds`` to fit; ``info`` (e.g. LM convergence);
    ``marginal_log_prob`` (m, d) values -> (m, d) log-densities of each one-dimensional margin (for plots)."""

    name: str
    sample: Callable[[int, int], torch.Tensor]
    log_prob: Callable[[torch.Tensor], torch.Tensor]
    seconds: float
    info: str = ""
    marginal_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None


def fit_ex_post_priors(codes: torch.Tensor, n_components: int = 10, seed: int = 0,
                       lm_max_codes: int | None = None) -> dict[str, ExPostPrior]:
    """Three generators for one trained model: N(0, I) as is, a Gaussian mixture (sklearn, full covariance,
    ``n_components``), and a multivariate g-and-k fitted by Levenberg–Marquardt on each margin's quantiles
    with the normal-score correlation (:func:`vaebook.gk.fit_multivariate_lm`). ``lm_max_codes`` caps the
    codes the LM fit sees (a seeded subset)."""
    from sklearn.mixture import GaussianMixture

    codes = codes.detach().cpu().double()
    n, d = codes.shape
    out = {}
    out["N(0, I)"] = ExPostPrior(
        "N(0, I)", lambda m, s: torch.randn(m, d, generator=torch.Generator().manual_seed(s)),
        lambda z: _log_std_normal(z.double()), 0.0, "the training prior, nothing fitted",
        lambda z: -0.5 * z.double() ** 2 - 0.5 * LOG_2PI)

    t0 = time.perf_counter()
    gmm = GaussianMixture(n_components=n_components, covariance_type="full", random_state=seed,
                          reg_covar=1e-5).fit(codes.numpy())

    def gmm_sample(m, s):
        gmm.random_state = s
        z, _ = gmm.sample(m)
        return torch.as_tensor(z[np.random.default_rng(s).permutation(m)], dtype=torch.float32)

    def gmm_margins(z):   # margin j of a full-covariance mixture: sum_c w_c N(z_j; mu_cj, S_c,jj)
        z = z.double().cpu()
        mu, var = torch.as_tensor(gmm.means_), torch.as_tensor(np.diagonal(gmm.covariances_, axis1=1, axis2=2).copy())
        logw = torch.as_tensor(np.log(gmm.weights_))
        comp = -0.5 * ((z[:, None, :] - mu) ** 2 / var + torch.log(var) + LOG_2PI)     # (m, components, d)
        return torch.logsumexp(comp + logw[None, :, None], dim=1)

    out["GMM"] = ExPostPrior("GMM", gmm_sample,
                             lambda z: torch.as_tensor(gmm.score_samples(z.double().cpu().numpy())),
                             time.perf_counter() - t0,
                             f"{n_components} components, full covariance, converged={gmm.converged_}",
                             gmm_margins)

    t0 = time.perf_counter()
    lm_codes = codes
    if lm_max_codes is not None and n > lm_max_codes:
        lm_codes = codes[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:lm_max_codes]]
    fitted = gk.fit_multivariate_lm(lm_codes.numpy())
    P = torch.as_tensor(fitted.params)
    # LM on quantiles can end at k < 0 with a small |g|, where Q' < 0 somewhere (no density). Such a margin
    # is moved to k = 0 (always valid for c = 0.8) and the change is reported, never hidden.
    repaired = []
    for j in range(d):
        try:
            gk.validate_params(*P[j], fitted.c)
        except ValueError:
            P[j, 3] = max(float(P[j, 3]), 0.0)
            repaired.append(j)
    dist = gk.MultivariateGK(P[:, 0], P[:, 1], P[:, 2], P[:, 3], torch.as_tensor(fitted.R), c=fitted.c)
    out["g-and-k (LM)"] = ExPostPrior(
        "g-and-k (LM)",
        lambda m, s: dist.sample((m,), generator=torch.Generator().manual_seed(s)).float(),
        lambda z: dist.log_prob(z.double().cpu()), time.perf_counter() - t0,
        f"{fitted.message}; {len(lm_codes)} codes"
        + (f"; k set to 0 in invalid margins {repaired}" if repaired else ""),
        lambda z: dist.marginal_log_prob(z.double().cpu()))
    out["g-and-k (LM)"].fit = fitted  # type: ignore[attr-defined]
    out["g-and-k (LM)"].repaired = repaired  # type: ignore[attr-defined]  # margins moved to k = 0
    return out



# --- the chapter's analysis: one model's evaluation, the ex-post comparison, verdicts -----------------

@dataclass
class ModelEvaluation:
    """One trained model's evaluation: ``row`` (the results table's columns), its prior ``samples`` (pixel
    probabilities, CPU), the ``codes`` of the code images (flow image of the posterior mean, CPU) and
    ``log_px`` and ``elbo``, the per-image bound :math:`\\mathcal L_k` behind the NLL and the ELBO from the
    same samples (for :func:`paired_gain`)."""

    row: dict[str, float]
    samples: torch.Tensor
    codes: torch.Tensor
    log_px: torch.Tensor | None = None   # per-image IWAE bound of the NLL images (for paired comparisons)
    elbo: torch.Tensor | None = None     # per-image ELBO from the same samples


def _check_count(name: str, v: object) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ParameterError(f"{name} must be an integer >= 1, got {v!r}")


def evaluate_model(model: FlowVAE, *, nll_images: torch.Tensor, code_images: torch.Tensor,
                   labels: torch.Tensor, quality: Callable[[torch.Tensor], Mapping[str, float]],
                   n_samples: int, iwae_k: int, seed: int = 0) -> ModelEvaluation:
    """Evaluate one flow-VAE (or VAE-GAN) the way the flow chapter's results table does:

    * ``test NLL (IWAE)`` and ``test −ELBO``: :func:`iwae_bound` with ``iwae_k`` samples on the binary
      ``nll_images`` (noise seeded with ``seed``), and ``NLL seconds``, the time it took;
    * ``FID``, ``precision``, ``recall``: ``quality(samples)`` (e.g. ``partial(quality.sample_quality,
      classifier, real_images)``) of ``n_samples`` images decoded from the prior (seeded with ``seed + 1``);
    * ``5-NN accuracy``, ``silhouette``: :func:`vaebook.evaluate.latent_separation` of the latent means of
      ``code_images`` against ``labels`` (folds seeded with ``seed``).
    """
    _check_count("n_samples", n_samples)
    if len(code_images) != len(labels):
        raise ParameterError(f"evaluate_model needs one label per code image, got {len(code_images)} images "
                             f"and {len(labels)} labels")
    bound = iwae_bound(model, nll_images, iwae_k, seed=seed)
    samples = decode(model, model.prior.sample(n_samples, generator=torch.Generator().manual_seed(seed + 1)))
    q = quality(samples)
    codes = batched(model.latent_means, code_images, module=model, width=model.latent_size)
    sep = latent_separation(codes, labels, seed=seed)
    row = {"test NLL (IWAE)": bound.nll, "test −ELBO": bound.neg_elbo, "FID": q["fid"],
           "precision": q["precision"], "recall": q["recall"], "5-NN accuracy": sep["knn_accuracy"],
           "silhouette": sep["silhouette"], "NLL seconds": bound.seconds}
    return ModelEvaluation(row, samples, codes, bound.log_px, bound.elbo)


@dataclass
class ExPostFit:
    """The training codes an ex-post comparison fitted its priors to, and the priors by name."""

    codes: torch.Tensor
    priors: dict[str, ExPostPrior]


def ex_post_fit(model: FlowVAE, train_images: torch.Tensor, *, max_codes: int | None = None,
                n_components: int = 10, seed: int = 0) -> ExPostFit:
    """:func:`fit_ex_post_priors` on one draw of :func:`aggregate_codes` per (binary) training image (noise
    seeded with ``seed``; at most ``max_codes`` of them, a subset seeded with ``seed``)."""
    if max_codes is not None:
        _check_count("max_codes", max_codes)
    train_codes = aggregate_codes(model, train_images, seed=seed)
    if max_codes is not None and max_codes < len(train_codes):
        keep = torch.randperm(len(train_codes), generator=torch.Generator().manual_seed(seed))[:max_codes]
        train_codes = train_codes[keep]
    return ExPostFit(train_codes, fit_ex_post_priors(train_codes, n_components=n_components, seed=seed))


def ex_post_comparison(model: FlowVAE, train_images: torch.Tensor, test_images: torch.Tensor,
                       quality: Callable[[torch.Tensor], Mapping[str, float]], *, n_samples: int,
                       max_codes: int | None = None, n_components: int = 10, seed: int = 0,
                       fit: ExPostFit | None = None) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """Generate from one trained model with each ex-post prior of :func:`fit_ex_post_priors` and compare.

    The priors are those of ``fit``, else of :func:`ex_post_fit` (``train_images``, ``max_codes``,
    ``n_components``, ``seed``). Each generator decodes ``n_samples`` codes (seeded with ``seed + 5``). The
    table has, per generator, ``quality``'s FID, precision and recall, the mean log-density of held-out codes
    of ``test_images`` (seeded with ``seed + 4``; nats per code), the same codes' summed one-dimensional
    margin log-densities (the joint minus this is what the density gains from dependence between
    coordinates; 0 for N(0, I)), the fitting time and the fit's note.
    Returns ``(table, samples)``.
    """
    _check_count("n_samples", n_samples)
    if fit is None:
        fit = ex_post_fit(model, train_images, max_codes=max_codes, n_components=n_components, seed=seed)
    test_codes = aggregate_codes(model, test_images, seed=seed + 4)
    rows, samples = {}, {}
    for name, prior in fit.priors.items():
        samples[name] = decode(model, prior.sample(n_samples, seed + 5))
        q = quality(samples[name])
        margins = (float("nan") if prior.marginal_log_prob is None
                   else prior.marginal_log_prob(test_codes).double().sum(1).mean().item())
        rows[name] = {"FID": q["fid"], "precision": q["precision"], "recall": q["recall"],
                      "test-code log-lik (nats/code)": prior.log_prob(test_codes).float().mean().item(),
                      "margins log-lik (nats/code)": margins,
                      "fit seconds": prior.seconds, "note": prior.info}
    return pd.DataFrame(rows).T, samples


def least_normal_dims(codes: torch.Tensor | np.ndarray, n: int) -> list[int]:
    """The ``n`` coordinates of ``codes`` (N, d) whose empirical distribution is farthest from N(0, 1), by
    the Kolmogorov–Smirnov distance sup_x |F_N(x) − Φ(x)|, farthest first."""
    from scipy import stats

    z = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise ParameterError(f"codes must be a non-empty (N, d) array, got shape {z.shape}")
    _check_count("n", n)
    ks = [stats.kstest(z[:, j], "norm").statistic for j in range(z.shape[1])]
    return [int(j) for j in np.argsort(ks, kind="stable")[::-1][:n]]


def paired_gain(log_px_base: torch.Tensor, log_px_model: torch.Tensor) -> tuple[float, float]:
    """NLL gain of a model over a baseline scored on the same test images, with its standard error over
    images: (mean of log p_model(x) − log p_base(x), its sample std / sqrt(N)). Positive favours the model.
    The error covers which test images were scored (and the IWAE noise), not training noise (seeds)."""
    a, b = torch.as_tensor(log_px_base).double().flatten(), torch.as_tensor(log_px_model).double().flatten()
    if a.shape != b.shape or len(a) < 2:
        raise ParameterError(f"paired_gain needs the same >= 2 images for both models, got {len(a)} and {len(b)}")
    diff = b - a
    return diff.mean().item(), (diff.std(unbiased=True) / math.sqrt(len(diff))).item()


def fid_draws(model: nn.Module, fid: Callable[[torch.Tensor], float], n_samples: int,
              seeds: Sequence[int]) -> np.ndarray:
    """``fid(images)`` for ``n_samples`` images decoded from the model's prior, once per seed in ``seeds``
    (the prior's noise seeded with it, as :func:`evaluate_model` seeds its draw with ``seed + 1``): how much
    a sample-quality score moves between sample draws of one fixed model."""
    _check_count("n_samples", n_samples)
    if len(seeds) < 1:
        raise ParameterError("fid_draws needs at least one seed")
    return np.array([float(fid(decode(model, model.prior.sample(n_samples, generator=torch.Generator()
                                                                 .manual_seed(int(s))))))
                     for s in seeds])


def difference_and_spread(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """For two sets of repeated scores (e.g. :func:`fid_draws` of two models): the difference of their
    means (b − a) and the spread of a difference of single draws, sqrt(sd_a² + sd_b²) (sample std)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ParameterError(f"difference_and_spread needs >= 2 scores per set, got {len(a)} and {len(b)}")
    return float(b.mean() - a.mean()), float(math.hypot(a.std(ddof=1), b.std(ddof=1)))


MIN_NLL_GAIN = 1.0
"""Nats by which the best flow model must beat the plain VAE trained the same way (the chapter's target 1)."""

TARGET_NLL = 85.0
"""Test NLL (nats) the best flow model must reach: Rezende & Mohamed's best planar flow (K = 80) has 85.1."""


@dataclass(frozen=True)
class FlowVerdict:
    """Whether the best flow model beats its baseline by ``min_gain`` nats and reaches ``target_nll``."""

    baseline: str
    baseline_nll: float
    best: str
    best_nll: float
    min_gain: float = MIN_NLL_GAIN
    target_nll: float = TARGET_NLL

    @property
    def gain(self) -> float:
        """NLL of the baseline minus that of the best flow model (positive: the flow is better)."""
        return self.baseline_nll - self.best_nll

    @property
    def gain_holds(self) -> bool:
        return self.gain >= self.min_gain

    @property
    def target_holds(self) -> bool:
        return self.best_nll <= self.target_nll

    def __str__(self) -> str:
        def verdict(ok: bool) -> str:
            return "holds" if ok else "does not hold"

        return (f"baseline {self.baseline}: {self.baseline_nll:.2f} nats; best flow model: {self.best}, "
                f"{self.best_nll:.2f} nats (gain {self.gain:+.2f} nats)\n"
                f"target 1, gain >= {self.min_gain:g} nat: {verdict(self.gain_holds)} in this run\n"
                f"target 2, NLL <= {self.target_nll:g} nats: {verdict(self.target_holds)} in this run")


def flow_verdict(nll: Mapping[str, float], flows: Sequence[str], baseline: str = "VAE", *,
                 min_gain: float = MIN_NLL_GAIN, target_nll: float = TARGET_NLL) -> FlowVerdict | None:
    """The best of the ``flows`` (lowest test NLL in ``nll``, a mapping or Series model -> nats) against
    ``baseline``; None when no flow model has a finite NLL."""
    missing = [n for n in [baseline, *flows] if n not in nll]
    if missing:
        raise ParameterError(f"flow_verdict: no NLL for {missing}; the models are {list(nll)}")
    if not math.isfinite(float(nll[baseline])):
        raise ParameterError(f"flow_verdict: the baseline {baseline!r} has no finite NLL ({nll[baseline]!r})")
    finite = {n: float(nll[n]) for n in flows if math.isfinite(float(nll[n]))}
    if not finite:
        return None
    best = min(finite, key=finite.get)
    return FlowVerdict(baseline, float(nll[baseline]), best, finite[best], float(min_gain), float(target_nll))


def gains_over_baseline(table: pd.DataFrame, models: Sequence[str], baseline: str = "VAE") -> pd.DataFrame:
    """Per model (not the baseline), what it gains over ``baseline`` in the results table: NLL and ELBO
    gains and FID change (baseline minus model: positive favours the model), and its own ELBO − NLL gap."""
    missing = [n for n in [baseline, *models] if n not in table.index]
    if missing:
        raise ParameterError(f"gains_over_baseline: {missing} not in the table (rows {list(table.index)})")
    base, rows = table.loc[baseline], table.loc[[m for m in models if m != baseline]]
    return pd.DataFrame({
        "NLL gain (nats)": base["test NLL (IWAE)"] - rows["test NLL (IWAE)"],
        "ELBO gain (nats)": base["test −ELBO"] - rows["test −ELBO"],
        "ELBO − NLL gap (nats)": rows["test −ELBO"] - rows["test NLL (IWAE)"],
        "FID change": base["FID"] - rows["FID"],
    }).astype(float)


PUBLISHED_NLL = (
    # Rezende & Mohamed 2015, Table 2: deep latent Gaussian model (DLGM, maxout MLPs, 40 latent dimensions),
    # binarised MNIST; the posterior a diagonal Gaussian, or one pushed through K planar or NICE layers
    ("Rezende & Mohamed 2015", "diagonal Gaussian", 89.9),
    ("Rezende & Mohamed 2015", "planar flow, K = 10", 87.5),
    ("Rezende & Mohamed 2015", "planar flow, K = 20", 86.5),
    ("Rezende & Mohamed 2015", "planar flow, K = 40", 85.7),
    ("Rezende & Mohamed 2015", "planar flow, K = 80", 85.1),
    ("Rezende & Mohamed 2015", "NICE, K = 80", 87.2),
    # Burda et al. 2016, Table 1: dynamically binarised MNIST, NLL from 5,000 importance samples; k is the
    # number of samples in the training objective (a VAE trained with k = 1 is the ordinary VAE)
    ("Burda et al. 2016", "VAE, k = 1, one layer", 86.76),
    ("Burda et al. 2016", "IWAE, k = 50, one layer", 84.78),
    ("Burda et al. 2016", "IWAE, k = 50, two layers", 82.90),
)
"""Published test NLLs on binarised MNIST (nats): (source, model, NLL). "one layer" / "two layers" count
stochastic layers (Burda et al.'s one-layer models: two deterministic layers of 200 units, 50 latent
dimensions)."""


def nll_beside_published(ours: Mapping[str, float], source: str) -> pd.DataFrame:
    """:data:`PUBLISHED_NLL` followed by ``ours`` (model -> test NLL in nats; NaNs dropped), labelled
    ``source``: columns source, model, test NLL (nats)."""
    mine = [(source, name, float(v)) for name, v in ours.items() if not math.isnan(float(v))]
    return pd.DataFrame([*PUBLISHED_NLL, *mine], columns=["source", "model", "test NLL (nats)"])
