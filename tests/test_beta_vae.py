import math

import numpy as np
import pytest
import torch

from vaebook import beta_vae as bv
from vaebook.config import ParameterError
from vaebook.models import VAE, VAEConfig
from vaebook.train import fit


# --- the source's effective β -------------------------------------------------------------------------

def _source_loss_numpy(logits, x, mu, logvar):
    """The source's Keras loss, term by term in float64: mean BCE − 0.0005 · mean(1 + logσ² − μ² − σ²)."""
    p = 1 / (1 + np.exp(-logits))
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p))
    return bce.reshape(len(x), -1).mean(1) - 0.0005 * (1 + logvar - mu ** 2 - np.exp(logvar)).mean(1)


@pytest.mark.parametrize("d, expected", [(5, 0.1568), (10, 0.0784), (15, 0.784 / 15), (20, 0.0392)])
def test_effective_beta_reproduces_source_loss(d, expected):
    assert bv.source_effective_beta(d) == pytest.approx(expected, rel=1e-12)
    rng = np.random.default_rng(d)
    logits = rng.normal(0, 2, (6, 1, 28, 28))
    x = rng.uniform(0, 1, (6, 1, 28, 28))
    mu, logvar = rng.normal(0, 1.5, (6, d)), rng.normal(0, 1, (6, d))
    direct = _source_loss_numpy(logits, x, mu, logvar)
    # summed ELBO terms, also by hand: recon = Σ BCE, KL = ½ Σ (μ² + σ² − 1 − log σ²)
    p = 1 / (1 + np.exp(-logits))
    recon = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(6, -1).sum(1)
    kl = 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(1)
    np.testing.assert_allclose(784 * direct, recon + bv.source_effective_beta(d) * kl, rtol=1e-10)
    # and the library's float32 version of the source loss agrees with the direct one
    t = [torch.tensor(a, dtype=torch.float32) for a in (logits, x, mu, logvar)]
    np.testing.assert_allclose(bv.source_loss(*t).numpy(), direct, rtol=1e-4)


def test_beta_resolution_and_validation():
    assert bv.resolve_beta("source", 10) == pytest.approx(0.0784)
    assert bv.resolve_beta(1, 10) == 1.0
    assert bv.beta_label("source", 5) == "source (0.157)"
    bv.validate_betas("betas", ["source", 1.0, 0.5])
    for bad in (["sauce"], [-1.0], [], ["source", "source"], [float("inf")]):
        with pytest.raises(ParameterError):
            bv.validate_betas("betas", bad)
    with pytest.raises(ParameterError):
        bv.source_effective_beta(0)


# --- representative images and per-digit metrics ----------------------------------------------------

def test_representatives_are_seeded_and_of_the_right_digit(mnist):
    labels = mnist["test"].y
    a = bv.representative_indices(labels, 10, seed=3)
    b = bv.representative_indices(labels, 10, seed=3)
    c = bv.representative_indices(labels, 10, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(a) == 100 and len(torch.unique(a)) == 100
    assert torch.equal(labels[a], torch.arange(10).repeat_interleave(10))
    # the stated rule, by hand: first 10 of a randperm seeded with seed + digit
    idx7 = np.flatnonzero(labels.numpy() == 7)
    perm = torch.randperm(len(idx7), generator=torch.Generator().manual_seed(3 + 7)).numpy()
    np.testing.assert_array_equal(a[70:80].numpy(), idx7[perm[:10]])
    with pytest.raises(ParameterError):
        bv.representative_indices(labels[:30], 10)


def test_per_digit_metrics_match_a_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 28, 28, generator=g)
    x_hat = (x + 0.2 * torch.randn(60, 1, 28, 28, generator=g)).clamp(0, 1)
    labels = torch.randint(0, 4, (60,), generator=g)
    table = bv.per_digit_metrics(x, x_hat, labels)
    xa, ha, ya = x.double().numpy(), x_hat.double().numpy(), labels.numpy()
    for digit in range(4):
        errs, dbs = [], []
        for i in range(60):
            if ya[i] == digit:
                e = float(np.mean((xa[i] - ha[i]) ** 2))
                errs.append(e)
                dbs.append(10 * math.log10(1 / e))
        assert table.loc[digit, "images"] == len(errs)
        assert table.loc[digit, "mse"] == pytest.approx(np.mean(errs), rel=1e-5)
        assert table.loc[digit, "psnr"] == pytest.approx(np.mean(dbs), rel=1e-5)
    summary = bv.summarise_per_digit(table)
    assert summary["psnr"] == pytest.approx(table["psnr"].mean())


# --- decoder-only reconstruction --------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(mnist):
    # a small MLP VAE keeps this fast; the optimisation is the same for any decoder (the chapter runs conv)
    x = mnist["train"].x[:3000]
    result = fit(lambda: VAE(VAEConfig(latent_size=5, arch="mlp", hidden_size=200, beta=1.0)), x, epochs=2,
                 batch_size=64, lr=1e-3, seed=0, device="cpu", cache=False, progress=False)
    return result.model, mnist["test"].x[:24]


def test_decoder_only_beats_the_encoder_on_a_fixed_batch(trained):
    model, x = trained
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    z, obj = bv.decoder_only_latents(model, x, steps=150, lr=0.05, prior_weight=0.0, batch_size=10)
    for k, v in model.decoder.state_dict().items():
        assert torch.equal(v, before[k]), "the decoder must stay frozen"
    full = model.reconstruct(x)
    dec = bv.decode_codes(model, z)
    enc_obj = bv.encoder_objective(model, x, prior_weight=0.0)
    # objective (the reconstruction NLL) and pixel error both fall below the amortised encoder's
    assert obj.mean() < enc_obj.mean() - 1.0
    gap = bv.amortisation_gap(x, full, dec)
    assert gap["decoder-only MSE"] < gap["full MSE"] and gap["PSNR gap (dB)"] > 0
    assert gap["MSE gap"] == pytest.approx(gap["full MSE"] - gap["decoder-only MSE"])
    # the returned objective is what the codes achieve
    with torch.no_grad():
        torch.testing.assert_close(obj, bv.decoder_only_objective(model, z, x, 0.0), rtol=1e-5, atol=1e-3)


def test_decoder_only_map_objective_and_determinism(trained):
    model, x = trained
    z1, obj1 = bv.decoder_only_latents(model, x, steps=100, prior_weight=1.0, init="prior", seed=5, batch_size=24)
    z2, obj2 = bv.decoder_only_latents(model, x, steps=100, prior_weight=1.0, init="prior", seed=5, batch_size=24)
    assert torch.equal(z1, z2) and torch.equal(obj1, obj2)
    z0, obj0 = bv.decoder_only_latents(model, x, steps=100, prior_weight=1.0, batch_size=24)
    assert obj0.mean() < bv.encoder_objective(model, x, prior_weight=1.0).mean()
    with pytest.raises(ParameterError):
        bv.decoder_only_latents(model, x, init="encoder")


# --- traversals, rate, separation -------------------------------------------------------------------

def test_latent_traversal_and_kl_per_dimension(trained):
    model, x = trained
    z0 = torch.tensor([0.1, -0.2, 0.3, 0.0, 0.5])
    imgs = bv.latent_traversal(model, z0, dims=[1, 3], values=[-2.0, 0.0, 2.0])
    assert imgs.shape == (6, 1, 28, 28)
    z = z0.clone()
    z[3] = 2.0
    torch.testing.assert_close(imgs[5], model.decode(z[None])[0].detach())
    with pytest.raises(ValueError):
        bv.latent_traversal(model, z0, dims=[5], values=[0.0])
    kl = bv.kl_per_dimension(model, x)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        total = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
    assert kl.shape == (5,) and kl.sum().item() == pytest.approx(total.item(), rel=1e-4)
    rd = bv.rate_distortion(model, x, seed=1)
    assert rd["neg_elbo"] == pytest.approx(rd["rate"] + rd["distortion"], rel=1e-6)
    assert rd["rate"] == pytest.approx(total.item(), rel=1e-4)
    assert rd == bv.rate_distortion(model, x, seed=1)
    assert rd == bv.rate_distortion(model, x, x_hat=model.reconstruct(x), seed=1)


def test_separation_scores_on_known_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 40)
    centres = rng.normal(0, 10, (10, 4))
    tight = centres[labels] + rng.normal(0, 0.1, (400, 4))
    s = bv.separation_scores(tight, labels)
    assert s["knn_accuracy"] == 1.0 and s["silhouette"] > 0.9
    noise = rng.normal(0, 1, (400, 4))
    s = bv.separation_scores(noise, labels)
    assert s["knn_accuracy"] < 0.25 and abs(s["silhouette"]) < 0.1
    emb = bv.tsne_embedding(tight[:60], seed=0)
    assert emb.shape == (60, 2) and np.isfinite(emb).all()


def test_suboptimal_models_known_answer():
    import pandas as pd
    rd = pd.DataFrame([
        # d = 15: the beta = 0.5 model has less rate AND more distortion than the beta = 1 model, so the
        # beta = 1 model scores 80 + 0.5 * 21 = 90.5 < 88 + 0.5 * 20 = 98 on beta = 0.5's own objective
        {"latent size": 15, "β value": 0.5, "rate": 20.0, "distortion": 88.0},
        {"latent size": 15, "β value": 1.0, "rate": 21.0, "distortion": 80.0},
        {"latent size": 15, "β value": 2.0, "rate": 10.0, "distortion": 95.0},
        # d = 5: a consistent frontier (lower beta, more rate, less distortion): nobody is beaten
        {"latent size": 5, "β value": 0.5, "rate": 30.0, "distortion": 90.0},
        {"latent size": 5, "β value": 1.0, "rate": 20.0, "distortion": 96.0},
    ])
    out = bv.suboptimal_models(rd)
    assert list(out["latent size"]) == [15] and list(out["β"]) == [0.5]
    row = out.iloc[0]
    assert row["beaten by β"] == 1.0
    assert row["own objective"] == pytest.approx(98.0) and row["its value"] == pytest.approx(90.5)
    assert row["excess (nats)"] == pytest.approx(7.5)
    assert bv.suboptimal_models(rd, tolerance=7.4)["β"].tolist() == [0.5]
    assert bv.suboptimal_models(rd, tolerance=7.6).empty
    # a brute-force check of the definition on random frontiers
    rng = np.random.default_rng(0)
    for _ in range(20):
        frame = pd.DataFrame({"latent size": 5, "β value": [0.25, 0.5, 1.0, 2.0],
                              "rate": rng.uniform(5, 40, 4), "distortion": rng.uniform(60, 120, 4)})
        flagged = set(bv.suboptimal_models(frame)["β"])
        expected = {a.β_value for a in frame.rename(columns={"β value": "β_value"}).itertuples()
                    if any(b.distortion + a.β_value * b.rate < a.distortion + a.β_value * a.rate
                           for b in frame.rename(columns={"β value": "β_value"}).itertuples() if b.Index != a.Index)}
        assert flagged == expected
