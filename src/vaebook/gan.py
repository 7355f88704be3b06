"""A DCGAN-style generative adversarial network (Goodfellow et al. 2014; Radford et al. 2016), with the
GAN-vs-VAE study's Keras networks translated to PyTorch.

A generator G maps noise z ~ N(0, I_100) to an image; a discriminator D maps an image to the probability
that it is real. They play a two-player game. D minimises the binary cross-entropy of telling real from
generated images,

    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))],

and G, instead of minimising E_z[log(1 - D(G(z)))] (whose gradient vanishes while D easily rejects its
samples), minimises the **non-saturating** loss

    L_G = -E_z[log D(G(z))],

which has the same fixed point but strong gradients early on (Goodfellow et al. 2014, section 3). Each
mini-batch makes one D step on the real images and as many fresh samples, then one G step that scores
the same samples with the updated D (as PyTorch's DCGAN example does; the Keras source drew new noise
for the G step, which costs a second generator pass, by far the most expensive part on a CPU).

Optionally (``r1_gamma`` > 0) D's loss adds the R1 penalty of Mescheder et al. (2018), a gradient penalty
on real images only,

    R1 = (gamma / 2) E_x[ ||grad_x logit D(x)||^2 ],

which pushes D to be flat on the data so that it cannot grow ever steeper where G's samples sit; it is
"lazy" as in StyleGAN2 (Karras et al. 2020, section 3.1): computed every ``r1_every``-th D step and
multiplied by ``r1_every``, which keeps its average and runs the double back-propagation on 1 in ``r1_every`` steps.

Optionally (``ema`` > 0) the samples come from an exponential moving average of the generator's weights,
updated after every generator step (Yazıcı et al. 2019):

    theta_ema <- d theta_ema + (1 - d) theta,   d = min(ema, (1 + t) / (10 + t)) at generator step t,

which damps the generator's oscillation around the game's equilibrium without changing the game (the
discriminator always trains against the current generator). The warm-up of d (as in TensorFlow's
``ExponentialMovingAverage`` with ``num_updates``) keeps the average from being dragged by the random
initial weights; its step count is a buffer, so a resumed run continues it.

Both networks return logits; the sigmoid of the Keras originals lives in the loss
(``binary_cross_entropy_with_logits``), which is the same function computed without overflow.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .config import ParameterError
from .evaluate import batched, decode

NOISE_SIZE = 100


def keras_init_(module: nn.Module) -> nn.Module:
    """Keras' default initialisation, in place: Glorot-uniform weights and zero biases in every dense,
    convolutional and transposed-convolutional layer. PyTorch's defaults (Kaiming-uniform with a = sqrt(5),
    biases uniform in +-1/sqrt(fan_in)) give the generator a dense layer with three times larger outputs;
    with them the first generator steps, which darken every pixel (D's first cue is that grey fakes are
    brighter than MNIST), drive the output logits to about -30 within 200 steps, where the sigmoid's
    gradient (~1e-13) is too small for the generator ever to recover: all samples stay black. With the
    Keras initialisation of the source the dark phase is shallower (about -15) and the generator
    usually recovers within a few hundred steps; it is not guaranteed (one seeded run at batch 64 went
    black again by step 300), as GAN training is not.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return module


class Generator(nn.Module):
    """noise 100 -> Dense 7x7x128, LeakyReLU 0.2 -> ConvT 128, 4x4, s2, LeakyReLU -> 14x14x128 ->
    ConvT 128, 4x4, s2, LeakyReLU -> 28x28x128 -> Conv 1, 7x7 ("same") -> logits (sigmoid: images).

    Keras' "same" stride-2 transposed convolution with a 4x4 kernel doubles the size; in PyTorch that is
    padding=1 (output (H-1)*2 - 2 + 4 = 2H). Parameter counts agree with the Keras model (1,164,289).
    ``width`` (128 in the source) is the channel count of every hidden layer; a smaller one keeps the
    architecture and cuts the cost roughly with its square.
    """

    def __init__(self, noise_size: int = NOISE_SIZE, width: int = 128):
        super().__init__()
        self.noise_size, self.width = noise_size, width
        self.net = nn.Sequential(
            nn.Linear(noise_size, 7 * 7 * width), nn.LeakyReLU(0.2), nn.Unflatten(1, (width, 7, 7)),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 1, 7, padding=3))
        keras_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the pixel intensities, (N, 1, 28, 28)."""
        return self.net(z)


class Discriminator(nn.Module):
    """28x28x1 -> Conv 64, 3x3, s2, LeakyReLU 0.2, Dropout 0.4 -> 14x14x64 -> Conv 64, 3x3, s2,
    LeakyReLU 0.2, Dropout 0.4 -> 7x7x64 -> flatten 3136 -> Dense 1 -> logit of "real" (40,705 parameters).

    The source's read-out is linear: each of the 3136 features sees a 7x7-pixel patch (two 3x3 stride-2
    convolutions), and the logit is a weighted sum of them, so D can score where strokes are but not
    whether the strokes at two places belong to one digit. ``hidden`` > 0 puts one dense layer of that many
    units (LeakyReLU 0.2) between the features and the logit, which makes the read-out a nonlinear function
    of the whole image (``hidden=0``: the source's network).
    """

    def __init__(self, dropout: float = 0.4, hidden: int = 0):
        super().__init__()
        if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 0:
            raise ParameterError(f"hidden must be an integer >= 0 (0: the source's linear read-out), got {hidden!r}")
        self.hidden = hidden
        readout = ([nn.Linear(7 * 7 * 64, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1)] if hidden
                   else [nn.Linear(7 * 7 * 64, 1)])
        self.net = nn.Sequential(
            nn.Conv2d(1, 64, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Flatten(), *readout)
        keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit of the probability that each image is real, (N,)."""
        return self.net(x).squeeze(1)


class GAN(nn.Module):
    """Generator plus discriminator, trained by :func:`vaebook.train.fit` through ``make_optimizers`` and
    ``train_batch``. Optimiser: Adam with beta1 = 0.5 for both networks, as in DCGAN and the source
    (whose Keras code used lr = 2e-4; the chapter passes that as ``lr``).
    """

    def __init__(self, noise_size: int = NOISE_SIZE, dropout: float = 0.4, betas: tuple[float, float] = (0.5, 0.999),
                 width: int = 128, disc_hidden: int = 0, r1_gamma: float = 0.0, r1_every: int = 4,
                 ema: float = 0.0):
        super().__init__()
        for label, value, minimum in (("noise_size", noise_size, 1), ("width", width, 1),
                                      ("disc_hidden", disc_hidden, 0), ("r1_every", r1_every, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ParameterError(f"{label} must be an integer >= {minimum}, got {value!r}")
        if not 0 <= dropout < 1:
            raise ParameterError(f"dropout must be in [0, 1), got {dropout!r}")
        if isinstance(r1_gamma, bool) or not isinstance(r1_gamma, (int, float)) or not 0 <= r1_gamma < float("inf"):
            raise ParameterError(f"r1_gamma must be a finite number >= 0 (0: no R1 penalty), got {r1_gamma!r}")
        if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0 <= ema < 1:
            raise ParameterError(f"ema must be a number in [0, 1) (0: sample from the trained generator itself), "
                                 f"got {ema!r}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ParameterError(f"betas must be two numbers in [0, 1), got {betas!r}")
        self.noise_size, self.dropout, self.betas = noise_size, dropout, tuple(float(b) for b in betas)
        self.width, self.disc_hidden = width, disc_hidden
        self.generator = Generator(noise_size, width)
        self.discriminator = Discriminator(dropout, disc_hidden)
        self.r1_gamma, self.r1_every = float(r1_gamma), r1_every
        if self.r1_gamma:
            # which D step this is, for the lazy penalty; a buffer, so a resumed run continues the count
            self.register_buffer("d_steps", torch.zeros((), dtype=torch.long))
        self.ema = float(ema)
        if self.ema:
            # the averaged generator that samples are drawn from; not trained (no optimiser sees it)
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.register_buffer("g_steps", torch.zeros((), dtype=torch.long))
        # precision="auto" (bench/bench_precision.py, 2 cores with native bf16): 2.15x faster in bf16 +
        # channels_last than fp32 (2.36x on one thread). bench/bench_precision_quality.py, the GAN chapter's
        # default recipe and budget, 3 seeds (2026-12-03, 1.87x per epoch): FID 37.2 / 40.7 / 39.1 against
        # 38.4 / 38.9 / 38.9 in fp32 and precision 0.62 / 0.63 / 0.66 against 0.61 / 0.64 / 0.63, both means
        # within the fp32 seed spread.
        self.preferred_precision = "bf16"
        self.channels_last = True

    @property
    def latent_size(self) -> int:
        return self.noise_size

    def cache_key(self) -> dict:
        key = {"class": type(self).__name__, "version": 2, "noise_size": self.noise_size,
               "dropout": self.dropout, "betas": list(self.betas), "loss": "non-saturating"}
        if self.width != 128:  # the source's width keeps its old key, so cached source models stay valid
            key["width"] = self.width
        if self.disc_hidden:  # likewise for the source's linear read-out
            key["disc_hidden"] = self.disc_hidden
        if self.r1_gamma:  # and for no R1 penalty
            key["r1"] = [self.r1_gamma, self.r1_every]
        if self.ema:  # and for no averaged generator
            key["ema"] = self.ema
        return key

    def make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """[optimiser of D, optimiser of G], Adam(lr, betas)."""
        return [torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=self.betas),
                torch.optim.Adam(self.generator.parameters(), lr=lr, betas=self.betas)]

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        if generator is None:
            return torch.randn(n, self.noise_size, device=device)
        return torch.randn(n, self.noise_size, generator=generator).to(device)

    @property
    def sampler(self) -> nn.Module:
        """The generator that samples come from: the averaged one when ``ema`` > 0, else the trained one."""
        return self.generator_ema if self.ema else self.generator

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from noise vectors (N, noise_size), drawn by :attr:`sampler`."""
        return torch.sigmoid(self.sampler(z))

    @torch.no_grad()
    def _update_ema(self) -> None:
        self.g_steps += 1
        t = int(self.g_steps)
        decay = min(self.ema, (1 + t) / (10 + t))
        for averaged, current in zip(self.generator_ema.parameters(), self.generator.parameters()):
            averaged.lerp_(current.detach(), 1 - decay)

    def train_batch(self, x: torch.Tensor, y: torch.Tensor | None, optimizers) -> dict[str, float]:
        """One discriminator step on ``x`` and len(x) generated images (plus the R1 penalty on ``x`` every
        ``r1_every``-th step when ``r1_gamma`` > 0), then one generator step (and, when ``ema`` > 0, one
        update of the averaged generator)."""
        opt_d, opt_g = optimizers
        n = len(x)
        ones, zeros = torch.ones(n, device=x.device), torch.zeros(n, device=x.device)

        # discriminator: real -> 1, fake -> 0 (fakes detached: this step must not move G)
        fake = torch.sigmoid(self.generator(self.noise(n)))
        penalise = bool(self.r1_gamma) and int(self.d_steps) % self.r1_every == 0
        if penalise:
            x = x.detach().requires_grad_(True)
        logit_real = self.discriminator(x)
        logit_fake = self.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(logit_real, ones)
                  + F.binary_cross_entropy_with_logits(logit_fake, zeros))
        penalty = 0.0
        if penalise:
            grad, = torch.autograd.grad(logit_real.sum(), x, create_graph=True)
            penalty = self.r1_every * self.r1_gamma / 2 * grad.float().square().sum(dim=(1, 2, 3)).mean()
        if self.r1_gamma:
            self.d_steps += 1
        opt_d.zero_grad(set_to_none=True)
        (d_loss + penalty).backward()
        opt_d.step()

        # generator, non-saturating: make D call the same fakes real (D is not stepped here)
        for p in self.discriminator.parameters():
            p.requires_grad_(False)
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in self.discriminator.parameters():
            p.requires_grad_(True)
        if self.ema:
            self._update_ema()

        # d_loss is the classification loss alone (2 ln 2 at chance), with or without the penalty
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(),
                "d_acc_real": (logit_real > 0).float().mean().item(),
                "d_acc_fake": (logit_fake < 0).float().mean().item()}

    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 1000) -> torch.Tensor:
        """``n`` generated images in [0, 1], (n, 1, 28, 28), on the CPU; seeded by ``generator`` when given.
        The generator runs in eval mode, in batches of ``batch_size`` (:func:`vaebook.evaluate.decode`)."""
        if n == 0:
            return torch.empty(0, 1, 28, 28)
        return decode(self, self.noise(n, generator), batch_size)


def discriminator_scores(gan: GAN, real: torch.Tensor, fake: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """How the trained discriminator judges ``real`` and ``fake`` images with dropout off (eval mode): its
    loss ``d_loss`` (the training loss L_D, cross-entropy of real -> 1 plus fake -> 0, each averaged over
    its images; 2 ln 2 ≈ 1.386 when it outputs 1/2 everywhere) and its accuracies ``d_acc_real`` (share of
    real images with D > 1/2) and ``d_acc_fake`` (share of fakes with D < 1/2), the training history's keys.
    """
    if len(real) == 0 or len(fake) == 0:
        raise ValueError(f"discriminator_scores needs real and fake images, got {len(real)} and {len(fake)}")
    d = gan.discriminator
    logit_real = batched(lambda b: d(b.float()), real, batch_size, module=d)
    logit_fake = batched(lambda b: d(b.float()), fake, batch_size, module=d)
    d_loss = (F.binary_cross_entropy_with_logits(logit_real.double(), torch.ones_like(logit_real.double()))
              + F.binary_cross_entropy_with_logits(logit_fake.double(), torch.zeros_like(logit_fake.double())))
    return {"d_loss": d_loss.item(), "d_acc_real": (logit_real > 0).double().mean().item(),
            "d_acc_fake": (logit_fake < 0).double().mean().item()}
