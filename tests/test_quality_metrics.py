"""Sample-quality metrics (vaebook.quality) and the MNIST classifier (vaebook.classifier): Fréchet distance, k-NN precision/recall,
class coverage, the MNIST classifier and the calibration corruptions, each against a known answer."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import torch
from torch import nn

from vaebook import classifier, quality


# --- Fréchet distance ---------------------------------------------------------------------------------

def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_gaussians_matches_closed_forms():
    rng = np.random.default_rng(0)
    # diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum_i (s1_i - s2_i)^2 with s the standard deviations
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    expected = ((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()   # 1 + 4 + (4 + 1) = 10
    assert expected == pytest.approx(10.0)
    assert quality.frechet_distance_gaussians(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2)) == pytest.approx(10.0)
    # general covariances: the textbook formula with scipy's matrix square root of cov1 @ cov2
    for d in (2, 8, 32):
        c1, c2 = _random_spd(rng, d), _random_spd(rng, d)
        m1, m2 = rng.normal(size=d), rng.normal(size=d)
        ref = ((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real)
        assert quality.frechet_distance_gaussians(m1, c1, m2, c2) == pytest.approx(ref, rel=1e-8, abs=1e-8)
        assert quality.frechet_distance_gaussians(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_samples():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5000, 16))
    assert quality.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert quality.frechet_distance(torch.tensor(a, dtype=torch.float32), a) == pytest.approx(0.0, abs=1e-5)
    # samples of N(0, I) and N(m, 4 I) in d = 4: d^2 = |m|^2 + 4 * (2 - 1)^2 = 4 + 4 = 8
    x = rng.normal(size=(200_000, 4))
    y = rng.normal(size=(200_000, 4)) * 2 + np.array([1.0, 1.0, 1.0, 1.0])
    assert quality.frechet_distance(x, y) == pytest.approx(8.0, rel=0.02)
    # grows with added noise
    dists = [quality.frechet_distance(a, a + s * rng.normal(size=a.shape)) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(d1 < d2 for d1, d2 in zip(dists, dists[1:])), dists
    assert dists[0] > 0


def test_frechet_rejects_bad_input():
    with pytest.raises(ValueError, match="feature sizes differ"):
        quality.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="2-D"):
        quality.frechet_distance(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        quality.frechet_distance(np.full((5, 2), np.nan), np.zeros((5, 2)))


# --- precision and recall -----------------------------------------------------------------------------

def test_precision_recall_constructed_cases():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(400, 8))
    assert quality.precision_recall(a, a) == (1.0, 1.0)
    far = a + 1000.0
    assert quality.precision_recall(a, far) == (0.0, 0.0)
    # fake = exactly the first of two far-apart real clusters: every sample is realistic (precision 1),
    # but only that half of the real data is covered (recall 1/2)
    real = np.concatenate([a[:200], a[200:] + 1000.0])
    assert quality.precision_recall(real, a[:200]) == (1.0, 0.5)


def test_precision_recall_by_hand():
    # 1-D, k = 1. Real 0..4: every k-NN radius is 1. Fake 0.5, 10, 4.9, 6: 0.5 and 4.9 lie within 1 of a
    # real point -> precision 2/4. Fake radii (nearest other fake): 0.5 -> 4.4, 4.9 -> 1.1, 6 -> 1.1,
    # 10 -> 4; the ball of radius 4.4 around 0.5 holds every real point -> recall 1.
    real = np.arange(5.0)[:, None]
    fake = np.array([0.5, 10.0, 4.9, 6.0])[:, None]
    assert quality.precision_recall(real, fake, k=1) == (0.5, 1.0)
    # with k = 2 (real radii 2, 1, 1, 1, 2): 6 is within 2 of 4 -> precision 3/4
    assert quality.precision_recall(real, fake, k=2)[0] == 0.75


def test_precision_recall_rejects_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        quality.precision_recall(np.zeros((10, 2)), np.zeros((10, 2)), k=0)
    with pytest.raises(ValueError, match="more than k"):
        quality.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)


# --- class coverage with a stub classifier of known outputs --------------------------------------------

class _StubClassifier(nn.Module):
    """Logit 20 for the class written in pixel (0, 0), 0 for the others."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return 20.0 * nn.functional.one_hot(x[:, 0, 0, 0].round().long(), 10).float() + 0 * self.dummy


def test_class_coverage_known_answer():
    labels = torch.tensor([0] * 50 + [1] * 30 + [7] * 20)
    x = labels.float().view(-1, 1, 1, 1).expand(-1, 1, 28, 28).clone()
    cov = quality.class_coverage(_StubClassifier(), x)
    expected = np.zeros(10)
    expected[[0, 1, 7]] = [0.5, 0.3, 0.2]
    np.testing.assert_allclose(cov["hist"], expected)
    assert cov["entropy"] == pytest.approx(-(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)))
    assert cov["confidence"] == pytest.approx(math.exp(20) / (math.exp(20) + 9), rel=1e-6)
    even = quality.class_coverage(_StubClassifier(), torch.arange(10.0).view(-1, 1, 1, 1).expand(-1, 1, 28, 28))
    assert even["entropy"] == pytest.approx(math.log(10))


# --- the classifier and sample_quality ------------------------------------------------------------------

def test_classifier_shapes():
    clf = classifier.MNISTClassifier()
    x = torch.rand(5, 1, 28, 28)
    assert clf(x).shape == (5, 10)
    assert clf.features(x).shape == (5, classifier.MNISTClassifier.feature_size)
    # 320 + 18,496 (convs) + 3136*128+128 (dense) + 128*10+10 (head)
    assert sum(p.numel() for p in clf.parameters()) == 320 + 18_496 + 401_536 + 1_290
    f = classifier.classifier_features(clf, torch.rand(2500, 1, 28, 28), batch_size=1000)
    assert f.shape == (2500, 128) and f.device.type == "cpu"


def test_classifier_augments_only_in_training():
    torch.manual_seed(0)
    clf = classifier.MNISTClassifier()
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    clf.eval()  # no dropout, no shifts: the loss is plain cross-entropy of the logits
    loss, _ = clf.training_loss(x, y)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(clf(x), y))
    clf.train()
    clf.head[0].p = 0.0  # isolate the augmentation from dropout
    torch.manual_seed(1)
    loss_aug, _ = clf.training_loss(x, y)
    torch.manual_seed(1)  # same draw of shifts as inside training_loss
    from vaebook.data import random_translate
    expected = torch.nn.functional.cross_entropy(clf(random_translate(x, 2.0)), y)
    assert torch.allclose(loss_aug, expected) and not torch.allclose(loss_aug, loss)
    unaugmented = classifier.MNISTClassifier(augment_pixels=0.0)
    unaugmented.load_state_dict(clf.state_dict())
    unaugmented.head[0].p = 0.0
    assert torch.allclose(unaugmented.training_loss(x, y)[0], loss)
    with pytest.raises(ValueError, match="augment_pixels"):
        classifier.MNISTClassifier(augment_pixels=-1)


def test_classifier_learns_above_chance():
    clf, acc = classifier.get_classifier(epochs=2, train_subset=2000, seed=0, device="cpu")
    assert acc > 0.5          # chance is 0.1
    assert not clf.training
    # the second call loads the same weights from the cache
    clf2, acc2 = classifier.get_classifier(epochs=2, train_subset=2000, seed=0, device="cpu")
    assert acc2 == acc
    for p, q in zip(clf.parameters(), clf2.parameters()):
        assert torch.equal(p, q)


def test_classifier_job_keeps_the_checkpoint_of_the_direct_fit(tmp_path):
    """classifier_job names the same checkpoint as the fit call get_classifier made before it became a job
    (so caches trained then still load), and pickles (a Job may be sent to another process)."""
    import pickle

    from vaebook.data import mnist_splits
    from vaebook.jobs import run_job
    from vaebook.train import fit

    train = mnist_splits(train_subset=500, seed=3)["train"]
    direct = fit(classifier.MNISTClassifier, train.x, train.y, epochs=2, batch_size=128, lr=3e-3, seed=3,
                 device="cpu", name="mnist-classifier", lr_schedule="onecycle", cache=tmp_path, stop_after=0,
                 data_key={"set": train.description, "subset": 500, "n": len(train)})
    job = classifier.classifier_job(epochs=2, train_subset=500, seed=3, device="cpu")
    assert direct.path.name.startswith("mnist-classifier-")
    assert run_job(pickle.loads(pickle.dumps(job)), cache=tmp_path, stop_after=0).path == direct.path
    other = classifier.classifier_job(epochs=3, train_subset=500, seed=3, device="cpu")
    assert run_job(other, cache=tmp_path, stop_after=0).path != direct.path
    x, y = job.data()
    assert torch.equal(x, train.x) and torch.equal(y, train.y)


def test_sample_quality_keys_and_identity():
    torch.manual_seed(0)
    clf = classifier.MNISTClassifier().eval()
    x = torch.rand(300, 1, 28, 28)
    q = quality.sample_quality(clf, x, x)
    assert set(q) == {"fid", "precision", "recall", "coverage_entropy", "confidence", "class_hist"}
    assert q["fid"] == pytest.approx(0.0, abs=1e-6)
    assert (q["precision"], q["recall"]) == (1.0, 1.0)
    assert q["class_hist"].sum() == pytest.approx(1.0)
    worse = quality.sample_quality(clf, x, quality.add_noise(x, 0.5, torch.Generator().manual_seed(1)))
    assert worse["fid"] > 0.0


# --- calibration corruptions ----------------------------------------------------------------------------

def test_gaussian_blur_matches_scipy():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 1, 28, 28, generator=g)
    for sigma in (0.7, 1.0, 2.0):
        ours = quality.gaussian_blur(x, sigma).numpy()
        radius = max(1, math.ceil(3 * sigma))
        ref = np.stack([scipy.ndimage.gaussian_filter(img[0].numpy().astype(np.float64), sigma, mode="constant",
                                                      radius=radius)[None] for img in x])
        np.testing.assert_allclose(ours, ref, atol=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        quality.gaussian_blur(x, 0)


def test_add_noise_range_and_scale():
    x = torch.full((200, 1, 28, 28), 0.5)
    y = quality.add_noise(x, 0.1, torch.Generator().manual_seed(0))
    assert y.min() >= 0 and y.max() <= 1
    assert (y - x).std().item() == pytest.approx(0.1, rel=0.02)
