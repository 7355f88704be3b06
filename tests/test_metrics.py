import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vaebook import metrics


@pytest.fixture(scope="module")
def pairs(mnist):
    g = torch.Generator().manual_seed(0)
    x = mnist["test"].x[:64]
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    shifted = torch.roll(x, shifts=2, dims=-1)
    return x, torch.cat([noisy[:32], shifted[32:]])


def test_ssim_matches_scikit_image(pairs):
    x, y = pairs
    ours = metrics.ssim(x, y).numpy()
    ref = np.array([structural_similarity(a[0].numpy(), b[0].numpy(), gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=1.0) for a, b in zip(x, y)])
    assert np.abs(ours - ref).max() < 1e-3
    assert ours.std() > 0.05  # a spread of values, not a constant


def test_ssim_accepts_both_shapes_and_identity(pairs):
    x, y = pairs
    assert torch.allclose(metrics.ssim(x[:, 0], y[:, 0]), metrics.ssim(x, y))
    assert torch.allclose(metrics.ssim(x, x), torch.ones(len(x)), atol=1e-5)


def test_psnr_and_mse_closed_forms(pairs):
    x, y = pairs
    m = ((x - y) ** 2).flatten(1).mean(1)
    assert torch.allclose(metrics.mse(x, y), m)
    ref = np.array([peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=1.0) for a, b in zip(x, y)])
    assert np.allclose(metrics.psnr(x, y).numpy(), ref, atol=1e-4)
    # constant offset c: MSE = c^2, PSNR = -20 log10 c
    z = torch.zeros(3, 28, 28)
    assert torch.allclose(metrics.psnr(z, z + 0.1), torch.full((3,), 20.0), atol=1e-4)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="same shape"):
        metrics.mse(torch.zeros(2, 28, 28), torch.zeros(3, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        metrics.ssim(torch.zeros(28, 28), torch.zeros(28, 28))
