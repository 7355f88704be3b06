"""The GAN-vs-VAE chapter's analysis (vaebook.sample_analysis), each part against a known answer: slerp
against its closed form on a circle, the nearest-neighbour search against brute force, and every verdict
on constructed inputs on both sides of its threshold."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from vaebook import sample_analysis as sa
from vaebook.classifier import MNISTClassifier, classifier_features
from vaebook.quality import gaussian_blur, precision_recall


# --- slerp and latent walks -----------------------------------------------------------------------------

def test_slerp_endpoints_and_scalar_t():
    g = torch.Generator().manual_seed(0)
    a, b = 3 * torch.randn(50, generator=g), torch.randn(50, generator=g)
    torch.testing.assert_close(sa.slerp(a, b, 0.0), a)
    torch.testing.assert_close(sa.slerp(a, b, 1.0), b)
    path = sa.slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    assert path.shape == (3, 50)
    torch.testing.assert_close(path[[0, 2]], torch.stack([a, b]))
    torch.testing.assert_close(sa.slerp(a, b, 0.5), path[1])


def test_slerp_is_the_great_circle():
    # on the unit circle, from angle 0 to angle theta: slerp(t) = (cos(t theta), sin(t theta))
    theta = 2.0
    a, b = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([math.cos(theta), math.sin(theta)],
                                                                      dtype=torch.float64)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    expected = torch.stack([torch.cos(t * theta), torch.sin(t * theta)], 1)
    torch.testing.assert_close(sa.slerp(a, b, t), expected)


def test_slerp_keeps_unit_vectors_on_the_sphere():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(100, generator=g), torch.randn(100, generator=g)
    a, b = a / a.norm(), b / b.norm()
    t = torch.linspace(0, 1, 21)
    torch.testing.assert_close(sa.slerp(a, b, t).norm(dim=1), torch.ones(21))
    # the straight line's midpoint is shorter: |a + b| / 2 = cos(omega / 2) for unit vectors
    omega = torch.arccos(a @ b)
    assert ((a + b) / 2).norm().item() == pytest.approx(torch.cos(omega / 2).item(), rel=1e-5)
    assert ((a + b) / 2).norm().item() < 0.8


def test_slerp_of_parallel_vectors_is_linear_and_finite():
    a = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    linear = (1 - t[:, None]) * a + t[:, None] * (3 * a)
    torch.testing.assert_close(sa.slerp(a, 3 * a, t), linear)             # exactly parallel: no 0/0
    assert torch.isfinite(sa.slerp(a, -a, t)).all()                         # antiparallel: finite too
    # nearly parallel (angle 1e-4): the great circle and the chord agree to second order in the angle
    b = torch.tensor([1.0, 2.0, 2.0 + 3e-4], dtype=torch.float64)
    near = sa.slerp(a, b, t)
    torch.testing.assert_close(near, (1 - t[:, None]) * a + t[:, None] * b, atol=1e-7, rtol=0)


def test_slerp_rejects_bad_input():
    with pytest.raises(ValueError, match="non-zero"):
        sa.slerp(torch.zeros(3), torch.ones(3), 0.5)
    with pytest.raises(ValueError, match="same length"):
        sa.slerp(torch.ones(3), torch.ones(4), 0.5)


class _PixelDecoder(nn.Module):
    """decode(z) writes z into the first pixels of an otherwise blank image."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def decode(self, z):
        img = torch.zeros(len(z), 784)
        img[:, :z.shape[1]] = z
        return img.view(-1, 1, 28, 28) + 0 * self.dummy


def test_latent_walks_rows_run_from_first_to_second_end():
    g = torch.Generator().manual_seed(2)
    ends = torch.randn(3, 2, 5, generator=g)
    ends = ends / ends.norm(dim=2, keepdim=True)
    linear = sa.latent_walks(_PixelDecoder(), ends, steps=4).view(3, 4, 784)[:, :, :5]
    torch.testing.assert_close(linear[:, 0], ends[:, 0])
    torch.testing.assert_close(linear[:, -1], ends[:, 1])
    torch.testing.assert_close(linear[:, 1], ends[:, 0] * 2 / 3 + ends[:, 1] / 3)
    spherical = sa.latent_walks(_PixelDecoder(), ends, steps=4, spherical=True).view(3, 4, 784)[:, :, :5]
    torch.testing.assert_close(spherical.norm(dim=2), torch.ones(3, 4))
    with pytest.raises(ValueError, match="rows, 2"):
        sa.latent_walks(_PixelDecoder(), torch.zeros(3, 5))


# --- nearest neighbours and memorisation ----------------------------------------------------------------

def test_nearest_matches_brute_force():
    g = torch.Generator().manual_seed(3)
    pool = torch.rand(101, 1, 28, 28, generator=g)
    queries = torch.cat([torch.rand(30, 1, 28, 28, generator=g), pool[[7, 50]]])
    dist, idx = sa.nearest(queries, pool, batch_size=8)      # 32 queries: four batches
    brute = ((queries.double().flatten(1)[:, None] - pool.double().flatten(1)[None]) ** 2).sum(-1).sqrt()
    assert idx.dtype == torch.int64 and dist.dtype == torch.float32
    assert torch.equal(idx, brute.argmin(1))
    # cdist's matrix-product path: squared distances off by ~1e-7 * |x|^2, i.e. up to ~0.01 near distance 0
    torch.testing.assert_close(dist.double(), brute.min(1).values, atol=1e-2, rtol=1e-5)
    torch.testing.assert_close(dist[:30].double(), brute.min(1).values[:30], atol=1e-4, rtol=1e-5)
    assert idx[-2:].tolist() == [7, 50] and dist[-2:].max() < 1e-2   # copies find their originals


def test_nearest_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty pool"):
        sa.nearest(torch.rand(2, 1, 28, 28), torch.rand(0, 1, 28, 28))
    with pytest.raises(ValueError, match="differ in size"):
        sa.nearest(torch.rand(2, 1, 28, 28), torch.rand(3, 1, 14, 14))


def test_memorisation_tells_copies_from_new_images():
    g = torch.Generator().manual_seed(4)
    pool, real = torch.rand(200, 1, 28, 28, generator=g), torch.rand(50, 1, 28, 28, generator=g)
    copies = (pool[:50] + 0.01 * torch.randn(50, 1, 28, 28, generator=g)).clamp(0, 1)
    copied = sa.memorisation(copies, real, pool, batch_size=16)
    assert torch.equal(copied.neighbours, torch.arange(50))
    row = copied.row()
    assert row["training images searched"] == 200
    assert row["samples closer than the 1% closest test digit"] == 1.0
    assert copied.ratio < 0.1 and sa.copying_verdict(copied.ratio).startswith("closer than new real digits")
    # new draws from the same distribution as the real images lie as far from the pool as they do
    fresh = sa.memorisation(torch.rand(50, 1, 28, 28, generator=g), real, pool)
    assert fresh.ratio == pytest.approx(1.0, abs=0.05)
    assert sa.copying_verdict(fresh.ratio) == "no sign of copying"
    assert fresh.ratio == pytest.approx(fresh.row()["median distance, samples"]
                                        / fresh.row()["median distance, real test digits"])


# --- verdicts on both sides of their thresholds -----------------------------------------------------------

def test_copying_verdict_threshold():
    assert sa.COPYING_RATIO == 0.8
    assert sa.copying_verdict(0.81) == "no sign of copying"
    assert sa.copying_verdict(1.3) == "no sign of copying"
    assert sa.copying_verdict(0.8) == "closer than new real digits: inspect for copying"   # the line itself
    assert sa.copying_verdict(0.79) == "closer than new real digits: inspect for copying"
    assert sa.copying_verdict(0.85, threshold=0.9).startswith("closer")
    with pytest.raises(ValueError, match="ratio"):
        sa.copying_verdict(float("nan"))


def _two_level_samples(n: int, centre: float, spread: float) -> torch.Tensor:
    """n images, half at centre + s and half at centre - s in every pixel, with s chosen so the per-pixel
    (unbiased) standard deviation, s * sqrt(n / (n - 1)), equals ``spread``."""
    s = spread / math.sqrt(n / (n - 1))
    signs = torch.tensor([1.0, -1.0]).repeat(n // 2)
    return (centre + s * signs).view(n, 1, 1, 1).expand(n, 1, 28, 28).contiguous()


def test_collapse_check_spread_threshold():
    real = torch.full((10, 1, 28, 28), 0.13)
    above = sa.collapse_check(_two_level_samples(100, 0.13, 0.021), real)
    below = sa.collapse_check(_two_level_samples(100, 0.13, 0.019), real)
    assert above["spread"] == pytest.approx(0.021, rel=1e-4) and below["spread"] == pytest.approx(0.019, rel=1e-4)
    assert above["ink"] == pytest.approx(0.13) and above["real_ink"] == pytest.approx(0.13)
    assert not above["collapsed"] and above["verdict"] == "not collapsed"
    assert below["collapsed"] and below["verdict"].startswith("collapsed")
    identical = sa.collapse_check(torch.rand(1, 1, 28, 28).repeat(20, 1, 1, 1), real)
    assert identical["spread"] == 0 and identical["collapsed"]


def test_collapse_check_ink_threshold():
    # real ink 0.13, so the line is 0.2 * 0.13 = 0.026; spread 0.05 is well above its own line
    real = torch.full((10, 1, 28, 28), 0.13)
    assert not sa.collapse_check(_two_level_samples(100, 0.027, 0.05), real)["collapsed"]
    dark = sa.collapse_check(_two_level_samples(100, 0.025, 0.05), real)
    assert dark["ink"] == pytest.approx(0.025) and dark["collapsed"]
    assert sa.collapse_check(_two_level_samples(100, 0.025, 0.05), real, min_ink_ratio=0.1)["collapsed"] is False
    with pytest.raises(ValueError, match="at least 2 samples"):
        sa.collapse_check(torch.rand(1, 1, 28, 28), real)


def test_coverage_met_threshold():
    assert sa.COVERAGE_RANGE == (0.05, 0.15)
    assert sa.coverage_met(np.full(10, 0.1))
    assert sa.coverage_met([0.05, 0.15] + [0.1] * 8)                 # both ends are inside
    assert not sa.coverage_met([0.04, 0.16] + [0.1] * 8)
    assert not sa.coverage_met([0.0, 0.2] + [0.1] * 8)               # a missing digit
    assert sa.coverage_met([0.0, 0.2] + [0.1] * 8, low=0.0, high=0.2)
    with pytest.raises(ValueError, match="summing to 1"):
        sa.coverage_met([0.5, 0.1])


def test_fid_standing():
    calibration = {"floor": 1.0, "noise": 5.0, "blur": 10.0}
    assert sa.fid_standing(20.0, calibration) == "worse than every calibration set"
    assert sa.fid_standing(5.0, calibration) == "worse than floor, no worse than noise and blur"
    assert sa.fid_standing(7.0, calibration) == "worse than floor and noise, no worse than blur"
    assert sa.fid_standing(0.5, calibration) == "no worse than any calibration set"
    with pytest.raises(ValueError, match="at least one"):
        sa.fid_standing(1.0, {})


# --- quality table, calibration sets, hooks ----------------------------------------------------------------

def test_quality_table_known_rows():
    hist = np.array([0.0, 0.5, 0.5] + [0.0] * 7)
    rows = {"a": {"fid": 1.5, "precision": 0.9, "recall": 0.2, "coverage_entropy": math.log(2),
                  "class_hist": hist, "confidence": 0.8},
            "b": {"fid": 3.0, "precision": 0.1, "recall": 0.7, "coverage_entropy": math.log(10),
                  "class_hist": np.full(10, 0.1), "confidence": 0.6}}
    table = sa.quality_table(rows)
    assert list(table.index) == ["a", "b"] and tuple(table.columns) == sa.QUALITY_COLUMNS
    assert table.loc["a", "FID (classifier features)"] == 1.5 and table.loc["b", "recall"] == 0.7
    assert table.loc["a", "rarest digit's share"] == 0.0 and table.loc["a", "commonest digit's share"] == 0.5
    assert table.loc["b", "rarest digit's share"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="lacks"):
        sa.quality_table({"c": {"fid": 1.0}})


def test_calibration_sets():
    x = torch.full((400, 1, 28, 28), 0.5)
    sets = sa.calibration_sets(x, noise_seed=3)
    assert list(sets) == ["real", "noise σ=0.1", "noise σ=0.3", "blur σ=0.7", "blur σ=1.5"]
    assert sets["real"] is x
    assert (sets["noise σ=0.1"] - x).std().item() == pytest.approx(0.1, rel=0.02)
    assert torch.equal(sets["blur σ=1.5"], gaussian_blur(x, 1.5))
    assert torch.equal(sa.calibration_sets(x, noise_seed=3)["noise σ=0.3"], sets["noise σ=0.3"])
    assert not torch.equal(sa.calibration_sets(x, noise_seed=4)["noise σ=0.3"], sets["noise σ=0.3"])


class _Sampler(nn.Module):
    """A 'model' whose samples are uniform noise from the generator it is given (or fixed images)."""

    def __init__(self, images=None):
        super().__init__()
        self.images = images

    def sample(self, n, generator=None):
        return self.images[:n] if self.images is not None else torch.rand(n, 1, 28, 28, generator=generator)


def test_quality_tracker_and_samples_snapshot():
    torch.manual_seed(0)
    clf = MNISTClassifier().eval()
    reference = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    # a model whose samples are the reference images scores FID 0 and precision = recall = 1 (each sample is
    # the centre of its own real ball)
    same = sa.quality_tracker(clf, reference, n_samples=40)(_Sampler(reference), 1)
    assert same["fid_40"] == pytest.approx(0, abs=1e-6)
    assert same["precision_40"] == same["recall_40"] == 1.0
    hook = sa.quality_tracker(clf, reference, n_samples=30, seed=5)
    first, second = hook(_Sampler(), 1), hook(_Sampler(), 2)
    assert set(first) == {"fid_30", "precision_30", "recall_30"} and first == second and first["fid_30"] > 0
    # the logged precision and recall are those of vaebook.quality on the same features
    fake = torch.rand(30, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    expected = precision_recall(classifier_features(clf, reference), classifier_features(clf, fake), k=3)
    assert (first["precision_30"], first["recall_30"]) == pytest.approx(expected)
    snap = sa.samples_snapshot(6, seed=7)
    out = snap(_Sampler(), 1)["samples"]
    assert torch.equal(out, torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(out, snap(_Sampler(), 2)["samples"])
    with pytest.raises(ValueError, match="n_samples"):
        sa.quality_tracker(clf, reference, n_samples=1)
    with pytest.raises(ValueError, match="more than k = 3"):
        sa.quality_tracker(clf, reference[:3], n_samples=10)


# --- sampling noise, training criteria and the page's computed verdicts ---------------------------------------

def test_repeated_quality_rows_are_each_sets_scores():
    from vaebook.quality import sample_quality

    torch.manual_seed(0)
    clf = MNISTClassifier().eval()
    g = torch.Generator().manual_seed(3)
    real = torch.rand(30, 1, 28, 28, generator=g)
    sets = [torch.rand(30, 1, 28, 28, generator=g) for _ in range(3)]
    table = sa.repeated_quality(clf, real, sets)
    assert list(table.index) == [0, 1, 2] and tuple(table.columns) == sa.QUALITY_COLUMNS
    for i, x in enumerate(sets):
        q = sample_quality(clf, real, x)
        assert table.loc[i, "FID (classifier features)"] == pytest.approx(q["fid"])
        assert table.loc[i, "recall"] == pytest.approx(q["recall"])
        assert table.loc[i, "rarest digit's share"] == pytest.approx(q["class_hist"].min())
    assert table["FID (classifier features)"].std() > 0      # independent sets differ
    with pytest.raises(ValueError, match="at least 2"):
        sa.repeated_quality(clf, real, sets[:1])


def test_gan_criteria_on_both_sides_of_each_threshold():
    even = np.full(10, 0.1)
    assert sa.MIN_GAN_PRECISION == 0.6
    ok = sa.gan_criteria(even, fid_gan=5.0, fid_vae=8.0, precision_gan=0.6)
    assert [c.passed for c in ok] == [True, True, True]                   # precision 0.6 itself passes
    assert ok[0].measured == "digit shares from 10.0% to 10.0%" and ok[0].target == "every digit 5%-15% of its samples"
    assert ok[1].measured == "FID 5.0 against the VAE's 8.0" and ok[2].measured == "precision 0.60"
    lopsided = np.array([0.0, 0.5] + [0.0625] * 8)
    bad = sa.gan_criteria(lopsided, fid_gan=8.0, fid_vae=8.0, precision_gan=0.59)
    assert [c.passed for c in bad] == [False, False, False]               # equal FID is not below
    assert bad[0].measured == "digit shares from 0.0% to 50.0%"


def test_loss_fell_every_epoch_and_vae_criteria():
    assert sa.loss_fell_every_epoch([3.0, 2.0, 1.5]) and sa.loss_fell_every_epoch([3.0])
    assert not sa.loss_fell_every_epoch([3.0, 2.0, 2.0]) and not sa.loss_fell_every_epoch([3.0, 1.0, 1.2])
    with pytest.raises(ValueError, match="finite"):
        sa.loss_fell_every_epoch([1.0, float("nan")])
    fine = {"spread": 0.2, "ink": 0.13, "real_ink": 0.13, "collapsed": False}
    checks = sa.vae_criteria([120.0, 110.0, 105.0], fine, 0.95)
    assert all(c.passed for c in checks)
    assert checks[0].measured == "test loss from 120.0 to 105.0 nats per image over 3 epochs"
    assert checks[2].target == "at least 90% of its reconstructions recognised as their digit"
    assert checks[2].measured == "95.0% of its reconstructions recognised"
    assert sa.vae_criteria([120.0, 110.0], fine, 0.9)[2].passed                 # the threshold itself passes
    collapsed = dict(fine, collapsed=True)
    failed = sa.vae_criteria([120.0, 121.0], collapsed, 0.899)
    assert [c.passed for c in failed] == [False, False, False]
    assert "after its only epoch" in sa.vae_criteria([99.0], fine, 0.95)[0].measured
    assert not sa.vae_criteria([99.0], fine, 0.95, min_accuracy=0.96)[2].passed
    with pytest.raises(ValueError, match="reconstruction_accuracy must be a share"):
        sa.vae_criteria([99.0], fine, 95.0)                                       # a percentage, not a share


def test_discriminator_state_thresholds():
    chance = 2 * math.log(2)
    assert sa.CHANCE_LOSS == pytest.approx(1.3863, abs=1e-4)
    assert sa.discriminator_state(chance, 0.5, 0.5) == "chance"
    assert sa.discriminator_state(chance + 0.14, 0.8, 0.3) == "chance"      # mean accuracy 0.55
    assert sa.discriminator_state(chance + 0.16, 0.5, 0.5) == "neither"     # loss just outside
    assert sa.discriminator_state(chance, 0.8, 0.42) == "neither"           # mean accuracy 0.61
    assert sa.discriminator_state(0.29, 0.91, 0.95) == "winning"
    assert sa.discriminator_state(0.31, 0.99, 0.99) == "neither"
    assert sa.discriminator_state(0.1, 0.99, 0.89) == "neither"
    with pytest.raises(ValueError, match="finite"):
        sa.discriminator_state(float("nan"), 0.5, 0.5)


def test_grey_share_counts_pixels_strictly_inside():
    x = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0, 0.95, 0.05, 0.3]).view(2, 1, 2, 2)
    assert sa.grey_share(x) == pytest.approx(2 / 8)                          # 0.5 and 0.3 only
    assert sa.grey_share(x, (0.0, 1.0)) == pytest.approx(6 / 8)                # all but 0 and 1


_FINAL = {"d_loss": 1.30, "d_acc_real": 0.61, "d_acc_fake": 0.48}
_FINE = {"spread": 0.2, "ink": 0.13, "real_ink": 0.13, "collapsed": False}


def _history(rows):
    import pandas as pd
    return pd.DataFrame([dict(zip(("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "fid_500"), r), epoch=i + 1)
                         for i, r in enumerate(rows)])


def test_gan_diagnosis_reads_the_curves():
    winning = (0.05, 6.3, 0.99, 0.98, 700.0)
    chance = (1.38, 0.70, 0.52, 0.49, 300.0)
    history = _history([winning, winning, chance, chance[:4] + (250.0,)])
    state, text = sa.gan_diagnosis(history, _FINAL, _FINE, precision=0.05)
    assert state == "chance" and "at chance from epoch 3 to the last (epoch 4)" in text
    assert "loss averaged 1.38" in text and "52% of real and 49% of generated" in text
    assert "FID went from 300 to 250" in text
    assert "precision 0.05" in text and "61% of real test digits and 48% of the final samples" in text
    state, text = sa.gan_diagnosis(_history([chance, winning]), _FINAL, _FINE, precision=0.0)
    assert state == "winning" and "in the last epoch (epoch 2)" in text and "reached 6.30" in text
    assert "FID went" not in text
    state, text = sa.gan_diagnosis(_history([(0.9, 2.0, 0.8, 0.7, 400.0)]), _FINAL, _FINE, precision=0.3)
    assert state == "neither" and "do not say why" in text
    # with the per-epoch precision: its first, last, lowest and highest value beside the FID's change
    neither = _history([(0.9, 2.0, 0.8, 0.7, 400.0), (1.0, 1.5, 0.75, 0.7, 150.0), (1.0, 1.4, 0.75, 0.7, 90.0)])
    neither["precision_500"] = [0.41, 0.52, 0.44]
    state, text = sa.gan_diagnosis(neither, _FINAL, _FINE, precision=0.4)
    assert state == "neither" and "do not say why. From the first epoch to the last" in text
    assert ("500-sample FID went from 400 to 90, and its precision from 0.41 to 0.44 (between 0.41 and 0.52 in "
            "all 3 epochs).") in text
    chance_all = _history([chance, chance[:4] + (250.0,)])
    chance_all["precision_500"] = [0.3, 0.35]
    text = sa.gan_diagnosis(chance_all, _FINAL, _FINE, precision=0.3)[1]
    assert text.count("FID went from 300 to 250") == 1                       # stated once, not twice
    blank = {"spread": 0.001, "ink": 0.0, "real_ink": 0.13, "collapsed": True}
    assert sa.gan_diagnosis(_history([chance]), _FINAL, blank, precision=0.0)[0] == "collapsed"
    with pytest.raises(ValueError, match="one epoch"):
        sa.gan_diagnosis(_history([]), _FINAL, _FINE, precision=0.0)


def test_training_statement_names_the_failed_criteria_with_numbers():
    gan_bad = sa.gan_criteria(np.array([0.0, 0.5] + [0.0625] * 8), 300.0, 20.0, 0.7)
    vae_ok = sa.vae_criteria([120.0, 110.0], _FINE, 0.95)
    text = sa.training_statement(gan_bad, vae_ok, "DIAGNOSIS.")
    assert text.startswith("**This run's GAN did not train well enough")
    assert ("failed 2 of these 3 criteria, with digit shares from 0.0% to 50.0% and FID 300.0 against the "
            "VAE's 20.0.") in text
    assert "precision 0.70" not in text                                      # a passed criterion is not listed
    assert "DIAGNOSIS." in text and "draws no conclusion about GANs versus VAEs" in text
    assert "The VAE passed" in text
    gan_ok = sa.gan_criteria(np.full(10, 0.1), 10.0, 20.0, 0.7)
    text = sa.training_statement(gan_ok, vae_ok, "unused")
    assert text.startswith("**This run's GAN trained**") and "no conclusion" not in text and "unused" not in text
    vae_bad = sa.vae_criteria([110.0, 120.0], _FINE, 0.95)
    assert ("The VAE did not pass this chapter's check of its own training either: it needs a test loss that "
            "fell in every epoch, and had test loss from 110.0 to 120.0") in sa.training_statement(gan_ok, vae_bad, "")


def _seed_scores(gan_fid, vae_fid, gan_trained=(True, True, True), vae_trained=(True, True, True),
                 vae_even=None):
    rows = []
    for i, (gf, vf, gt, vt) in enumerate(zip(gan_fid, vae_fid, gan_trained, vae_trained)):
        rows += [{"seed": i, "model": "VAE", "FID": vf, "precision": 0.7, "recall": 0.5, "trained": vt},
                 {"seed": i, "model": "GAN", "FID": gf, "precision": 0.8, "recall": 0.4 + 0.2 * (i == 0),
                  "trained": gt}]
        if vae_even is not None:   # the GAN is even wherever it trained
            rows[-2]["even digits"], rows[-1]["even digits"] = vae_even[i], gt
    return pd.DataFrame(rows).set_index(["seed", "model"])


def test_seeds_conclusion_claims_only_what_holds_on_every_seed():
    text = sa.seeds_conclusion(_seed_scores([90.0, 95.0, 100.0], [230.0, 235.0, 240.0]))
    assert ("Lower FID: the GAN on all 3 seeds; higher precision: the GAN on all 3 seeds; higher recall: "
            "neither (the GAN on 1 of 3 seeds)") in text
    text = sa.seeds_conclusion(_seed_scores([90.0, 95.0, 100.0], [230.0, 235.0, 240.0], gan_trained=(True, False, True)))
    assert text.startswith("No comparison: the GAN met its criteria on 2 of 3 seeds") and "Lower FID" not in text
    text = sa.seeds_conclusion(_seed_scores([90.0, 95.0, 100.0], [230.0, 235.0, 240.0], vae_trained=(False,) * 3))
    assert "the VAE passed its checks on 0 of 3 seeds" in text
    assert "Every digit" not in sa.seeds_conclusion(_seed_scores([90.0, 95.0, 100.0], [230.0, 235.0, 240.0]))
    text = sa.seeds_conclusion(_seed_scores([90.0, 95.0, 100.0], [230.0, 235.0, 240.0], vae_even=(False, True, False)))
    assert ("Every digit between 5% and 15% of the samples: the GAN on 3 of 3 seeds, the VAE on 1 of 3.") in text
    assert text.endswith("A score is claimed for a model only where it leads on every seed.")
    text = sa.seeds_conclusion(_seed_scores([90.0, 95.0], [230.0, 235.0]))
    assert "a verdict needs at least 3 seeds" in text and "Lower FID" not in text


def test_observed_failures_lists_only_what_happened():
    gan_ok = sa.gan_criteria(np.full(10, 0.1), 10.0, 20.0, 0.7)
    vae_ok = sa.vae_criteria([120.0, 110.0], _FINE, 0.95)
    assert sa.observed_failures("neither", gan_ok, vae_ok, vae_grey=0.10, real_grey=0.06) == []
    out = sa.observed_failures("chance", gan_ok, vae_ok, vae_grey=0.25, real_grey=0.06)
    assert out[0].startswith("the VAE's samples are blurred: 25% of their pixels are grey")
    assert out[1] == "the GAN's discriminator ended at chance on samples far from real digits"
    gan_bad = sa.gan_criteria(np.full(10, 0.1), 30.0, 20.0, 0.5)
    assert sa.observed_failures("neither", gan_bad, vae_ok, 0.1, 0.1) == [
        "the GAN failed 2 of its 3 checks (an FID below the VAE's and precision at least 0.6)"]
