import gzip

import numpy as np
import pytest
import torch

from vaebook import data


def test_label_counts_match_reference(mnist):
    # The per-class counts of the original MNIST files: a known answer, independent of this reader.
    assert mnist["train"].y.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist["test"].y.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist["train"].x.shape == (60000, 1, 28, 28)
    assert mnist["train"].x.dtype == torch.float32
    assert 0.0 == mnist["train"].x.min().item() and mnist["train"].x.max().item() == 1.0


def test_images_match_raw_bytes():
    # Independent read of the IDX body: byte 16 onwards of the images file is the first image.
    raw = data.ensure_mnist(download=False)
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz") as fh:
        payload = fh.read()
    first = np.frombuffer(payload[16:16 + 784], dtype=np.uint8).reshape(28, 28)
    images, labels = data.load_mnist(train=False)
    assert np.array_equal(images[0].numpy(), first)
    assert labels[0].item() == 7  # the well-known first test digit


def test_offline_error_names_files_root_and_variable(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MIRRORS", ("http://127.0.0.1:9/",))  # nothing listens on port 9
    with pytest.raises(data.DataError) as err:
        data.load_mnist(root=tmp_path, download=True)
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "MNIST" / "raw") in msg and "VAEBOOK_DATA" in msg
    assert not any((tmp_path / "MNIST" / "raw").glob("*.gz"))  # nothing half-written


def test_env_variable_sets_root(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    assert data.data_root() == tmp_path


def test_truncated_file_is_reported(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    src = data.ensure_mnist(download=False)
    for name in data.FILES:
        (raw / name).write_bytes((src / name).read_bytes())
    with gzip.open(src / "t10k-images-idx3-ubyte.gz") as fh:
        body = fh.read()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(body[:-100]))
    with pytest.raises(data.DataError, match="truncated"):
        data.load_mnist(train=False, root=tmp_path, download=False)


def test_digit_subset_and_seeded_subset():
    images, labels = data.load_mnist(train=True)
    x, y = data.select(images, labels, digits=[1, 4, 8])
    assert set(y.unique().tolist()) == {1, 4, 8}
    assert len(y) == 6742 + 5842 + 5851
    a = data.select(images, labels, digits=[1, 4, 8], subset=500, seed=3)
    b = data.select(images, labels, digits=[1, 4, 8], subset=500, seed=3)
    c = data.select(images, labels, digits=[1, 4, 8], subset=500, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert len(a[1]) == 500


def test_validation_split_is_deterministic_and_disjoint():
    s1 = data.mnist_splits(train_subset=3000, val_fraction=0.2, seed=7)
    s2 = data.mnist_splits(train_subset=3000, val_fraction=0.2, seed=7)
    assert len(s1["val"]) == 600 and len(s1["train"]) == 2400
    assert torch.equal(s1["val"].x, s2["val"].x) and torch.equal(s1["train"].y, s2["train"].y)
    # disjoint: no validation image is also a training image (compared by their exact pixels)
    train_images = {x.numpy().tobytes() for x in s1["train"].x}
    assert not any(x.numpy().tobytes() in train_images for x in s1["val"].x)


def test_binarize_is_bernoulli():
    g = torch.Generator().manual_seed(0)
    x = torch.full((200_000,), 0.3)
    b = data.binarize(x, generator=g)
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert abs(b.mean().item() - 0.3) < 0.005  # 5 standard errors


def test_batches_cover_every_index_once():
    x = torch.arange(103)
    seen = torch.cat([b[0] for b in data.batches(x, 10, True, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(103))


@pytest.mark.parametrize("dx, dy", [(1.0, 0.0), (0.0, 2.0), (-3.0, 1.0), (0.4, -1.7)])
def test_translate_matches_scipy_shift(dx, dy):
    """Integer and sub-pixel shifts agree with scipy.ndimage.shift (bilinear, zero outside the image)."""
    import scipy.ndimage
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    got = data.translate(x, torch.tensor([[dx, dy], [dx, dy]], dtype=torch.float64))
    for i in range(2):
        ref = scipy.ndimage.shift(x[i, 0].numpy(), (dy, dx), order=1, mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(got[i, 0].numpy(), ref, atol=1e-10)


def test_random_translate_draws_bounded_shifts_per_image():
    x = torch.rand(64, 1, 28, 28, dtype=torch.float64)
    out = data.random_translate(x, 2.0, generator=torch.Generator().manual_seed(3))
    shifts = (torch.rand(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1) * 2.0
    assert torch.allclose(out, data.translate(x, shifts))
    assert shifts.abs().max() <= 2.0 and len({tuple(s) for s in shifts.tolist()}) == 64
    assert torch.equal(data.random_translate(x, 0.0), x)
    with pytest.raises(ValueError, match="N, C, H, W"):
        data.random_translate(x[:, 0])
