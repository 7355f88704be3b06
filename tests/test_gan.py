"""The GAN-vs-VAE study's four networks against the spec (shapes and parameter counts worked out by hand
below), the GAN's training step, and the chapter's models declared as jobs."""

import dataclasses
import math
import pickle
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from vaebook import chapters
from vaebook.chapters import gan_vs_vae
from vaebook.classifier import MNISTClassifier
from vaebook.config import ParameterError
from vaebook.gan import GAN, Discriminator, Generator
from vaebook.jobs import Hooks, Job, run_job
from vaebook.models import VAE, ConvDecoder, ConvEncoder, VAEConfig, count_parameters
from vaebook.sample_analysis import quality_tracker, samples_snapshot
from vaebook.train import fit


def conv_params(c_in, c_out, k):
    """Weights k*k*c_in per output channel plus one bias each (same for transposed convolutions)."""
    return k * k * c_in * c_out + c_out


def dense_params(n_in, n_out):
    return n_in * n_out + n_out


def trace(layers: nn.Sequential, x):
    """Output shape (without batch) and parameter count of each parameterised layer, in order."""
    out = []
    for layer in layers:
        x = layer(x)
        n = sum(p.numel() for p in layer.parameters())
        if n:
            out.append((type(layer).__name__, tuple(x.shape[1:]), n))
    return out, x


def test_hand_counts():
    assert conv_params(1, 32, 3) == 320
    assert dense_params(3136, 1) == 3137


def test_vae_encoder_matches_spec():
    enc = ConvEncoder(16)
    layers, h = trace(enc.features, torch.zeros(2, 1, 28, 28))
    assert layers == [
        ("Conv2d", (32, 14, 14), conv_params(1, 32, 3)),       # 320
        ("Conv2d", (64, 7, 7), conv_params(32, 64, 3)),        # 18,496
        ("Linear", (128,), dense_params(7 * 7 * 64, 128)),     # 401,536
    ]
    assert enc.mu(h).shape == enc.logvar(h).shape == (2, 16)
    expected = 320 + 18_496 + 401_536 + 2 * dense_params(128, 16)
    assert expected == 424_480
    assert count_parameters(enc) == expected


def test_vae_decoder_matches_spec():
    dec = ConvDecoder(16)
    layers, out = trace(dec.net, torch.zeros(2, 16))
    assert layers == [
        ("Linear", (7 * 7 * 64,), dense_params(16, 3136)),     # 53,312
        ("ConvTranspose2d", (64, 14, 14), conv_params(64, 64, 3)),  # 36,928
        ("ConvTranspose2d", (32, 28, 28), conv_params(64, 32, 3)),  # 18,464
        ("ConvTranspose2d", (1, 28, 28), conv_params(32, 1, 3)),    # 289
    ]
    assert count_parameters(dec) == 108_993
    vae = VAE(VAEConfig(arch="conv", latent_size=16))
    assert count_parameters(vae) == 424_480 + 108_993
    assert vae.decode(torch.zeros(3, 16)).shape == (3, 1, 28, 28)


def test_discriminator_matches_spec():
    d = Discriminator()
    layers, out = trace(d.net, torch.zeros(2, 1, 28, 28))
    assert layers == [
        ("Conv2d", (64, 14, 14), conv_params(1, 64, 3)),       # 640
        ("Conv2d", (64, 7, 7), conv_params(64, 64, 3)),        # 36,928
        ("Linear", (1,), dense_params(3136, 1)),               # 3,137
    ]
    assert count_parameters(d) == 40_705            # the Keras model's summary
    assert [m.p for m in d.modules() if isinstance(m, nn.Dropout)] == [0.4, 0.4]
    assert [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)] == [0.2, 0.2]
    assert d(torch.zeros(5, 1, 28, 28)).shape == (5,)


def test_generator_matches_spec():
    g = Generator()
    layers, out = trace(g.net, torch.zeros(2, 100))
    assert layers == [
        ("Linear", (7 * 7 * 128,), dense_params(100, 6272)),          # 633,472
        ("ConvTranspose2d", (128, 14, 14), conv_params(128, 128, 4)),  # 262,272
        ("ConvTranspose2d", (128, 28, 28), conv_params(128, 128, 4)),  # 262,272
        ("Conv2d", (1, 28, 28), conv_params(128, 1, 7)),               # 6,273
    ]
    assert count_parameters(g) == 1_164_289         # the Keras model's summary
    assert [m.negative_slope for m in g.modules() if isinstance(m, nn.LeakyReLU)] == [0.2, 0.2, 0.2]
    gan = GAN()
    s = gan.sample(7, torch.Generator().manual_seed(0))
    assert s.shape == (7, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert torch.equal(s, gan.sample(7, torch.Generator().manual_seed(0)))   # seeded samples repeat


@pytest.mark.parametrize("disc_hidden", [0, 32])
def test_train_batch_updates_both_networks(disc_hidden):
    torch.manual_seed(0)
    gan = GAN(disc_hidden=disc_hidden)
    opt_d, opt_g = gan.make_optimizers(2e-4)
    assert opt_d.defaults["betas"] == opt_g.defaults["betas"] == (0.5, 0.999)
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in gan.discriminator.parameters()}
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in gan.generator.parameters()}
    d_before = [p.detach().clone() for p in gan.discriminator.parameters()]
    g_before = [p.detach().clone() for p in gan.generator.parameters()]
    x = torch.rand(16, 1, 28, 28)
    logs = gan.train_batch(x, None, [opt_d, opt_g])
    assert set(logs) == {"d_loss", "g_loss", "d_acc_real", "d_acc_fake"}
    assert 0 <= logs["d_acc_real"] <= 1 and 0 <= logs["d_acc_fake"] <= 1
    # at initialisation D outputs ~0.5 for everything: d_loss ~ 2 ln 2, g_loss ~ ln 2
    assert logs["d_loss"] == pytest.approx(2 * 0.6931, abs=0.1)
    assert logs["g_loss"] == pytest.approx(0.6931, abs=0.1)
    assert all(not torch.equal(a, b) for a, b in zip(d_before, gan.discriminator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(g_before, gan.generator.parameters()))
    assert all(p.requires_grad for p in gan.parameters())


def test_generator_loss_is_non_saturating():
    # the G step's loss is -log D(G(z)): for a D that rejects every fake with logit -5 it is
    # softplus(5) = 5.0067, where the saturating log(1 - D) would be ~ -0.0067 with a vanishing gradient
    gan = GAN(dropout=0.0)
    with torch.no_grad():
        for p in gan.discriminator.parameters():
            p.zero_()
        gan.discriminator.net[-1].bias.fill_(-5.0)
    logs = gan.train_batch(torch.rand(8, 1, 28, 28), None, gan.make_optimizers(1e-12))
    assert logs["g_loss"] == pytest.approx(torch.nn.functional.softplus(torch.tensor(5.0)).item(), rel=1e-4)
    assert logs["d_acc_fake"] == 1.0 and logs["d_acc_real"] == 0.0


def test_gan_trains_through_fit(tmp_path):
    x = torch.rand(48, 1, 28, 28)
    res = fit(GAN, x, epochs=1, batch_size=16, lr=2e-4, seed=0, device="cpu", cache=tmp_path, name="gan-test",
              snapshot=lambda m, e: {"samples": m.sample(4, torch.Generator().manual_seed(0))})
    assert {"d_loss", "g_loss", "d_acc_real", "d_acc_fake"} <= set(res.history.columns)
    assert res.snapshots["samples"][0].shape == (4, 1, 28, 28)
    again = fit(GAN, x, epochs=1, batch_size=16, lr=2e-4, seed=0, device="cpu", cache=tmp_path, name="gan-test")
    assert again.loaded
    assert GAN(noise_size=50).cache_key() != GAN().cache_key()


def test_gan_rejects_bad_config():
    with pytest.raises(ParameterError, match="noise_size"):
        GAN(noise_size=0)
    with pytest.raises(ParameterError, match="dropout"):
        GAN(dropout=1.0)
    with pytest.raises(ParameterError, match="width must be an integer >= 1, got 0"):
        GAN(width=0)
    with pytest.raises(ParameterError, match="disc_hidden must be an integer >= 0, got -1"):
        GAN(disc_hidden=-1)
    with pytest.raises(ParameterError, match="hidden must be an integer >= 0"):
        Discriminator(hidden=2.5)


def test_averaged_generator_follows_the_formula_and_leaves_the_game_unchanged():
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))

    def train(ema, steps=3):
        torch.manual_seed(0)
        gan = GAN(width=8, dropout=0.0, ema=ema)
        optimizers = gan.make_optimizers(1e-3)
        trajectory = [[p.detach().clone() for p in gan.generator.parameters()]]
        for _ in range(steps):
            gan.train_batch(x, None, optimizers)
            trajectory.append([p.detach().clone() for p in gan.generator.parameters()])
        return gan, trajectory

    plain, _ = train(0.0)
    averaged, trajectory = train(0.9)
    # the average is only read, never trained against: both players move exactly as without it
    for a, b in ((plain.generator, averaged.generator), (plain.discriminator, averaged.discriminator)):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    # theta_ema after t steps, computed here from the generator's weights after each step
    expected = trajectory[0]
    for t, weights in enumerate(trajectory[1:], start=1):
        d = min(0.9, (1 + t) / (10 + t))
        expected = [d * e + (1 - d) * w for e, w in zip(expected, weights)]
    for e, p in zip(expected, averaged.generator_ema.parameters()):
        torch.testing.assert_close(p, e)
    assert int(averaged.g_steps) == 3 and not any(p.requires_grad for p in averaged.generator_ema.parameters())
    # samples come from the average; without ema from the generator itself
    z = torch.randn(4, 100)
    assert torch.equal(averaged.decode(z), torch.sigmoid(averaged.generator_ema(z)))
    assert not torch.equal(averaged.decode(z), torch.sigmoid(averaged.generator(z)))
    assert torch.equal(plain.decode(z), torch.sigmoid(plain.generator(z))) and not hasattr(plain, "generator_ema")
    assert averaged.cache_key()["ema"] == 0.9 and "ema" not in plain.cache_key()
    for bad in (1.0, -0.1, True, "0.9"):
        with pytest.raises(ParameterError, match="ema must be a number in \\[0, 1\\)"):
            GAN(ema=bad)


def test_width_scales_the_generator_and_enters_the_cache_key():
    g = GAN(width=32).generator
    # dense 100 -> 7*7*32, two 4x4 transposed convolutions 32 -> 32, a 7x7 convolution 32 -> 1
    assert count_parameters(g) == (100 + 1) * 7 * 7 * 32 + 2 * (32 * 32 * 16 + 32) + (32 * 49 + 1)
    assert g(torch.randn(2, 100)).shape == (2, 1, 28, 28)
    assert GAN(width=32).cache_key() != GAN().cache_key()
    assert "width" not in GAN().cache_key()        # the source's width keeps its old key



def test_discriminator_hidden_layer_makes_the_read_out_nonlinear():
    d = Discriminator(dropout=0.0, hidden=256)
    layers, out = trace(d.net, torch.zeros(2, 1, 28, 28))
    assert layers == [
        ("Conv2d", (64, 14, 14), conv_params(1, 64, 3)),
        ("Conv2d", (64, 7, 7), conv_params(64, 64, 3)),
        ("Linear", (256,), dense_params(3136, 256)),            # 803,072
        ("Linear", (1,), dense_params(256, 1)),                 # 257
    ]
    assert count_parameters(d) == 40_705 - 3137 + 803_072 + 257
    assert [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)] == [0.2, 0.2, 0.2]
    # the source's read-out is affine in the 7x7x64 features, the hidden layer's is not: halfway between two
    # feature vectors the linear read-out's logit is halfway between their logits, the hidden one's is not
    torch.manual_seed(0)
    for hidden, affine in ((0, True), (256, False)):
        readout = Discriminator(dropout=0.0, hidden=hidden).net[6:]
        a, b = torch.randn(2, 64, 7, 7), torch.randn(2, 64, 7, 7)
        mid = readout((a + b) / 2)
        assert torch.allclose(mid, (readout(a) + readout(b)) / 2, atol=1e-5) is affine
    gan = GAN(width=32, disc_hidden=256)
    assert gan.cache_key()["disc_hidden"] == 256 and "disc_hidden" not in GAN(width=32).cache_key()


def _tracking_hooks(reference, device):
    return Hooks(epoch_end=quality_tracker(MNISTClassifier().eval(), reference, n_samples=8, seed=1),
                 snapshot=samples_snapshot(4, seed=2))


def test_gan_job_with_the_chapter_hooks(tmp_path):
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    job = Job(name="gan-hooks", model=GAN, data=partial(tuple, (x, None)), epochs=2, batch_size=16, lr=2e-4,
              device="cpu", hooks=partial(_tracking_hooks, x[:10]))
    res = run_job(pickle.loads(pickle.dumps(job)), cache=tmp_path)
    assert list(res.history["fid_8"].notna()) == [True, True] and (res.history["fid_8"] > 0).all()
    # the last snapshot is the trained generator's samples from the snapshot's seeded noise
    assert len(res.snapshots["samples"]) == 2
    assert torch.equal(res.snapshots["samples"][-1], res.model.sample(4, torch.Generator().manual_seed(2)))
    assert not torch.equal(res.snapshots["samples"][0], res.snapshots["samples"][1])   # the generator learned
    again = run_job(job, cache=tmp_path)
    assert again.loaded and again.history.drop(columns="seconds").equals(res.history.drop(columns="seconds"))


def test_chapter_declares_classifier_then_a_vae_and_a_gan_per_seed():
    run = chapters.resolve("gan_vs_vae", "smoke")
    assert run.params.seed_values() == [0, 1]
    jobs = gan_vs_vae.jobs(run)
    assert [j.name for j in jobs] == ["mnist-classifier", "gan_vs_vae-vae", "gan_vs_vae-gan",   # classifier first
                                      "gan_vs_vae-vae-seed1", "gan_vs_vae-gan-seed1"]
    clf_job, vae_job, gan_job, vae1, gan1 = pickle.loads(pickle.dumps(jobs))
    assert (clf_job.epochs, clf_job.lr_schedule, clf_job.data_key["subset"], clf_job.seed) == (1, "onecycle", 5000, 0)
    track = {"tracker": "quality500-v2", "classifier": [MNISTClassifier().cache_key(), 1, 5000, 0], "n_track": 500,
             "reference": 300}
    assert vae_job.extra_key == gan_job.extra_key == track
    assert vae1.extra_key == gan1.extra_key == {**track, "reference_seed": 0}   # scored like seed 0's models
    assert (vae_job.seed, gan_job.seed, vae1.seed, gan1.seed) == (0, 0, 1, 1)
    assert vae_job.model().config == VAEConfig(latent_size=16, arch="conv", loss_reduction="sum")
    gan = gan_job.model()
    assert (gan.width, gan.dropout) == (32, 0.0) and count_parameters(gan.generator) == 192_769
    assert (gan_job.epochs, gan_job.batch_size, gan_job.lr, gan.ema) == (1, 64, 1e-3, 0.995)
    vae_x, _ = vae_job.data()
    gan_x, _ = gan_job.data()
    assert len(vae_x) == 1000 and torch.equal(gan_x, vae_x[:256])    # the GAN's images are the VAE's first
    assert not torch.equal(vae1.data()[0], vae_x)                     # each seed draws its own subset
    fits = [object()] + [f"fit{i}" for i in range(4)]
    assert gan_vs_vae.fits_by_seed(run.params, fits) == {0: ("fit0", "fit1"), 1: ("fit2", "fit3")}
    with pytest.raises(ValueError, match="expected a VAE and a GAN for each of 2 seeds, got 2 fits"):
        gan_vs_vae.fits_by_seed(run.params, fits[:3])


def test_full_profile_keeps_the_source_networks():
    gan = gan_vs_vae.jobs(chapters.resolve("gan_vs_vae", "full"))[2].model()
    assert count_parameters(gan.generator) == 1_164_289 and gan.dropout == 0.4
    assert count_parameters(gan.discriminator) == 40_705 and gan.r1_gamma == 0.0    # linear read-out, no R1
    assert gan.ema == 0.0 and gan.sampler is gan.generator                         # samples from G itself
    default = gan_vs_vae.jobs(chapters.resolve("gan_vs_vae", "smoke"))[2].model()
    assert default.disc_hidden == gan_vs_vae.DEFAULT.gan_disc_hidden > 0
    assert default.r1_gamma == gan_vs_vae.DEFAULT.gan_r1_gamma > 0
    assert default.ema == gan_vs_vae.DEFAULT.gan_ema > 0 and default.sampler is default.generator_ema


def test_chapter_profiles_reject_what_the_notebook_rejected():
    with pytest.raises(ParameterError, match="vae_train_subset must be an integer >= 100"):
        chapters.resolve("gan_vs_vae", "smoke", {"vae_train_subset": 50})
    with pytest.raises(ParameterError, match="gan_batch_size must be an integer >= 2"):
        chapters.resolve("gan_vs_vae", "smoke", {"gan_batch_size": 1})
    with pytest.raises(ParameterError, match="gan_disc_hidden must be an integer >= 0"):
        chapters.resolve("gan_vs_vae", "smoke", {"gan_disc_hidden": -3})
    with pytest.raises(ParameterError, match="gan_r1_gamma"):
        chapters.resolve("gan_vs_vae", "smoke", {"gan_r1_gamma": -1})
    with pytest.raises(ParameterError, match="gan_ema must be a finite number >= 0 and <= 0.9999, got 1"):
        chapters.resolve("gan_vs_vae", "smoke", {"gan_ema": 1})
    with pytest.raises(ParameterError, match="n_samples must be an integer >= 100 and <= 10,000"):
        chapters.resolve("gan_vs_vae", "smoke", {"n_samples": 20000})
    with pytest.raises(ParameterError, match=r"vae_loss must be one of \['sum', 'mean'\]"):
        chapters.resolve("gan_vs_vae", "smoke", {"vae_loss": "max"})


def test_sample_in_batches_on_the_cpu():
    gan = GAN().train()
    whole = gan.sample(7, torch.Generator().manual_seed(0))
    torch.testing.assert_close(gan.sample(7, torch.Generator().manual_seed(0), batch_size=3), whole)
    z = torch.randn(7, 100, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(whole, torch.sigmoid(gan.generator(z)).detach())   # the noise the seed gives
    assert whole.device.type == "cpu" and gan.training                               # mode restored
    assert gan.sample(0).shape == (0, 1, 28, 28)


def test_parameter_table_against_the_source():
    table = gan_vs_vae.parameter_table(VAE(VAEConfig(arch="conv", latent_size=16)), GAN())
    assert list(table.index) == ["GAN generator", "GAN discriminator", "VAE encoder", "VAE decoder"]
    assert table["source"].tolist() == [1_164_289, 40_705, 424_480, 108_993]
    assert table["here"].tolist() == table["source"].tolist() and table["same"].all()
    smaller = gan_vs_vae.parameter_table(VAE(VAEConfig(arch="conv", latent_size=8)), GAN())
    assert smaller["same"].tolist() == [True, True, False, False]           # 8 latent dimensions


def test_discriminator_scores_known_answers_and_eval_mode():
    from vaebook.gan import discriminator_scores

    gan = GAN()
    last = gan.discriminator.net[-1]
    real, fake = torch.rand(6, 1, 28, 28), torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(0.0)                                 # D = 1/2 for every image
    s = discriminator_scores(gan, real, fake, batch_size=4)
    assert s["d_loss"] == pytest.approx(2 * math.log(2))
    assert s["d_acc_real"] == 0 and s["d_acc_fake"] == 0      # logit 0 is neither > 0 nor < 0
    with torch.no_grad():
        last.bias.fill_(2.0)                                 # D = sigmoid(2) everywhere: calls all real
    s = discriminator_scores(gan, real, fake)
    assert s["d_loss"] == pytest.approx(math.log1p(math.exp(-2)) + math.log1p(math.exp(2)))
    assert s["d_acc_real"] == 1 and s["d_acc_fake"] == 0
    # a trained-looking D: against the loss computed by hand from eval-mode logits; dropout off, mode kept
    gan = GAN()
    gan.train()
    s = discriminator_scores(gan, real, fake, batch_size=3)
    assert gan.discriminator.training
    gan.discriminator.eval()
    with torch.no_grad():
        p_real, p_fake = torch.sigmoid(gan.discriminator(real)).double(), torch.sigmoid(gan.discriminator(fake)).double()
    expected = -torch.log(p_real).mean() - torch.log(1 - p_fake).mean()
    assert s["d_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert s["d_acc_real"] == pytest.approx((p_real > 0.5).double().mean().item())
    with pytest.raises(ValueError, match="real and fake"):
        discriminator_scores(gan, real[:0], fake)


def test_formatted_rows():
    import pandas as pd

    table = pd.DataFrame({"VAE": [20000, 1.23456, True], "GAN": [12288, 10.0, False]},
                         index=["images", "seconds", "from cache"], dtype=object)
    out = gan_vs_vae.formatted(table, {"images": ",.0f"}, default=".2f")
    assert out.to_dict() == {"VAE": {"images": "20,000", "seconds": "1.23", "from cache": "yes"},
                             "GAN": {"images": "12,288", "seconds": "10.00", "from cache": "no"}}


def test_recipe_reading_names_the_changes_that_mattered():
    import pandas as pd

    table = pd.DataFrame({"FID": [270.0, 180.0, 175.0, 160.0], "precision": [0.4, 0.38, 0.39, 0.44],
                          "train s": [320.0, 120.0, 60.0, 80.0], "last D loss": [1.38, 1.29, 1.2, 1.22],
                          "last D acc": [0.54, 0.64, 0.71, 0.69]},
                         index=["1. source", "2. narrow", "3. no dropout", "4. lr"])
    text = gan_vs_vae.recipe_reading(table, 17.66)
    assert "ended with FID 270.0, precision 0.40 and its discriminator at loss 1.38 (mean accuracy 54%" in text
    assert 'lowered the FID most was "2. narrow" (270.0 → 180.0)' in text          # -90, against -5 and -15
    assert 'raised the precision most was "4. lr" (0.39 → 0.44)' in text            # +0.05, against -0.02 and +0.01
    assert 'cut the training time most was "2. narrow" (2.7× faster)' in text      # 320/120 against 120/60 = 2.0
    assert "reached FID 160.0 and precision 0.44 in 0.25 of the source recipe's training time" in text
    assert "FID spread over 17.7 points, so a smaller difference" in text
    with pytest.raises(ValueError, match="at least two rows"):
        gan_vs_vae.recipe_reading(table.iloc[:1], 10.0)


def test_recipe_reading_names_a_collapsed_row_and_compares_nothing_with_it():
    import pandas as pd

    # row 3 collapsed (recall 0: precision 1.0 and FID 900 describe one blob); row 4 trained again
    table = pd.DataFrame({"FID": [270.0, 160.0, 900.0, 55.0], "precision": [0.4, 0.44, 1.0, 0.58],
                          "recall": [0.16, 0.42, 0.0, 0.8], "train s": [320.0, 80.0, 120.0, 130.0],
                          "last D loss": [1.38, 1.23, 0.0, 1.16], "last D acc": [0.54, 0.69, 1.0, 0.77]},
                         index=["1. source", "2. lr", "3. hidden", "4. r1"])
    text = gan_vs_vae.recipe_reading(table, 10.0)
    # only 1 -> 2 is a comparison between two trained rows (2 -> 3 and 3 -> 4 involve the collapsed row)
    assert 'lowered the FID most was "2. lr" (270.0 → 160.0)' in text
    assert 'raised the precision most was "2. lr" (0.40 → 0.44)' in text
    assert ('Run "3. hidden" collapsed: recall 0.00, with its discriminator at loss 0.00 (mean accuracy 100%), so '
            'its FID and precision (900.0, 1.00) describe no digits.') in text
    assert ('The next change, "4. r1", trained again: FID 55.0, precision 0.58, discriminator loss 1.16, against '
            'FID 160.0 and precision 0.44 before the collapsed run\'s change.') in text
    assert "No two neighbouring runs" in gan_vs_vae.recipe_reading(table.iloc[[0, 2]], 10.0)


def test_recipe_table_is_one_column_per_row_with_formatted_scores():
    import pandas as pd

    table = pd.DataFrame({"G params": [1164289, 192769], "steps": [1536, 1876], "FID": [274.83, 159.09],
                          "last D acc": [0.5368, 0.688]}, index=["1. source recipe", "5. learning rate 5e-4"])
    shown = gan_vs_vae.recipe_table(table)
    assert list(shown.columns) == ["1", "5"] and "change" not in shown.index
    assert gan_vs_vae.recipe_legend(table) == "**1** source recipe; **5** learning rate 5e-4."
    assert shown.loc["G params"].tolist() == ["1,164,289", "192,769"]
    assert shown.loc["FID"].tolist() == ["274.8", "159.1"] and shown.loc["last D acc"].tolist() == ["54%", "69%"]
    nine = pd.DataFrame({"FID": range(9)}, index=[f"{i}. change {i}" for i in range(1, 10)])
    assert [list(t.columns) for t in gan_vs_vae.recipe_tables(nine)] == [["1", "2", "3", "4", "5"],
                                                                         ["6", "7", "8", "9"]]
    assert [len(t.columns) for t in gan_vs_vae.recipe_tables(nine, max_columns=4)] == [3, 3, 3]
    assert [list(t.columns) for t in gan_vs_vae.recipe_tables(nine.iloc[:2])] == [["1", "2"]]


def test_reference_profile_differs_from_the_default_only_in_training_budget():
    default, reference = gan_vs_vae.PROFILES["default"], gan_vs_vae.PROFILES["reference"]
    assert gan_vs_vae.scored_alike(default, reference)
    assert reference.gan_epochs > default.gan_epochs and reference.vae_epochs > default.vae_epochs
    assert not gan_vs_vae.scored_alike(default, gan_vs_vae.PROFILES["smoke"])  # another classifier and n


def _record(profile, fid_gan, prec_gan, fid_vae, prec_vae):
    return {"profile": profile, "metrics": {"fid_gan": fid_gan, "precision_gan": prec_gan, "fid_vae": fid_vae,
                                            "precision_vae": prec_vae}}


def test_budget_reading_states_directions_that_hold_on_every_seed():
    default = gan_vs_vae.PROFILES["default"]
    build = _record("default", [110.0, 120.0, 100.0], [0.41, 0.46, 0.43], [230.0, 210.0, 270.0], [0.89, 0.84, 0.92])
    ref = _record("reference", [78.0, 79.0, 69.0], [0.42, 0.39, 0.38], [98.0, 101.0, 100.0], [0.77, 0.76, 0.79])
    text = gan_vs_vae.budget_reading(build, ref, default)
    assert "the GAN's mean FID went from 110.0 to 75.3 and its mean precision from 0.43 to 0.40" in text
    assert ("The GAN's FID fell on every seed and its precision changed by less than the spread of the seeds; "
            "the VAE's FID fell on every seed and its precision fell on every seed.") in text
    assert "without raising its precision" in text
    # a precision that rose on every seed: no such remark
    risen = _record("reference", [78.0, 79.0, 69.0], [0.61, 0.65, 0.62], [98.0, 101.0, 100.0], [0.77, 0.76, 0.79])
    text = gan_vs_vae.budget_reading(build, risen, default)
    assert "its precision rose on every seed" in text and "without raising" not in text
    # precision within the seeds' spread but already above the target on a seed: no claim that it is missed
    met = _record("reference", [78.0, 79.0, 69.0], [0.42, 0.39, 0.61], [98.0, 101.0, 100.0], [0.77, 0.76, 0.79])
    assert "without raising" not in gan_vs_vae.budget_reading(build, met, default)
    # a build that trained as long as the reference: no remark on longer training
    long_build = dataclasses.replace(default, gan_epochs=15, vae_epochs=10)
    assert "without raising" not in gan_vs_vae.budget_reading(build, ref, long_build)


def test_budget_reading_when_there_is_nothing_to_compare():
    smoke = gan_vs_vae.PROFILES["smoke"]
    build = _record("smoke", [1.0], [0.5], [2.0], [0.5])
    reference = _record("reference", [1.0], [0.5], [2.0], [0.5])
    assert "no reference run" in gan_vs_vae.budget_reading(build, None, smoke)
    assert "not compared" in gan_vs_vae.budget_reading(build, reference, smoke)  # another classifier and n
    assert "own profile" in gan_vs_vae.budget_reading(reference, reference, gan_vs_vae.PROFILES["reference"])


def _one_d_step(gan: GAN, x: torch.Tensor, seed: int = 0) -> list[torch.Tensor]:
    """D's parameters after one train_batch with plain SGD at lr 1 for D (so the change is minus the
    gradient) and a frozen G (lr 0)."""
    opt_d = torch.optim.SGD(gan.discriminator.parameters(), lr=1.0)
    opt_g = torch.optim.SGD(gan.generator.parameters(), lr=0.0)
    torch.manual_seed(seed)
    gan.train_batch(x, None, [opt_d, opt_g])
    return [p.detach().clone() for p in gan.discriminator.parameters()]


def test_r1_penalty_matches_an_independent_gradient_of_the_squared_input_gradient():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 28, 28)
    base = GAN(width=8, dropout=0.0, disc_hidden=16)
    start = {k: v.clone() for k, v in base.state_dict().items()}
    gamma, every = 3.0, 4
    with_r1 = GAN(width=8, dropout=0.0, disc_hidden=16, r1_gamma=gamma, r1_every=every)
    with_r1.load_state_dict({**start, "d_steps": torch.zeros((), dtype=torch.long)})
    before = [p.detach().clone() for p in base.discriminator.parameters()]
    plain = _one_d_step(base, x)
    penalised = _one_d_step(with_r1, x)

    # expected: the gradient in D's parameters of every * gamma / 2 * mean_i ||d logit_i / d x_i||^2,
    # the input gradient taken per image with torch.func (jacrev), not with the model's create_graph
    from torch.func import functional_call, grad, jacrev, vmap
    names = [n for n, _ in base.discriminator.named_parameters()]
    d = GAN(width=8, dropout=0.0, disc_hidden=16).discriminator

    def penalty(params):
        logit = lambda xi: functional_call(d, dict(zip(names, params)), (xi.unsqueeze(0),)).squeeze(0)
        jac = vmap(jacrev(logit))(x)
        return every * gamma / 2 * jac.square().sum(dim=(1, 2, 3)).mean()

    expected = grad(penalty)(tuple(before))
    for b, p, q, e in zip(before, plain, penalised, expected):
        # SGD at lr 1: (params with R1) - (params without) = -(gradient of the penalty)
        torch.testing.assert_close(p - q, e, rtol=1e-4, atol=1e-6)
    assert any(e.abs().max() > 1e-4 for e in expected)       # the penalty really moved D
    assert int(with_r1.d_steps) == 1


def test_r1_penalty_is_lazy_and_its_step_count_is_saved():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    base = GAN(width=8, dropout=0.0)
    lazy = GAN(width=8, dropout=0.0, r1_gamma=10.0, r1_every=3)
    lazy.load_state_dict({**base.state_dict(), "d_steps": torch.tensor(1)})   # steps 1 and 2: no penalty
    for step in (1, 2, 3):
        a, b = _one_d_step(base, x, seed=step), _one_d_step(lazy, x, seed=step)
        same = all(torch.equal(p, q) for p, q in zip(a, b))
        assert same is (step != 3), step                       # step 3 is a multiple of r1_every
    assert int(lazy.d_steps) == 4 and "d_steps" in lazy.state_dict()   # a checkpoint resumes the count
    assert "d_steps" not in base.state_dict()                           # without R1 the state is the source's
    assert lazy.cache_key()["r1"] == [10.0, 3] and "r1" not in base.cache_key()


def test_gan_rejects_bad_r1_settings():
    with pytest.raises(ParameterError, match="r1_gamma must be a finite number >= 0"):
        GAN(r1_gamma=-1.0)
    with pytest.raises(ParameterError, match="r1_gamma"):
        GAN(r1_gamma=float("nan"))
    with pytest.raises(ParameterError, match="r1_every must be an integer >= 1, got 0"):
        GAN(r1_every=0)


class _NearestTestDigit(nn.Module):
    """A stand-in classifier that labels an image with the label of the nearest of the given digits."""

    def __init__(self, x, y):
        super().__init__()
        self.register_buffer("x", x.flatten(1))
        self.register_buffer("y", y)
        self.unused = nn.Parameter(torch.zeros(()))   # batched() reads the device from a parameter

    def forward(self, images):
        nearest = torch.cdist(images.flatten(1).float(), self.x).argmin(1)
        return nn.functional.one_hot(self.y[nearest], 10).float() * 10


class _Reconstructs(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how

    def reconstruct(self, x):
        return self.how(x)


def test_reconstruction_quality_uses_the_labelled_test_digits():
    p = gan_vs_vae.PROFILES["smoke"]
    test = gan_vs_vae.chapter_data(p).test
    x, y = test.x[:gan_vs_vae.N_TEST_ELBO], test.y[:gan_vs_vae.N_TEST_ELBO]
    oracle = _NearestTestDigit(x, y)
    exact = gan_vs_vae.reconstruction_quality(p, oracle, _Reconstructs(lambda v: v))
    assert exact["accuracy"] == 1.0
    np.testing.assert_allclose(exact["hist"], np.bincount(y.numpy(), minlength=10) / len(y))
    # each digit "reconstructed" as its neighbour in the test set: right exactly where the two labels agree
    shifted = gan_vs_vae.reconstruction_quality(p, oracle, _Reconstructs(lambda v: v.roll(1, 0)))
    assert shifted["accuracy"] == pytest.approx((y == y.roll(1, 0)).double().mean().item(), abs=1e-12)
    assert 0.05 < shifted["accuracy"] < 0.2
    np.testing.assert_allclose(shifted["hist"], exact["hist"])   # the same labels, moved by one
