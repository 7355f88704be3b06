"""The training contract every trainable model of the book keeps, checked on each of them as a Job.

For every model (MLP VAE, conv VAE, flow VAE, VAE-GAN, GAN, MNIST classifier), on 128 real MNIST
training images: one epoch lowers the model's own loss on a fixed batch; the job pickles (so it can be
sent to another process) and the unpickled copy names the same checkpoint; an interrupted run resumed
equals an uninterrupted one bit for bit (weights and history, except the wall-clock column); a second
call loads the checkpoint; and changing any one field of the model's configuration (or constructor
argument) changes the cache key, i.e. the checkpoint's path.
"""

from __future__ import annotations

import inspect
import pickle
from dataclasses import dataclass, fields, replace
from functools import lru_cache, partial
from typing import Any, Callable

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vaebook.jobs import Job, run_job
from vaebook.train import seed_everything

N_IMAGES, BATCH_SIZE = 128, 32   # 4 optimiser steps per epoch: the whole test takes seconds on one core


@lru_cache(maxsize=1)
def mnist_subset(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded subset of ``n`` real MNIST training images and their labels (a Job's data loader)."""
    from vaebook.data import mnist_splits

    train = mnist_splits(train_subset=n, seed=0)["train"]
    return train.x, train.y


@dataclass(frozen=True)
class Contract:
    """One model under the contract: how to build it, its loss on a fixed batch, and its variants."""

    model: Callable[[], nn.Module]                        # partial(Class, config): a picklable factory
    losses: Callable[[nn.Module, torch.Tensor, torch.Tensor], dict[str, float]]  # each must go down
    variants: dict[str, Callable[[], nn.Module]]          # each differs in one configuration field
    lr: float = 1e-3


def one_field_changed(config: Any, alternatives: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each field in turn set to its alternative; every field must have one, so a field
    added later is covered (or this fails and asks for its alternative)."""
    names = {f.name for f in fields(config)}
    assert set(alternatives) == names, f"give every field of {type(config).__name__} an alternative: " \
                                       f"missing {sorted(names - set(alternatives))}"
    return {f"{name}={value!r}": replace(config, **{name: value}) for name, value in alternatives.items()}


def constructor_arguments(cls: type, *, besides: tuple[str, ...] = ()) -> set[str]:
    return set(inspect.signature(cls).parameters) - set(besides)


# --- each model's loss on a fixed batch (evaluation mode: no dropout, no augmentation; fixed noise) ----

def negative_elbo(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(1)  # the same reparameterisation noise before and after training
        return {"negative ELBO": model.eval().elbo_terms(x).loss.item()}


def negative_elbo_binarised(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    # the VAE-GAN's likelihood terms see binarised images (it binarises each batch itself); its adversarial
    # terms depend on its discriminator, which trains against it, so the ELBO is the part that must fall
    from vaebook.flow_vae import fixed_binarization

    return negative_elbo(model, fixed_binarization(x, seed=1), y)


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        return {"cross-entropy": F.cross_entropy(model.eval()(x), y).item()}


def gan_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    # A GAN has no loss that both players lower: the generator's loss rises whenever the discriminator
    # improves. What one epoch must do from the initialisation (where D says 1/2 to everything, loss
    # log 4) is teach D to tell real images from the current generator's fakes (its loss on a fixed real
    # batch and fakes from fixed noise falls), while G moves its samples toward the data: the gap
    # between their mean pixel intensity and MNIST's (0.13; G starts at a uniform grey 0.5) shrinks.
    model.eval()
    with torch.no_grad():
        fakes = model.decode(torch.randn(len(x), model.noise_size, generator=torch.Generator().manual_seed(1)))
        d_loss = (F.binary_cross_entropy_with_logits(model.discriminator(x), torch.ones(len(x)))
                  + F.binary_cross_entropy_with_logits(model.discriminator(fakes), torch.zeros(len(x))))
    return {"discriminator loss": d_loss.item(),
            "gap between the samples' and the data's mean intensity": abs(fakes.mean() - x.mean()).item()}


# --- the models (imports inside, so a module being renamed fails only its own case) ------------------

def mlp_vae() -> Contract:
    from vaebook.models import VAE, VAEConfig

    config = VAEConfig(latent_size=4, arch="mlp", hidden_size=64)
    # VAE's other arguments (encoder, decoder) take custom networks, which are not configuration
    assert constructor_arguments(VAE, besides=("encoder", "decoder")) == {"config"}
    return Contract(partial(VAE, config), negative_elbo, {
        k: partial(VAE, c) for k, c in one_field_changed(config, {
            "latent_size": 5, "arch": "conv", "hidden_size": 65, "likelihood": "gaussian", "sigma": 0.5,
            "beta": 2.0, "loss_reduction": "mean"}).items()})


def conv_vae() -> Contract:
    from vaebook.models import VAE, VAEConfig

    config = VAEConfig(latent_size=4, arch="conv")
    return Contract(partial(VAE, config), negative_elbo, {
        k: partial(VAE, c) for k, c in one_field_changed(config, {
            "latent_size": 5, "arch": "mlp", "hidden_size": 65, "likelihood": "gaussian", "sigma": 0.5,
            "beta": 2.0, "loss_reduction": "mean"}).items()})


FLOW_ALTERNATIVES = {"latent_size": 5, "hidden_size": 65, "flow": "radial", "n_flows": 3, "amortized": False,
                     "prior": "gk"}


def flow_vae() -> Contract:
    from vaebook.flow_vae import FlowVAE, FlowVAEConfig

    config = FlowVAEConfig(latent_size=4, hidden_size=64, flow="planar", n_flows=2)
    assert constructor_arguments(FlowVAE) == {"config"}
    return Contract(partial(FlowVAE, config), negative_elbo, {
        k: partial(FlowVAE, c) for k, c in one_field_changed(config, FLOW_ALTERNATIVES).items()})


def vae_gan() -> Contract:
    from vaebook.flow_vae import VAEGAN, FlowVAEConfig

    config = FlowVAEConfig(latent_size=4, hidden_size=64, flow="planar", n_flows=2)
    arguments = {"adv_weight": 5.0, "feature_weight": 0.5}
    assert constructor_arguments(VAEGAN, besides=("config",)) == set(arguments)
    variants = {k: partial(VAEGAN, c) for k, c in one_field_changed(config, FLOW_ALTERNATIVES).items()}
    variants.update({f"{k}={v!r}": partial(VAEGAN, config, **{k: v}) for k, v in arguments.items()})
    return Contract(partial(VAEGAN, config), negative_elbo_binarised, variants)


def gan() -> Contract:
    from vaebook.gan import GAN

    arguments = {"noise_size": 99, "dropout": 0.3, "betas": (0.9, 0.999), "width": 16, "disc_hidden": 8,
                 "r1_gamma": 2.0, "r1_every": 2, "ema": 0.9}
    assert constructor_arguments(GAN) == set(arguments)
    # with a lazy R1 penalty (every 3rd step) and an averaged generator, so that resuming must also restore
    # both step counts and the average; r1_every only matters where there is a penalty
    base = {"r1_gamma": 1.0, "r1_every": 3, "ema": 0.99}
    variants = {f"{k}={v!r}": partial(GAN, **{**base, k: v}) for k, v in arguments.items()}
    return Contract(partial(GAN, **base), gan_losses, variants, lr=2e-4)  # the GAN chapter's (and DCGAN's) lr


def classifier() -> Contract:
    from vaebook.classifier import MNISTClassifier

    assert constructor_arguments(MNISTClassifier) == {"augment_pixels"}
    return Contract(partial(MNISTClassifier), cross_entropy,
                    {"augment_pixels=1.0": partial(MNISTClassifier, augment_pixels=1.0)}, lr=3e-3)


CONTRACTS = {"mlp-vae": mlp_vae, "conv-vae": conv_vae, "flow-vae": flow_vae, "vae-gan": vae_gan, "gan": gan,
             "classifier": classifier}


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: nn.Module, b: nn.Module, what: str) -> None:
    sa, sb = state(a), state(b)
    assert sa.keys() == sb.keys(), what
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, f"{what}: tensors differ: {differ[:5]}"


def without_seconds(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns="seconds")


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_training_contract(name, tmp_path, one_thread):
    contract = CONTRACTS[name]()
    job = Job(name=f"contract-{name}", model=contract.model, data=partial(mnist_subset, N_IMAGES), epochs=2,
              batch_size=BATCH_SIZE, lr=contract.lr, seed=0, device="cpu", chapter="contract")
    x, y = job.data()

    # (a) one epoch lowers the model's own loss on a fixed batch (the training images themselves)
    seed_everything(job.seed)  # as fit does before building, so this is the model training starts from
    before = contract.losses(job.model(), x, y)
    interrupted = run_job(job, cache=tmp_path / "interrupted", stop_after=1)
    after = contract.losses(interrupted.model, x, y)
    assert len(interrupted.history) == 1 and not interrupted.loaded and interrupted.path.exists()
    for what in before:
        assert after[what] < before[what], \
            f"{name}: one epoch did not lower the {what} ({before[what]} -> {after[what]})"

    # (c) the job pickles; resuming the interrupted run (from the unpickled copy) gives exactly what an
    # uninterrupted run gives
    unpickled = pickle.loads(pickle.dumps(job))
    resumed = run_job(unpickled, cache=tmp_path / "interrupted")
    assert resumed.resumed_from == 1 and not resumed.loaded and resumed.path == interrupted.path
    whole = run_job(job, cache=tmp_path / "whole")
    assert whole.path.name == resumed.path.name  # the key does not depend on the folder or the run
    assert_same_weights(resumed.model, whole.model, f"{name}: resumed vs uninterrupted")
    pd.testing.assert_frame_equal(without_seconds(resumed.history), without_seconds(whole.history), check_exact=True)
    assert list(whole.history["epoch"]) == [1, 2]

    # (b) a second call loads the checkpoint: nothing trained, the same weights and history
    again = run_job(job, cache=tmp_path / "whole")
    assert again.loaded and again.path == whole.path
    assert_same_weights(again.model, whole.model, f"{name}: loaded vs trained")
    pd.testing.assert_frame_equal(again.history, whole.history, check_exact=True)

    # (d) each change of one configuration field gives another checkpoint (stop_after=0: key, no training)
    paths = {label: run_job(replace(job, model=variant), cache=tmp_path / "whole", stop_after=0).path
             for label, variant in contract.variants.items()}
    same = sorted(label for label, path in paths.items() if path == whole.path)
    assert not same, f"{name}: these configuration changes keep the cache key: {same}"
    assert len(set(paths.values())) == len(paths), f"{name}: two variants share a cache key: {paths}"
