import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vaebook import train
from vaebook.config import ParameterError
from vaebook.models import VAE, VAEConfig, count_parameters, gaussian_kl, reconstruction_nll


@pytest.fixture(scope="module")
def small(mnist):
    return mnist["train"].x[:512], mnist["train"].y[:512]


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_shapes_and_finite_elbo(arch, small):
    x, _ = small
    model = VAE(VAEConfig(latent_size=5, arch=arch))
    logits, mu, logvar, z = model(x[:8])
    assert logits.shape == (8, 1, 28, 28) and mu.shape == logvar.shape == z.shape == (8, 5)
    terms = model.elbo_terms(x[:8])
    assert terms.recon.shape == terms.kl.shape == (8,)
    assert torch.isfinite(terms.loss) and (terms.kl >= 0).all()
    assert model.decode(z).min() >= 0 and model.decode(z).max() <= 1


def test_mlp_parameter_count():
    # 784-400-20 encoder (two heads) and 20-400-784 decoder, counted by hand.
    enc = 784 * 400 + 400 + 2 * (400 * 20 + 20)
    dec = 20 * 400 + 400 + 400 * 784 + 784
    assert count_parameters(VAE(VAEConfig(latent_size=20))) == enc + dec


def test_terms_match_torch_distributions():
    torch.manual_seed(0)
    logits, x = torch.randn(4, 1, 28, 28), torch.rand(4, 1, 28, 28).round()
    ref = -Independent(Bernoulli(logits=logits), 3).log_prob(x)
    assert torch.allclose(reconstruction_nll(logits, x), ref, atol=1e-3)
    mu, logvar = torch.randn(4, 6), torch.randn(4, 6)
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros(6), torch.ones(6)), 1)
    assert torch.allclose(gaussian_kl(mu, logvar), kl_divergence(q, p), atol=1e-5)
    sigma = 0.3
    ref_g = -Independent(Normal(torch.sigmoid(logits), sigma), 3).log_prob(x)
    assert torch.allclose(reconstruction_nll(logits, x, "gaussian", sigma), ref_g, rtol=1e-5)


def test_one_optimiser_step_lowers_the_loss(small):
    x, _ = small
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_size=8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = x[:128]

    def loss_at_fixed_noise():
        torch.manual_seed(123)
        return model.elbo_terms(batch).loss.item()

    before = loss_at_fixed_noise()
    torch.manual_seed(123)
    model.elbo_terms(batch).loss.backward()
    opt.step()
    assert loss_at_fixed_noise() < before


def test_invalid_model_config_is_rejected():
    with pytest.raises(ParameterError, match="latent_size"):
        VAEConfig(latent_size=0)
    with pytest.raises(ParameterError, match="likelihood"):
        VAEConfig(likelihood="poisson")


def _build():
    return VAE(VAEConfig(latent_size=4, hidden_size=64))


def test_fit_is_deterministic(small, tmp_path):
    x, y = small
    a = train.fit(_build, x, y, epochs=2, batch_size=64, seed=5, cache=False, device="cpu")
    b = train.fit(_build, x, y, epochs=2, batch_size=64, seed=5, cache=False, device="cpu")
    c = train.fit(_build, x, y, epochs=2, batch_size=64, seed=6, cache=False, device="cpu")
    cols = ["loss", "recon", "kl"]
    assert a.history[cols].equals(b.history[cols])
    assert not a.history[cols].equals(c.history[cols])
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_cache_reuses_and_invalidates(small, tmp_path):
    x, y = small
    first = train.fit(_build, x, y, epochs=1, batch_size=64, cache=tmp_path, name="m", device="cpu")
    again = train.fit(_build, x, y, epochs=1, batch_size=64, cache=tmp_path, name="m", device="cpu")
    assert not first.loaded and again.loaded and again.path == first.path
    for pa, pb in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(pa, pb)
    other_lr = train.fit(_build, x, y, epochs=1, batch_size=64, lr=2e-3, cache=tmp_path, name="m", device="cpu")
    other_data = train.fit(_build, x[:256], y[:256], epochs=1, batch_size=64, cache=tmp_path, name="m",
                           device="cpu")
    other_model = train.fit(lambda: VAE(VAEConfig(latent_size=5, hidden_size=64)), x, y, epochs=1,
                            batch_size=64, cache=tmp_path, name="m", device="cpu")
    paths = {first.path, other_lr.path, other_data.path, other_model.path}
    assert len(paths) == 4 and not (other_lr.loaded or other_data.loaded or other_model.loaded)


def test_interrupted_run_resumes_to_the_same_result(small, tmp_path):
    x, y = small
    full = train.fit(_build, x, y, epochs=3, batch_size=64, cache=tmp_path / "a", name="m", device="cpu")
    part = train.fit(_build, x, y, epochs=3, batch_size=64, cache=tmp_path / "b", name="m", device="cpu",
                     stop_after=1)
    assert len(part.history) == 1
    resumed = train.fit(_build, x, y, epochs=3, batch_size=64, cache=tmp_path / "b", name="m", device="cpu")
    assert resumed.resumed_from == 1 and not resumed.loaded
    cols = ["loss", "recon", "kl"]
    assert resumed.history[cols].equals(full.history[cols])
    for pa, pb in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(pa, pb)


def test_onecycle_schedule_resumes_to_the_same_result(small, tmp_path):
    """The scheduler's position is checkpointed: stopping after one epoch and resuming gives the same
    weights as an uninterrupted run, and the learning rate ends where OneCycleLR says it must."""
    x, y = small
    kw = dict(epochs=3, batch_size=64, lr=3e-3, device="cpu", name="m", lr_schedule="onecycle")
    full = train.fit(_build, x, y, cache=tmp_path / "a", **kw)
    part = train.fit(_build, x, y, cache=tmp_path / "b", stop_after=1, **kw)
    # after one epoch the learning rate is where a stand-alone OneCycleLR is after as many steps
    steps_per_epoch = math.ceil(len(x) / 64)
    reference_opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=3e-3)
    reference = torch.optim.lr_scheduler.OneCycleLR(reference_opt, max_lr=3e-3, total_steps=3 * steps_per_epoch)
    for _ in range(steps_per_epoch):
        reference_opt.step()
        reference.step()
    lr_after_one_epoch = torch.load(part.path, weights_only=True)["optimizers"][0]["param_groups"][0]["lr"]
    assert lr_after_one_epoch == pytest.approx(reference.get_last_lr()[0], rel=1e-12)
    assert lr_after_one_epoch > 3e-3 / 25  # it has warmed up from the initial max_lr / 25
    resumed = train.fit(_build, x, y, cache=tmp_path / "b", **kw)
    assert resumed.resumed_from == 1
    for pa, pb in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(pa, pb)
    constant = train.fit(_build, x, y, epochs=3, batch_size=64, lr=3e-3, device="cpu", name="m",
                         cache=tmp_path / "a")
    assert constant.path != full.path  # the schedule is part of the cache key
    assert not all(torch.equal(pa, pb) for pa, pb in zip(full.model.parameters(), constant.model.parameters()))


def test_corrupt_checkpoint_is_reported_and_retrained(small, tmp_path, capsys):
    x, y = small
    first = train.fit(_build, x, y, epochs=1, batch_size=64, cache=tmp_path, name="m", device="cpu")
    first.path.write_bytes(first.path.read_bytes()[:200])
    again = train.fit(_build, x, y, epochs=1, batch_size=64, cache=tmp_path, name="m", device="cpu")
    assert "damaged" in capsys.readouterr().err
    assert not again.loaded and len(again.history) == 1
    assert train.fit(_build, x, y, epochs=1, batch_size=64, cache=tmp_path, name="m", device="cpu").loaded


def test_no_temporary_files_left(small, tmp_path):
    x, y = small
    train.fit(_build, x, y, epochs=2, batch_size=64, cache=tmp_path, name="m", device="cpu")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


class _Exploding(VAE):
    def training_loss(self, x, y=None):
        loss, logs = super().training_loss(x, y)
        return loss * float("nan"), {**logs, "loss": float("nan")}


def test_nan_loss_names_epoch_and_batch(small):
    x, y = small
    with pytest.raises(train.TrainingError, match=r"epoch 1, batch 1/"):
        train.fit(lambda: _Exploding(VAEConfig(latent_size=2, hidden_size=16)), x, y, epochs=1,
                  batch_size=64, cache=False, device="cpu")


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs"), ({"epochs": 1, "batch_size": 0}, "batch_size"),
    ({"epochs": 1, "lr": -1.0}, "lr"), ({"epochs": 1, "device": "tpu"}, "device"),
    ({"epochs": 1, "lr_schedule": "cosine"}, "lr_schedule"),
])
def test_invalid_training_parameters_fail_before_training(small, kwargs, match):
    x, y = small
    built = []

    def build():
        built.append(1)
        return _build()

    with pytest.raises(ParameterError, match=match):
        train.fit(build, x, y, cache=False, **kwargs)
    assert not built  # nothing was constructed or trained


def test_epoch_end_hook_does_not_change_training(small):
    x, y = small
    plain = train.fit(_build, x, y, epochs=2, batch_size=64, cache=False, device="cpu")
    hooked = train.fit(_build, x, y, epochs=2, batch_size=64, cache=False, device="cpu",
                       epoch_end=lambda m, e: {"sampled": m.sample(5).mean().item()})
    assert plain.history["loss"].equals(hooked.history["loss"])
    assert "sampled" in hooked.history and math.isfinite(hooked.history["sampled"].iloc[-1])
