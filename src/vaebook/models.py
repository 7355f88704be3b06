"""Variational autoencoders with pluggable encoder and decoder networks.

A VAE (Kingma & Welling 2014) maximises the evidence lower bound (ELBO) per image x:

    log p(x) >= E_{q(z|x)}[log p(x|z)] - KL(q(z|x) || p(z)),

with q(z|x) = N(mu(x), diag sigma^2(x)) from the encoder, p(z) = N(0, I), and p(x|z) from the decoder:
Bernoulli (binary cross-entropy, the usual choice for MNIST) or Gaussian with a fixed sigma (squared
error). The KL term has the closed form 0.5 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).

Every term is returned as a **per-image sum** over pixels or latent dimensions (nats per image), so the
numbers compare directly with the literature; a beta weight multiplies the KL (Higgins et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ParameterError

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 784


# --- networks ---------------------------------------------------------------------------------------

class MLPEncoder(nn.Module):
    """784 -> hidden -> (mu, logvar), the encoder of Kingma & Welling and of pytorch/examples."""

    def __init__(self, latent_size: int, hidden_size: int = 400):
        super().__init__()
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_PIXELS, hidden_size), nn.ReLU())
        self.mu = nn.Linear(hidden_size, latent_size)
        self.logvar = nn.Linear(hidden_size, latent_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(x)
        return self.mu(h), self.logvar(h)


class MLPDecoder(nn.Module):
    """latent -> hidden -> 784 logits."""

    def __init__(self, latent_size: int, hidden_size: int = 400):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_size, hidden_size), nn.ReLU(),
                                 nn.Linear(hidden_size, IMAGE_PIXELS), nn.Unflatten(1, IMAGE_SHAPE))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ConvEncoder(nn.Module):
    """The GAN-vs-VAE study's Keras encoder, in PyTorch.

    28x28x1 -> Conv 32, 3x3, stride 2, ReLU ("same") -> 14x14x32 -> Conv 64, 3x3, stride 2, ReLU ->
    7x7x64 -> flatten 3136 -> Dense 128, ReLU -> mu and logvar. (Keras pads "same" stride-2 convolutions
    asymmetrically, PyTorch symmetrically with padding=1; shapes and parameter counts agree.)
    """

    def __init__(self, latent_size: int, hidden_size: int = 128):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(7 * 7 * 64, hidden_size), nn.ReLU())
        self.mu = nn.Linear(hidden_size, latent_size)
        self.logvar = nn.Linear(hidden_size, latent_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mu(h), self.logvar(h)


class ConvDecoder(nn.Module):
    """latent -> Dense 7x7x64, ReLU -> ConvT 64, 3x3, s2, ReLU -> 14x14x64 -> ConvT 32, 3x3, s2, ReLU ->
    28x28x32 -> ConvT 1, 3x3, s1 -> logits (the sigmoid lives in the likelihood, for numerical stability).
    """

    def __init__(self, latent_size: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_size, 7 * 7 * 64), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 3, stride=1, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


# --- the VAE ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VAEConfig:
    """Everything that defines a VAE (and therefore its cache key)."""

    latent_size: int = 20
    arch: str = "mlp"            # "mlp" (784-hidden-latent) or "conv" (the GAN-vs-VAE study's networks)
    hidden_size: int = 400       # MLP hidden width; the conv encoder's dense layer uses 128
    likelihood: str = "bernoulli"  # "bernoulli" (BCE) or "gaussian" (squared error, fixed sigma)
    sigma: float = 1.0           # decoder standard deviation for the Gaussian likelihood
    beta: float = 1.0            # weight of the KL term; 1 is the ELBO
    loss_reduction: str = "sum"  # "sum": per-image ELBO; "mean": the Keras-style mean BCE + mean KL

    def __post_init__(self) -> None:
        if not isinstance(self.latent_size, int) or self.latent_size < 1:
            raise ParameterError(f"latent_size must be an integer >= 1, got {self.latent_size!r}")
        if self.arch not in ("mlp", "conv"):
            raise ParameterError(f"arch must be 'mlp' or 'conv', got {self.arch!r}")
        if not isinstance(self.hidden_size, int) or self.hidden_size < 1:
            raise ParameterError(f"hidden_size must be an integer >= 1, got {self.hidden_size!r}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ParameterError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if not self.sigma > 0:
            raise ParameterError(f"sigma must be > 0, got {self.sigma!r}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ParameterError(f"beta must be a finite number >= 0, got {self.beta!r}")
        if self.loss_reduction not in ("sum", "mean"):
            raise ParameterError(f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")


class ELBOTerms(NamedTuple):
    """Per-image terms (shape (N,)); ``loss`` is the scalar that training minimises."""

    loss: torch.Tensor
    recon: torch.Tensor   # -log p(x|z), nats per image
    kl: torch.Tensor      # KL(q(z|x) || p(z)), nats per image

    @property
    def elbo(self) -> torch.Tensor:
        return -(self.recon + self.kl)


def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli",
                       sigma: float = 1.0) -> torch.Tensor:
    """-log p(x|z) summed over pixels, per image. ``logits`` are pre-sigmoid decoder outputs."""
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        mean = torch.sigmoid(logits)
        nll = 0.5 * ((x - mean) / sigma) ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)
    return nll.flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per row, closed form."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def encoder_is_default(encoder: nn.Module, decoder: nn.Module) -> bool:
    """True for the book's own conv networks (whose speed-ups were measured), False for custom ones."""
    return isinstance(encoder, ConvEncoder) and isinstance(decoder, ConvDecoder)


class VAE(nn.Module):
    """A VAE with pluggable networks (as in pythae): pass ``encoder``/``decoder`` to replace the defaults.

    A custom encoder maps images (N, 1, 28, 28) to ``(mu, logvar)``, each (N, latent_size); a custom
    decoder maps (N, latent_size) to logits (N, 1, 28, 28).
    """

    def __init__(self, config: VAEConfig = VAEConfig(), encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        d = config.latent_size
        if encoder is None:
            encoder = MLPEncoder(d, config.hidden_size) if config.arch == "mlp" else ConvEncoder(d)
        if decoder is None:
            decoder = MLPDecoder(d, config.hidden_size) if config.arch == "mlp" else ConvDecoder(d)
        self.encoder, self.decoder = encoder, decoder
        # What precision="auto" trains in (bench/bench_precision.py, 2 cores with native bf16): the conv VAE
        # 1.66x faster in bf16 + channels_last (2.4x on one thread), training as well: test −ELBO and PSNR
        # within the fp32 seed spread over 3 seeds (bench/bench_precision_quality.py); the MLP
        # gains 1.05x at most from bf16, not worth a different result, so it stays fp32.
        conv = config.arch == "conv" and encoder_is_default(encoder, decoder)
        self.preferred_precision = "bf16" if conv else "fp32"
        self.channels_last = conv

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    def cache_key(self) -> dict:
        return {"class": type(self).__name__, **asdict(self.config),
                "encoder": type(self.encoder).__name__, "decoder": type(self.decoder).__name__}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder mean: pixel probabilities (Bernoulli) or intensities (Gaussian), in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): a sample whose gradient flows into mu and sigma."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decoder(z), mu, logvar, z

    def elbo_terms(self, x: torch.Tensor) -> ELBOTerms:
        logits, mu, logvar, _ = self(x)
        recon = reconstruction_nll(logits, x, self.config.likelihood, self.config.sigma)
        kl = gaussian_kl(mu, logvar)
        if self.config.loss_reduction == "sum":
            loss = (recon + self.config.beta * kl).mean()
        else:  # Keras' mean BCE over pixels plus mean KL over latent dimensions
            loss = (recon / IMAGE_PIXELS + self.config.beta * kl / self.latent_size).mean()
        return ELBOTerms(loss, recon, kl)

    # the training engine's contract (see vaebook.train)
    def training_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        terms = self.elbo_terms(x)
        return terms.loss, {"loss": terms.loss.item(), "recon": terms.recon.mean().item(),
                            "kl": terms.kl.mean().item()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Encode, take the posterior mean, decode: the deterministic reconstruction."""
        outs = [self.decode(self.encode(x[i:i + batch_size])[0]) for i in range(0, len(x), batch_size)]
        return torch.cat(outs)

    @torch.no_grad()
    def latent_means(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return torch.cat([self.encode(x[i:i + batch_size])[0] for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_size, generator=generator, device="cpu").to(device)
        return self.decode(z)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
        """Mean per-image ELBO terms on ``x`` (one Monte-Carlo sample of z per image)."""
        recon, kl = [], []
        for i in range(0, len(x), batch_size):
            t = self.elbo_terms(x[i:i + batch_size])
            recon.append(t.recon)
            kl.append(t.kl)
        r, k = torch.cat(recon).mean().item(), torch.cat(kl).mean().item()
        return {"recon": r, "kl": k, "neg_elbo": r + k}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
