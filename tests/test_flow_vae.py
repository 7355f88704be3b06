"""Flow-VAE: importance-sampled bound, Monte-Carlo KL, g-and-k prior gradients, VAE-GAN, ex-post priors, and
the flow chapter's analysis and jobs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.func import functional_call

from vaebook import gk
from vaebook.chapters import flow_vae as chapter
from vaebook.chapters import resolve
from vaebook.config import ParameterError
from vaebook.evaluate import latent_separation
from vaebook.flow_vae import (PUBLISHED_NLL, VAEGAN, FeatureDiscriminator, FlowVAE, FlowVAEConfig, GKPrior,
                              aggregate_codes, difference_and_spread, evaluate_model, ex_post_comparison,
                              ex_post_fit, fid_draws, fit_ex_post_priors, fixed_binarization, flow_verdict,
                              gains_over_baseline, iwae_bound, least_normal_dims, nll_beside_published,
                              paired_gain)
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


def test_aggregate_codes_are_seeded_posterior_draws(images):
    torch.manual_seed(0)
    model = FlowVAE(FlowVAEConfig(latent_size=3, hidden_size=16, flow="planar", n_flows=2)).train()
    c1, c2 = aggregate_codes(model, images, seed=4), aggregate_codes(model, images, seed=4)
    assert c1.shape == (len(images), 3) and torch.equal(c1, c2) and model.training  # mode restored
    with torch.no_grad():   # one batch: the same draws as posterior_sample with the same seed
        direct = model.posterior_sample(images, 1, generator=torch.Generator().manual_seed(4))[0][:, 0]
    torch.testing.assert_close(c1, direct)
    assert aggregate_codes(model, images[:0]).shape == (0, 3)


def test_feature_discriminator_is_the_mlp_with_a_feature_layer():
    d = FeatureDiscriminator()
    # 784*400 + 400, 400*256 + 256, 256 + 1 (gan.Discriminator, the conv network, has 40,705)
    assert sum(p.numel() for p in d.parameters()) == 784 * 400 + 400 + 400 * 256 + 256 + 256 + 1 == 416_913
    features, logits = d(torch.rand(5, 1, 28, 28))
    assert features.shape == (5, 256) and logits.shape == (5,)
    torch.testing.assert_close(logits, d.head(features).squeeze(-1))
    assert isinstance(VAEGAN(FlowVAEConfig(latent_size=2, hidden_size=8)).discriminator, FeatureDiscriminator)


def _fake_quality(images):
    """A stand-in for sample_quality with known values: mean intensity, its square and the image count."""
    m = images.mean().item()
    return {"fid": m, "precision": m * m, "recall": float(len(images))}


def test_evaluate_model_reports_its_parts(mnist):
    x = fixed_binarization(mnist["test"].x[:60], seed=1)
    labels = torch.arange(60) % 3
    torch.manual_seed(0)
    model = FlowVAE(FlowVAEConfig(latent_size=3, hidden_size=16, flow="radial", n_flows=2))
    ev = evaluate_model(model, nll_images=x[:20], code_images=x, labels=labels, quality=_fake_quality,
                        n_samples=30, iwae_k=4, seed=5)
    bound = iwae_bound(model, x[:20], 4, seed=5)
    with torch.no_grad():
        samples = model.decode(model.prior.sample(30, generator=torch.Generator().manual_seed(6)))
        codes = model.latent_means(x)
    sep = latent_separation(codes, labels, seed=5)
    assert ev.row["test NLL (IWAE)"] == pytest.approx(bound.nll, abs=1e-9)
    assert ev.row["test −ELBO"] == pytest.approx(bound.neg_elbo, abs=1e-9)
    torch.testing.assert_close(ev.samples, samples)
    torch.testing.assert_close(ev.codes, codes)
    assert ev.row["FID"] == pytest.approx(samples.mean().item(), rel=1e-5)
    assert ev.row["recall"] == 30.0
    assert ev.row["5-NN accuracy"] == pytest.approx(sep["knn_accuracy"])
    assert ev.row["silhouette"] == pytest.approx(sep["silhouette"], abs=1e-6)
    torch.testing.assert_close(ev.log_px, bound.log_px)     # the per-image bounds behind the NLL
    torch.testing.assert_close(ev.elbo, bound.elbo)
    assert -ev.log_px.mean().item() == pytest.approx(ev.row["test NLL (IWAE)"])
    # fid_draws with seed + 1 reproduces the table's draw; other seeds give other draws
    draws = fid_draws(model, lambda im: _fake_quality(im)["fid"], 30, [6, 7])
    assert draws[0] == pytest.approx(ev.row["FID"], rel=1e-6) and draws[1] != draws[0]
    with pytest.raises(ParameterError, match="one label per code image"):
        evaluate_model(model, nll_images=x[:20], code_images=x, labels=labels[:10], quality=_fake_quality,
                       n_samples=30, iwae_k=4)


def test_ex_post_comparison_scores_each_generator(mnist):
    train_x = fixed_binarization(mnist["train"].x[:300], seed=0)
    test_x = fixed_binarization(mnist["test"].x[:80], seed=0)
    torch.manual_seed(0)
    model = FlowVAE(FlowVAEConfig(latent_size=2, hidden_size=16))
    table, samples = ex_post_comparison(model, train_x, test_x, _fake_quality, n_samples=40, max_codes=150,
                                        n_components=2, seed=3)
    assert list(table.index) == ["N(0, I)", "GMM", "g-and-k (LM)"] and set(samples) == set(table.index)
    # N(0, I): its log-density of the held-out codes (seed + 4) in closed form, its samples from seed + 5
    codes = aggregate_codes(model, test_x, seed=7)
    closed_form = (-0.5 * (codes.double() ** 2).sum(1) - math.log(2 * math.pi)).mean().item()
    assert table.loc["N(0, I)", "test-code log-lik (nats/code)"] == pytest.approx(closed_form, rel=1e-6)
    # independent coordinates: the joint is the sum of the margins; the GMM's margins are not its joint
    assert table.loc["N(0, I)", "margins log-lik (nats/code)"] == pytest.approx(closed_form, rel=1e-6)
    assert table.loc["GMM", "margins log-lik (nats/code)"] != pytest.approx(
        table.loc["GMM", "test-code log-lik (nats/code)"], abs=1e-6)
    with torch.no_grad():
        expected = model.decode(torch.randn(40, 2, generator=torch.Generator().manual_seed(8)))
    torch.testing.assert_close(samples["N(0, I)"], expected)
    assert table.loc["GMM", "FID"] == pytest.approx(samples["GMM"].mean().item(), rel=1e-5)
    assert all(table["recall"] == 40.0)
    assert "; 150 codes" in table.loc["g-and-k (LM)", "note"]      # the LM fit saw max_codes codes
    with pytest.raises(ParameterError, match="max_codes"):
        ex_post_comparison(model, train_x, test_x, _fake_quality, n_samples=40, max_codes=0)


def test_flow_verdict_known_answers():
    nll = pd.Series({"VAE": 90.0, "planar K=2": 88.5, "radial K=8": 89.4, "g-and-k prior": 80.0})
    v = flow_verdict(nll, ["planar K=2", "radial K=8"])     # the prior model is not a flow: not a candidate
    assert (v.best, v.best_nll, v.baseline_nll) == ("planar K=2", 88.5, 90.0)
    assert v.gain == pytest.approx(1.5) and v.gain_holds and not v.target_holds
    assert "gain +1.50 nats" in str(v) and "target 2, NLL <= 85 nats: does not hold" in str(v)
    # the thresholds are inclusive: exactly 1 nat and exactly 85 nats both hold
    edge = flow_verdict({"VAE": 86.0, "f": 85.0}, ["f"])
    assert edge.gain_holds and edge.target_holds
    short = flow_verdict({"VAE": 86.0, "f": 85.01}, ["f"])
    assert not short.gain_holds and not short.target_holds
    assert flow_verdict({"VAE": 86.0, "f": 84.0}, ["f"], min_gain=3.0, target_nll=83.0).gain_holds is False
    assert flow_verdict({"VAE": 90.0, "f": float("nan")}, ["f"]) is None
    assert flow_verdict({"VAE": 90.0}, []) is None
    with pytest.raises(ParameterError, match="no NLL for"):
        flow_verdict({"planar": 88.0}, ["planar"])


def test_gains_over_baseline_known_answers():
    table = pd.DataFrame({"test NLL (IWAE)": [90.0, 88.0, 91.0], "test −ELBO": [95.0, 92.0, 93.0],
                          "FID": [10.0, 12.5, 7.0]}, index=["VAE", "A", "B"])
    gains = gains_over_baseline(table, ["VAE", "A", "B"])
    expected = pd.DataFrame({"NLL gain (nats)": [2.0, -1.0], "ELBO gain (nats)": [3.0, 2.0],
                             "ELBO − NLL gap (nats)": [4.0, 2.0], "FID change": [-2.5, 3.0]}, index=["A", "B"])
    pd.testing.assert_frame_equal(gains, expected)
    with pytest.raises(ParameterError, match="not in the table"):
        gains_over_baseline(table, ["C"])


def test_published_numbers_are_labelled_as_in_the_papers():
    published = {(src, model): v for src, model, v in PUBLISHED_NLL}
    # Burda et al. 2016, Table 1: 84.78 is the one-layer IWAE with k = 50, the k = 1 VAE is 86.76
    assert published[("Burda et al. 2016", "IWAE, k = 50, one layer")] == 84.78
    assert published[("Burda et al. 2016", "VAE, k = 1, one layer")] == 86.76
    assert published[("Burda et al. 2016", "IWAE, k = 50, two layers")] == 82.90
    # Rezende & Mohamed 2015, Table 2
    assert [published[("Rezende & Mohamed 2015", f"planar flow, K = {k}")] for k in (10, 20, 40, 80)] == \
        [87.5, 86.5, 85.7, 85.1]
    assert published[("Rezende & Mohamed 2015", "diagonal Gaussian")] == 89.9
    assert published[("Rezende & Mohamed 2015", "NICE, K = 80")] == 87.2
    table = nll_beside_published(pd.Series({"VAE": 95.5, "real": float("nan"), "planar": 94.25}), "ours")
    assert len(table) == len(PUBLISHED_NLL) + 2
    assert table.iloc[-2:].values.tolist() == [["ours", "VAE", 95.5], ["ours", "planar", 94.25]]


def test_chapter_jobs_keep_the_checkpoint_names_and_labels():
    run = resolve("flow_vae", "smoke")
    jobs = chapter.jobs(run)[:7]   # the own seed's; the replicates follow (next test)
    # the names the chapter's checkpoints had before its models became jobs (cache compatibility)
    assert [j.name for j in jobs] == ["flow_vae-VAE", "flow_vae-planarK4", "flow_vae-radialK4",
                                      "flow_vae-planar+radialK4", "flow_vae-g-and-k+planarK2",
                                      "flow_vae-g-and-kprior", "flow_vae-vaegan"]
    assert chapter.labels(run) == ["VAE", "planar K=4", "radial K=4", "planar+radial K=4", "g-and-k+planar K=2",
                                   "g-and-k prior", "VAE-GAN"]
    assert [j.binarize for j in jobs] == [True] * 6 + [False]
    assert {j.seed for j in jobs} == {0}
    vaegan = jobs[-1].model()
    assert isinstance(vaegan, VAEGAN) and vaegan.adv_weight == 2.0
    assert jobs[1].model().flow_config == FlowVAEConfig(20, 400, flow="planar", n_flows=4)
    assert chapter.flow_models(run.params) == ["planar K=4", "radial K=4", "planar+radial K=4", "g-and-k+planar K=2"]
    bare = resolve("flow_vae", "smoke", {"planar_ks": [], "radial_k": 0, "combined_k": 0, "gk_k": 0,
                                         "gk_prior": False, "vaegan": False})
    assert [j.name for j in chapter.jobs(bare)] == ["flow_vae-VAE"] and chapter.flow_models(bare.params) == []
    with pytest.raises(ParameterError, match="planar_ks must be a list of integers >= 1"):
        resolve("flow_vae", "smoke", {"planar_ks": [4, 0]})


def test_bad_inputs():
    with pytest.raises(ParameterError, match="flow must be one of"):
        FlowVAEConfig(flow="coupling")
    with pytest.raises(ParameterError, match="prior"):
        FlowVAEConfig(prior="laplace")
    with pytest.raises(ParameterError, match="binary"):
        iwae_bound(FlowVAE(FlowVAEConfig(latent_size=2, hidden_size=8)), torch.rand(3, 1, 28, 28), 2)
    with pytest.raises(ParameterError, match="adv_weight"):
        VAEGAN(adv_weight=-1.0)


def test_flow_and_density_terms_stay_fp32_under_bf16_autocast():
    """bf16 training runs the networks in bf16; the flow, its log-determinants and the prior's density must
    not be: the same inputs give the same fp32 numbers with autocast on as off."""
    torch.manual_seed(0)
    model = FlowVAE(FlowVAEConfig(latent_size=4, hidden_size=16, flow="planar", n_flows=3, prior="gk"))
    mu, logvar = torch.randn(5, 4), torch.randn(5, 4) * 0.1
    params = torch.randn(5, model.flow.n_params)
    plain = model._push(mu, logvar, params, 2, torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = model._push(mu, logvar, params, 2, torch.Generator().manual_seed(1))
        log_p = model.prior.log_prob(plain[0].reshape(-1, 4))
    assert cast[0].dtype == cast[1].dtype == torch.float32
    assert torch.equal(plain[0], cast[0]) and torch.equal(plain[1], cast[1])
    assert log_p.dtype == torch.float32


def test_ex_post_margins_are_the_margins_of_each_density():
    gen = torch.Generator().manual_seed(1)
    truth = gk.MultivariateGK([0.5, -1.0], [1.0, 0.5], [1.0, -0.5], [0.2, 0.1], [[1.0, 0.4], [0.4, 1.0]])
    codes = truth.sample((1500,), generator=gen).float()
    priors = fit_ex_post_priors(codes, n_components=3, seed=0)
    grid = torch.linspace(-12, 12, 6001, dtype=torch.float64)
    both = grid[:, None].expand(-1, 2)
    for name, prior in priors.items():
        dens = prior.marginal_log_prob(both).exp()
        assert dens.shape == (len(grid), 2)
        mass = torch.trapezoid(dens, grid, dim=0)          # every margin is a density
        torch.testing.assert_close(mass, torch.ones(2, dtype=torch.float64), atol=2e-3, rtol=0, msg=name)
    # closed forms: the normal margin, and the GMM's margin j is its mixture over (mu_cj, S_c,jj), checked
    # against sklearn's own density of a one-dimensional mixture with the same parameters
    from sklearn.mixture import GaussianMixture
    x = torch.tensor([[-1.0, 0.3], [0.0, 2.0], [1.5, -0.7]], dtype=torch.float64)
    torch.testing.assert_close(priors["N(0, I)"].marginal_log_prob(x),
                               -0.5 * x ** 2 - 0.5 * math.log(2 * math.pi))
    prior = priors["GMM"]
    full = GaussianMixture(n_components=3, covariance_type="full", random_state=0, reg_covar=1e-5)
    full.fit(codes.double().numpy())
    for j in range(2):
        one = GaussianMixture(n_components=3, covariance_type="full")
        one.weights_, one.means_ = full.weights_, full.means_[:, [j]]
        one.covariances_ = full.covariances_[:, j, j].reshape(3, 1, 1)
        one.precisions_cholesky_ = 1 / np.sqrt(one.covariances_)
        torch.testing.assert_close(prior.marginal_log_prob(x)[:, j],
                                   torch.as_tensor(one.score_samples(x[:, [j]].numpy())), atol=1e-6, rtol=0)
    # the g-and-k margin is the univariate g-and-k density with the fitted parameters
    P = torch.as_tensor(priors["g-and-k (LM)"].fit.params)
    for j in range(2):
        torch.testing.assert_close(priors["g-and-k (LM)"].marginal_log_prob(x)[:, j],
                                   gk.log_prob(x[:, j], *P[j]), atol=1e-8, rtol=0)


def test_ex_post_fit_is_what_ex_post_comparison_uses(mnist):
    train_x = fixed_binarization(mnist["train"].x[:200], seed=0)
    test_x = fixed_binarization(mnist["test"].x[:50], seed=0)
    torch.manual_seed(0)
    model = FlowVAE(FlowVAEConfig(latent_size=2, hidden_size=16))
    fit = ex_post_fit(model, train_x, max_codes=120, n_components=2, seed=3)
    keep = torch.randperm(200, generator=torch.Generator().manual_seed(3))[:120]
    torch.testing.assert_close(fit.codes, aggregate_codes(model, train_x, seed=3)[keep])
    with_fit, s1 = ex_post_comparison(model, train_x, test_x, _fake_quality, n_samples=40, seed=3, fit=fit)
    without, s2 = ex_post_comparison(model, train_x, test_x, _fake_quality, n_samples=40, max_codes=120,
                                     n_components=2, seed=3)
    cols = ["FID", "precision", "recall", "test-code log-lik (nats/code)", "margins log-lik (nats/code)"]
    pd.testing.assert_frame_equal(with_fit[cols].astype(float), without[cols].astype(float))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_least_normal_dims_ranks_by_distance_from_a_standard_normal():
    rng = np.random.default_rng(0)
    z = np.stack([rng.standard_normal(4000), 0.3 * rng.standard_normal(4000), rng.standard_normal(4000) + 3,
                  rng.standard_normal(4000) + 0.5], axis=1)
    # KS distances: ~0, about 0.34 (too narrow), about 0.93 (shifted by 3), about 0.19 (shifted by 0.5)
    assert least_normal_dims(z, 4) == [2, 1, 3, 0]
    assert least_normal_dims(torch.as_tensor(z), 2) == [2, 1]
    with pytest.raises(ParameterError):
        least_normal_dims(z[:, 0], 1)


def test_paired_gain_and_difference_and_spread_known_answers():
    base, model = torch.tensor([-90.0, -91.0, -89.0, -92.0]), torch.tensor([-89.0, -91.0, -87.0, -92.0])
    gain, se = paired_gain(base, model)        # differences 1, 0, 2, 0: mean 0.75, sd sqrt(2.75 / 3)
    assert gain == pytest.approx(0.75) and se == pytest.approx(math.sqrt(2.75 / 3) / 2)
    assert paired_gain(model, base)[0] == pytest.approx(-0.75)
    with pytest.raises(ParameterError, match="same"):
        paired_gain(base, model[:3])
    diff, spread = difference_and_spread([10.0, 12.0, 14.0], [20.0, 20.0, 23.0])
    assert diff == pytest.approx(21.0 - 12.0)
    assert spread == pytest.approx(math.hypot(2.0, math.sqrt(3.0)))     # sds 2 and sqrt(3)
    with pytest.raises(ParameterError):
        difference_and_spread([1.0], [1.0, 2.0])


def test_metric_names_of_the_model_labels():
    assert [chapter.metric_name(m) for m in ["VAE", "planar K=16", "planar+radial K=8", "g-and-k+planar K=4",
                                             "g-and-k prior", "VAE-GAN"]] == \
        ["vae", "planar_k16", "planar_radial_k8", "gk_planar_k4", "gk_prior", "vae_gan"]


# --- the headline comparison across seeds ---------------------------------------------------------------

def test_seeds_per_profile():
    assert [chapter.PROFILES[k].seeds for k in ("smoke", "default", "full")] == [2, 3, 3]
    assert chapter.PROFILES["full"].epochs == 100 and chapter.PROFILES["full"].iwae_k == 1000


def test_only_the_vae_and_the_largest_planar_model_are_replicated():
    run = resolve("flow_vae", "smoke")
    jobs = chapter.jobs(run)
    assert [(j.name, j.seed) for j in jobs] == [
        ("flow_vae-VAE", 0), ("flow_vae-planarK4", 0), ("flow_vae-radialK4", 0), ("flow_vae-planar+radialK4", 0),
        ("flow_vae-g-and-k+planarK2", 0), ("flow_vae-g-and-kprior", 0), ("flow_vae-vaegan", 0),
        ("flow_vae-VAE-seed1", 1), ("flow_vae-planarK4-seed1", 1)]
    vae1, planar1 = jobs[-2:]
    assert vae1.binarize and planar1.binarize
    assert vae1.model().flow_config == FlowVAEConfig(20, 400)
    assert planar1.model().flow_config == FlowVAEConfig(20, 400, flow="planar", n_flows=4)
    assert (vae1.epochs, vae1.batch_size, vae1.lr, vae1.threads) == (jobs[0].epochs, jobs[0].batch_size,
                                                                     jobs[0].lr, jobs[0].threads)
    # a replicate trains on its own seed's draw of the 1,000 training images
    x1, y1 = vae1.data()
    rep = chapter.chapter_data(run.params.replicate(1)).train
    assert torch.equal(x1, rep.x) and torch.equal(y1, rep.y)
    assert not torch.equal(x1, jobs[0].data()[0])
    # default: the largest K of planar_ks, whatever its position, for seeds 1 and 2
    default = resolve("flow_vae", "default", {"planar_ks": [16, 2], "seed": 5})
    names = [(j.name, j.seed) for j in chapter.jobs(default)][8:]
    assert names == [("flow_vae-VAE-seed6", 6), ("flow_vae-planarK16-seed6", 6),
                     ("flow_vae-VAE-seed7", 7), ("flow_vae-planarK16-seed7", 7)]
    assert chapter.replicated_models(default.params) == ["VAE", "planar K=16"]
    # no planar model: nothing is replicated
    bare = resolve("flow_vae", "default", {"planar_ks": []})
    assert [j.seed for j in chapter.jobs(bare)] == [0] * 6   # VAE, radial, combined, g-and-k, prior, VAE-GAN
    assert chapter.replicated_models(bare.params) == ["VAE"] and chapter.replicate_seeds(bare.params) == []


def test_split_fits_by_seed():
    run = resolve("flow_vae", "default")
    fits = [f"fit{i}" for i in range(12)]    # stand-ins, in the order of jobs()
    results, by_seed = chapter.split_fits(run.params, fits)
    assert list(results) == chapter.labels(run) and list(results.values()) == fits[:8]
    assert by_seed == {0: {"VAE": "fit0", "planar K=16": "fit2"}, 1: {"VAE": "fit8", "planar K=16": "fit9"},
                       2: {"VAE": "fit10", "planar K=16": "fit11"}}
    with pytest.raises(ValueError, match="i.e. 12 fits, got 11"):
        chapter.split_fits(run.params, fits[:11])
    with pytest.raises(ValueError, match="got 13"):   # the classifier left in
        chapter.split_fits(run.params, fits + ["classifier"])
    bare = resolve("flow_vae", "smoke", {"planar_ks": []})
    results, by_seed = chapter.split_fits(bare.params, fits[:6])
    assert by_seed == {0: {"VAE": "fit0"}}


def test_seed_gains_known_answers():
    bounds = {0: {"VAE": torch.tensor([-90.0, -92.0, -91.0, -93.0]),
                  "planar K=4": torch.tensor([-89.0, -91.0, -91.0, -92.0])},
              3: {"VAE": torch.tensor([-95.0, -97.0]), "planar K=4": torch.tensor([-96.0, -96.5])}}
    table = chapter.seed_gains(bounds, "VAE", "planar K=4")
    assert list(table.index) == [0, 3] and table.index.name == "seed"
    assert list(table.columns) == ["VAE", "planar K=4", "gain", "± s.e."]
    # seed 0: NLL 91.5 and 90.75; differences 1, 1, 0, 1 (mean 0.75, sd 0.5): s.e. 0.25
    # seed 3: NLL 96 and 96.25; differences -1, 0.5 (mean -0.25, sd 1.5 / sqrt 2): s.e. 0.75
    np.testing.assert_allclose(table["VAE"], [91.5, 96.0])
    np.testing.assert_allclose(table["planar K=4"], [90.75, 96.25])
    np.testing.assert_allclose(table["gain"], [0.75, -0.25])
    np.testing.assert_allclose(table["± s.e."], [0.25, 0.75])
    only = chapter.seed_gains(bounds, "VAE")
    assert list(only.columns) == ["VAE"]


def test_seed_bounds_score_every_seed_like_the_results_table():
    run = resolve("flow_vae", "smoke", {"iwae_subset": 20, "iwae_k": 4})
    p = run.params
    d = chapter.chapter_data(p)
    torch.manual_seed(0)
    models = [FlowVAE(FlowVAEConfig(latent_size=3, hidden_size=16, flow=f, n_flows=2)) for f in ("none", "planar")]
    fit = lambda m: type("Fit", (), {"model": m})()   # noqa: E731
    by_seed = {0: {"VAE": fit(models[0]), "planar K=4": fit(models[1])}, 1: {"VAE": fit(models[1])}}
    bounds = chapter.seed_bounds(p, by_seed)
    assert [list(b) for b in bounds.values()] == [["VAE", "planar K=4"], ["VAE"]]
    # the own seed's number is the results table's: evaluate_model as evaluate_models calls it
    ev = evaluate_model(models[0], nll_images=d.test_bin[d.iwae_idx], code_images=d.test_bin[:300],
                        labels=d.test.y[:300], quality=_fake_quality, n_samples=10, iwae_k=p.iwae_k, seed=p.seed)
    torch.testing.assert_close(bounds[0]["VAE"], ev.log_px)
    assert chapter.seed_gains(bounds)["VAE"].iloc[0] == pytest.approx(ev.row["test NLL (IWAE)"])
    # every seed is scored on the same images with the same importance-sampling noise
    torch.testing.assert_close(bounds[1]["VAE"], bounds[0]["planar K=4"])
    # the own seed's known bounds are reused, a replicate's never
    known = {"VAE": torch.full((20,), -1.0)}
    again = chapter.seed_bounds(p, by_seed, known)
    assert torch.equal(again[0]["VAE"], known["VAE"]) and torch.equal(again[1]["VAE"], bounds[1]["VAE"])
