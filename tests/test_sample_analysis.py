"""The GAN-vs-VAE chapter's analysis (vaebook.sample_analysis), each part against a known answer: slerp
against its closed form on a circle, the nearest-neighbour search against brute force, and every verdict
on constructed inputs on both sides of its threshold."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from vaebook import sample_analysis as sa
from vaebook.classifier import MNISTClassifier
from vaebook.quality import gaussian_blur


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


def test_leader():
    assert sa.leader({"GAN": 0.9, "VAE": 0.5}) == "GAN"
    assert sa.leader({"GAN": 0.9, "VAE": 0.5}, higher_is_better=False) == "VAE"
    assert sa.leader({"GAN": 0.5004, "VAE": 0.5}) == "tie"                    # within 1e-3
    assert sa.leader({"GAN": 0.502, "VAE": 0.5}) == "GAN"
    with pytest.raises(ValueError, match="two scores"):
        sa.leader({"GAN": 1.0})


def test_fid_standing():
    calibration = {"floor": 1.0, "noise": 5.0, "blur": 10.0}
    assert sa.fid_standing(20.0, calibration) == "worse than every calibration row"
    assert sa.fid_standing(5.0, calibration) == ("worse than 1 calibration row(s) and at least as good as: "
                                                 "noise, blur")
    assert sa.fid_standing(0.5, calibration).startswith("worse than 0 calibration row(s)")


# --- quality table, calibration sets, hooks ----------------------------------------------------------------

def test_quality_table_known_rows():
    hist = np.array([0.0, 0.5, 0.5] + [0.0] * 7)
    rows = {"a": {"fid": 1.5, "precision": 0.9, "recall": 0.2, "coverage_entropy": math.log(2),
                  "class_hist": hist, "confidence": 0.8},
            "b": {"fid": 3.0, "precision": 0.1, "recall": 0.7, "coverage_entropy": math.log(10),
                  "class_hist": np.full(10, 0.1), "confidence": 0.6}}
    table = sa.quality_table(rows)
    assert list(table.index) == ["a", "b"] and tuple(table.columns) == sa.QUALITY_COLUMNS
    assert table.loc["a", "FID (MNIST classifier features)"] == 1.5 and table.loc["b", "recall"] == 0.7
    assert table.loc["a", "rarest digit share"] == 0.0 and table.loc["a", "commonest digit share"] == 0.5
    assert table.loc["b", "rarest digit share"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="lacks"):
        sa.quality_table({"c": {"fid": 1.0}})


def test_calibration_sets():
    x = torch.full((400, 1, 28, 28), 0.5)
    sets = sa.calibration_sets(x, noise_seed=3)
    assert list(sets) == ["real (training images)", "real + noise σ=0.1", "real + noise σ=0.3",
                          "real, blurred σ=0.7", "real, blurred σ=1.5"]
    assert sets["real (training images)"] is x
    assert (sets["real + noise σ=0.1"] - x).std().item() == pytest.approx(0.1, rel=0.02)
    assert torch.equal(sets["real, blurred σ=1.5"], gaussian_blur(x, 1.5))
    assert torch.equal(sa.calibration_sets(x, noise_seed=3)["real + noise σ=0.3"], sets["real + noise σ=0.3"])
    assert not torch.equal(sa.calibration_sets(x, noise_seed=4)["real + noise σ=0.3"], sets["real + noise σ=0.3"])


class _Sampler(nn.Module):
    """A 'model' whose samples are uniform noise from the generator it is given (or fixed images)."""

    def __init__(self, images=None):
        super().__init__()
        self.images = images

    def sample(self, n, generator=None):
        return self.images[:n] if self.images is not None else torch.rand(n, 1, 28, 28, generator=generator)


def test_fid_tracker_and_samples_snapshot():
    torch.manual_seed(0)
    clf = MNISTClassifier().eval()
    reference = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    # a model whose samples are the reference images scores 0; uniform noise scores more, the same each epoch
    assert sa.fid_tracker(clf, reference, n_samples=40)(_Sampler(reference), 1)["fid_40"] == pytest.approx(0, abs=1e-6)
    hook = sa.fid_tracker(clf, reference, n_samples=30, seed=5)
    first, second = hook(_Sampler(), 1), hook(_Sampler(), 2)
    assert set(first) == {"fid_30"} and first == second and first["fid_30"] > 0
    snap = sa.samples_snapshot(6, seed=7)
    out = snap(_Sampler(), 1)["samples"]
    assert torch.equal(out, torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(out, snap(_Sampler(), 2)["samples"])
    with pytest.raises(ValueError, match="n_samples"):
        sa.fid_tracker(clf, reference, n_samples=1)
