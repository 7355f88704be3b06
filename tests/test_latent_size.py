"""Tests for the latent-size chapter's helpers (vaebook.chapters.latent_size)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from vaebook.chapters.latent_size import last_epoch_change


def _h(values):
    return pd.DataFrame({"epoch": range(1, len(values) + 1), "test_neg_elbo": values})


def test_last_epoch_change_says_which_models_still_improve():
    text, falling = last_epoch_change({2: _h([160.0, 155.5, 155.25]), 16: _h([110.0, 106.0, 106.5])})
    assert falling == [2]
    assert text == ("Over the last of the 3 epochs the test negative ELBO changed by -0.25 nats for d = 2, "
                    "+0.50 nats for d = 16: only the models with d = 2 were still improving when training "
                    "stopped.")
    text, falling = last_epoch_change({4: _h([140.0, 139.0])})
    assert falling == [4] and "every model was still improving" in text and "-1.00 nats for d = 4" in text
    text, falling = last_epoch_change({4: _h([140.0, 141.0])})
    assert falling == [] and "no model was still improving" in text


def test_last_epoch_change_with_one_epoch():
    text, falling = last_epoch_change({2: _h([236.0]), 4: _h([241.0])})
    assert falling == [] and text == "With a single epoch there is no last-epoch change to report."


# --- replicate runs across seeds -------------------------------------------------------------------------

from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from vaebook.chapters import latent_size as chapter  # noqa: E402
from vaebook.models import VAE  # noqa: E402


def _smoke():
    from vaebook.chapters import resolve

    return resolve("latent_size", "smoke")


def test_smoke_jobs_train_every_size_on_each_seed_own_seed_first():
    run = _smoke()
    assert run.params.seeds == 2 and chapter.PROFILES["full"].seeds == 3 and chapter.DEFAULT.seeds == 3
    jobs = chapter.jobs(run)
    assert [j.name for j in jobs] == ["latent_size-d2", "latent_size-d4", "latent_size-d16",
                                      "latent_size-d2-seed1", "latent_size-d4-seed1", "latent_size-d16-seed1"]
    assert [j.seed for j in jobs] == [0, 0, 0, 1, 1, 1]
    assert [j.model().latent_size for j in jobs] == [2, 4, 16, 2, 4, 16]
    # the own seed's jobs keep their cache key; replicates record whose test images score them
    assert all("test_seed" not in j.extra_key for j in jobs[:3]) and all(j.extra_key["test_seed"] == 0 for j in jobs[3:])
    # each replicate trains on its own seed's draw of the training subset
    x0, x1 = jobs[0].data()[0], jobs[3].data()[0]
    assert x0.shape == x1.shape and not torch.equal(x0, x1)
    assert torch.equal(x1, chapter.chapter_data(run.params.replicate(1)).train.x)


def test_replicate_jobs_are_scored_once_on_the_own_seeds_test_images():
    run = _smoke()
    p = replace(run.params, epochs=3)
    own, other = chapter.chapter_data(p), chapter.chapter_data(p.replicate(1))
    assert not torch.equal(own.test.x, other.test.x)  # the smoke test subset depends on the seed: a real check
    jobs = chapter.jobs(SimpleNamespace(params=p))
    torch.manual_seed(0)
    model = VAE(chapter.model_config(2)).eval()
    device = torch.device("cpu")
    h0, h1 = jobs[0].hooks(device), jobs[3].hooks(device)
    assert h0.snapshot is not None and h1.snapshot is None          # GIF frames for the own seed only
    assert h1.epoch_end(model, 1) == {} and h1.epoch_end(model, 2) == {}   # replicates: last epoch only
    torch.manual_seed(1)
    m0 = h0.epoch_end(model, 3)
    torch.manual_seed(1)
    m1 = h1.epoch_end(model, 3)
    assert sorted(m1) == sorted(k for k in m0 if k.startswith("test_"))
    # the mean reconstructions' scores are deterministic; the ELBO draws z (after the training set's draws in m0)
    assert all(m0[k] == m1[k] for k in m1 if k != "test_neg_elbo")
    assert m1["test_neg_elbo"] == pytest.approx(m0["test_neg_elbo"], rel=0.01)
    assert "train_mse" in m0                                          # the own seed's curves keep the training scores
    assert jobs[3].extra_key["tracker"] != jobs[0].extra_key["tracker"]   # different hooks, different checkpoint


def _fit(psnr, ssim=0.5, elbo=100.0):
    """A FitResult stand-in whose history ends with the given test scores (earlier epochs are decoys)."""
    history = pd.DataFrame({"epoch": [1, 2], "test_psnr": [0.0, psnr], "test_ssim": [0.0, ssim],
                            "test_neg_elbo": [999.0, elbo]})
    return SimpleNamespace(history=history)


def test_fits_by_seed_splits_the_job_order_and_rejects_a_wrong_count():
    p = chapter.replace(chapter.DEFAULT, seed=5, seeds=3, latent_sizes=(2, 4))
    fits = [_fit(float(i)) for i in range(6)]
    split = chapter.fits_by_seed(p, fits)
    assert list(split) == [5, 6, 7]
    assert {s: list(by) for s, by in split.items()} == {5: [2, 4], 6: [2, 4], 7: [2, 4]}
    assert split[5][2] is fits[0] and split[5][4] is fits[1] and split[6][2] is fits[2] and split[7][4] is fits[5]
    with pytest.raises(ValueError, match=r"each of 3 seeds, i\.e\. 6 fits, got 5"):
        chapter.fits_by_seed(p, fits[:5])


def test_seed_scores_reads_each_fits_last_epoch():
    p = chapter.replace(chapter.DEFAULT, seeds=2)
    fits = {0: {2: _fit(14.0, 0.40, 160.0), 4: _fit(16.5, 0.55, 140.0)},
            1: {2: _fit(13.5, 0.38, 162.0), 4: _fit(16.0, 0.52, 141.0)}}
    table = chapter.seed_scores(p, fits)
    assert list(table.index) == [(0, 2), (0, 4), (1, 2), (1, 4)]
    assert table.index.names == ["seed", "latent size"]
    assert list(table[chapter.SCORES["test_psnr"]]) == [14.0, 16.5, 13.5, 16.0]
    assert list(table[chapter.SCORES["test_ssim"]]) == [0.40, 0.55, 0.38, 0.52]
    assert list(table[chapter.SCORES["test_neg_elbo"]]) == [160.0, 140.0, 162.0, 141.0]


def _scores(psnr_by_seed):
    rows = [{"seed": s, "latent size": d, chapter.PSNR: v} for s, by in psnr_by_seed.items() for d, v in by.items()]
    return pd.DataFrame(rows).set_index(["seed", "latent size"])


def test_psnr_steps_finds_the_smallest_step_up_over_seeds():
    # seed 1's sizes are listed out of order: steps go up in d, not in table order
    ev = chapter.psnr_steps(_scores({0: {2: 14.0, 4: 16.0, 16: 20.0}, 1: {16: 19.0, 2: 14.5, 4: 15.0},
                                     2: {2: 13.0, 4: 15.5, 16: 19.5}}))
    assert ev["increasing"] == {0: True, 1: True, 2: True} and ev["n_increasing"] == 3
    assert ev["min_step"] == pytest.approx(0.5) and ev["min_at"] == (1, 2, 4)
    assert ev["steps"][(0, 4, 16)] == pytest.approx(4.0) and len(ev["steps"]) == 6
    # one seed where d = 4 falls below d = 2
    ev = chapter.psnr_steps(_scores({0: {2: 14.0, 4: 16.0, 16: 20.0}, 1: {2: 14.5, 4: 14.0, 16: 19.0}}))
    assert ev["increasing"] == {0: True, 1: False} and ev["n_increasing"] == 1
    assert ev["min_step"] == pytest.approx(-0.5) and ev["min_at"] == (1, 2, 4)
    # one size: no step
    ev = chapter.psnr_steps(_scores({0: {2: 14.0}, 1: {2: 15.0}}))
    assert ev["min_at"] is None and ev["steps"] == {} and ev["min_step"] != ev["min_step"]  # NaN
