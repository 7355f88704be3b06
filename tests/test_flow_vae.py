"""Flow-VAE: importance-sampled bound, Monte-Carlo KL, g-and-k prior gradients, VAE-GAN, ex-post priors."""

import math

import pytest
import torch
from torch.func import functional_call

from vaebook import gk
from vaebook.config import ParameterError
from vaebook.flow_vae import (VAEGAN, FlowVAE, FlowVAEConfig, GKPrior, aggregate_codes, fit_ex_post_priors,
                              fixed_binarization, iwae_bound, latent_separation)
from vaebook.models import gaussian_kl
from vaebook.train import fit


@pytest.fixture(scope="module")
def images(mnist):
    return fixed_binarization(mnist["test"].x[:24], seed=0)


def test_iwae_bound_is_above_the_elbo_and_grows_with_k(images):
    torch.manual_seed(0)
    model = FlowVAE(FlowVAEConfig(latent_size=4, hidden_size=64, flow="planar", n_flows=2)).eval()
    means = {}
    for k in (1, 8, 64):
        runs = [iwae_bound(model, images, k, seed=s) for s in range(4)]
        for r in runs:   # same samples: log-mean-exp >= mean (Jensen), image by image
            assert (r.log_px >= r.elbo - 1e-9).all()
        per_run = torch.stack([r.log_px.mean() for r in runs])
        means[k] = (per_run.mean().item(), per_run.std().item() / math.sqrt(len(runs)))
    for k1, k2 in ((1, 8), (8, 64)):
        (m1, s1), (m2, s2) = means[k1], means[k2]
        assert m2 > m1 - 3 * math.hypot(s1, s2), means
    assert means[64][0] > means[1][0] + 1.0  # an untrained posterior leaves a wide gap for k to close
    # k = 1 is the ELBO: compare with the model's own one-sample ELBO averaged over many draws
    with torch.no_grad():
        draws = torch.stack([-(t.recon + t.kl).mean() for t in (model.elbo_terms(images) for _ in range(40))])
    assert abs(draws.mean().item() - means[1][0]) < 4 * math.hypot(draws.std().item() / math.sqrt(40), means[1][1])


def test_monte_carlo_kl_of_a_zero_flow_stack_matches_the_analytic_kl():
    torch.manual_seed(1)
    model = FlowVAE(FlowVAEConfig(latent_size=5, hidden_size=16, flow="none"))
    mu, logvar = torch.randn(6, 5), 0.5 * torch.randn(6, 5)
    n = 20000
    with torch.no_grad():
        zK, log_qK = model._push(mu, logvar, None, n, torch.Generator().manual_seed(2))
        kl_mc = log_qK - model.prior.log_prob(zK.reshape(-1, 5)).reshape(6, n)
    est, se = kl_mc.mean(1), kl_mc.std(1) / math.sqrt(n)
    exact = gaussian_kl(mu, logvar)
    assert ((est - exact).abs() < 4 * se).all(), (est, exact, se)


def test_gk_prior_log_prob_matches_univariate_margins_and_has_correct_gradients():
    torch.manual_seed(3)
    prior = GKPrior(2).double()
    with torch.no_grad():
        prior.A.copy_(torch.tensor([0.5, -1.0]))
        prior.b.copy_(torch.tensor([0.2, -0.3]))
        prior.g.copy_(torch.tensor([1.0, -0.5]))
        prior.kappa.copy_(torch.tensor([4.0, 5.0]))
    z = torch.randn(3, 2, dtype=torch.float64)
    # R = I (L_raw = 0): the joint density is the product of the univariate g-and-k margins
    A, B, g, k = prior.params()
    margins = gk.log_prob(z, A, B, g, k).sum(-1)
    torch.testing.assert_close(prior.log_prob(z), margins, atol=1e-8, rtol=1e-8)
    # gradients in every raw parameter (correlation included) and in z agree with finite differences
    with torch.no_grad():
        prior.L_raw.copy_(0.3 * torch.randn(2, 2))
    names = [n for n, _ in prior.named_parameters()]

    def f(*tensors):
        return functional_call(prior, dict(zip(names, tensors[:-1])), (tensors[-1],)).sum()

    inputs = tuple(p.detach().clone().requires_grad_() for p in prior.parameters()) + (z.clone().requires_grad_(),)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


def test_flow_vae_trains_through_fit_and_caches(images, tmp_path):
    x = images[:64].repeat(2, 1, 1, 1)
    cfg = FlowVAEConfig(latent_size=3, hidden_size=32, flow="combined", n_flows=2)
    r1 = fit(lambda: FlowVAE(cfg), x, epochs=2, batch_size=32, binarize=True, name="t", cache=tmp_path)
    assert list(r1.history.columns[:4]) == ["epoch", "loss", "recon", "kl"] and len(r1.history) == 2
    assert r1.history.loss.iloc[-1] < r1.history.loss.iloc[0]
    r2 = fit(lambda: FlowVAE(cfg), x, epochs=2, batch_size=32, binarize=True, name="t", cache=tmp_path)
    assert r2.loaded
    other = FlowVAE(FlowVAEConfig(latent_size=3, hidden_size=32, flow="radial", n_flows=2)).cache_key()
    assert other != r1.model.cache_key()


def test_vae_gan_step_logs_both_terms_and_updates_both_networks(mnist):
    x = mnist["train"].x[:96]
    torch.manual_seed(0)
    model = VAEGAN(FlowVAEConfig(latent_size=4, hidden_size=32), adv_weight=10.0)
    before_d = [p.detach().clone() for p in model.discriminator.parameters()]
    before_dec = [p.detach().clone() for p in model.decoder.parameters()]
    opts = model.make_optimizers(1e-3)
    logs = model.train_batch(x[:48], None, opts)
    assert set(logs) >= {"recon", "kl", "feature", "adversarial", "adv_share", "disc_loss"}
    assert all(math.isfinite(v) for v in logs.values())
    assert logs["adv_share"] == pytest.approx(logs["adversarial"] / logs["recon"])
    assert logs["adversarial"] > 0.01 * logs["recon"]   # weighted to matter, unlike the source's ~1e-4
    assert all(not torch.equal(a, b) for a, b in zip(before_d, model.discriminator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before_dec, model.decoder.parameters()))
    r = fit(lambda: VAEGAN(FlowVAEConfig(latent_size=4, hidden_size=32)), x, epochs=1, batch_size=48,
            cache=False)
    assert {"adversarial", "adv_share", "feature"} <= set(r.history.columns)


def test_ex_post_priors_fit_what_they_should():
    gen = torch.Generator().manual_seed(0)
    # codes from a known, skewed, correlated bivariate g-and-k (far from N(0, I))
    truth = gk.MultivariateGK([1.0, -1.0], [0.5, 1.0], [1.5, -1.0], [0.3, 0.1], [[1.0, 0.6], [0.6, 1.0]])
    codes = truth.sample((3000,), generator=gen).float()
    priors = fit_ex_post_priors(codes, n_components=3, seed=0)
    assert list(priors) == ["N(0, I)", "GMM", "g-and-k (LM)"]
    held_out = truth.sample((1000,), generator=gen)
    ll = {k: p.log_prob(held_out).mean().item() for k, p in priors.items()}
    best = truth.log_prob(held_out).mean().item()
    assert ll["N(0, I)"] < ll["GMM"] < best + 0.05 and ll["N(0, I)"] < ll["g-and-k (LM)"] < best + 0.05, ll
    assert ll["g-and-k (LM)"] > best - 0.05          # the right family, fitted well
    fitted = priors["g-and-k (LM)"].fit
    torch.testing.assert_close(torch.as_tensor(fitted.params[:, :3]),
                               torch.tensor([[1.0, 0.5, 1.5], [-1.0, 1.0, -1.0]], dtype=torch.float64),
                               atol=0.2, rtol=0)
    assert abs(fitted.R[0, 1] - 0.6) < 0.1
    for p in priors.values():
        s1, s2 = p.sample(400, 7), p.sample(400, 7)
        assert s1.shape == (400, 2) and torch.equal(s1, s2)   # seeded


def test_latent_separation_and_aggregate_codes(images):
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 4
    separated = torch.randn(400, 3, generator=gen) * 0.1 + 5 * torch.nn.functional.one_hot(labels, 4)[:, :3]
    sep = latent_separation(separated, labels)
    assert sep["knn_accuracy"] == 1.0 and sep["silhouette"] > 0.8
    mixed = latent_separation(torch.randn(400, 3, generator=gen), labels)
    assert mixed["knn_accuracy"] < 0.45 and abs(mixed["silhouette"]) < 0.1
    model = FlowVAE(FlowVAEConfig(latent_size=3, hidden_size=16, flow="planar", n_flows=2))
    c1, c2 = aggregate_codes(model, images, seed=4), aggregate_codes(model, images, seed=4)
    assert c1.shape == (len(images), 3) and torch.equal(c1, c2)


def test_bad_inputs():
    with pytest.raises(ParameterError, match="flow must be one of"):
        FlowVAEConfig(flow="coupling")
    with pytest.raises(ParameterError, match="prior"):
        FlowVAEConfig(prior="laplace")
    with pytest.raises(ParameterError, match="binary"):
        iwae_bound(FlowVAE(FlowVAEConfig(latent_size=2, hidden_size=8)), torch.rand(3, 1, 28, 28), 2)
    with pytest.raises(ParameterError, match="adv_weight"):
        VAEGAN(adv_weight=-1.0)
