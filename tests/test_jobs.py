"""Training jobs as data (vaebook.jobs) and the shared evaluation helpers (vaebook.evaluate)."""

import pickle
from functools import partial

import numpy as np
import pytest
import torch

from vaebook.config import ParameterError
from vaebook.evaluate import batched, decode, latent_separation
from vaebook.jobs import Job, run_job, train_all
from vaebook.models import VAE, VAEConfig
from vaebook.train import fit


def _toy_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), None


def _job(name="toy", latent=3, epochs=2, **kw):
    return Job(name=name, model=partial(VAE, VAEConfig(latent_size=latent, arch="mlp", hidden_size=32)),
               data=partial(_toy_data, 256, 0), epochs=epochs, batch_size=64, seed=0, device="cpu", **kw)


def test_a_job_trains_exactly_as_fit_does(tmp_path, one_thread):
    job = _job()
    (via_job,) = train_all([job], cache=tmp_path / "a")
    x, _ = _toy_data()
    direct = fit(partial(VAE, VAEConfig(latent_size=3, arch="mlp", hidden_size=32)), x, epochs=2, batch_size=64,
                 seed=0, device="cpu", name="toy", cache=tmp_path / "b")
    assert via_job.path.name == direct.path.name  # the same cache key
    cols = [c for c in direct.history.columns if c != "seconds"]
    assert via_job.history[cols].equals(direct.history[cols])
    for k, v in direct.model.state_dict().items():
        assert torch.equal(via_job.model.state_dict()[k], v)


def test_jobs_pickle_and_train_all_loads_what_is_cached(tmp_path, one_thread):
    jobs = [_job("a", latent=2, epochs=1), _job("b", latent=4, epochs=1)]
    clone = pickle.loads(pickle.dumps(jobs))  # what a process pool or a remote worker receives
    first = train_all(jobs, cache=tmp_path, workers=1)  # here, one after another (Dask: test_parallel.py)
    again = train_all(clone, cache=tmp_path)
    assert [r.loaded for r in first] == [False, False] and [r.loaded for r in again] == [True, True]
    assert [r.model.latent_size for r in again] == [2, 4]  # results in the order of the jobs


def test_chapter_jobs_are_picklable():
    from vaebook.chapters import latent_size, resolve

    jobs = latent_size.jobs(resolve("latent_size", "smoke"))
    assert [j.name for j in jobs] == ["latent_size-d2", "latent_size-d4", "latent_size-d16", "latent_size-d2-seed1",
                                      "latent_size-d4-seed1", "latent_size-d16-seed1"]
    assert [j.name for j in pickle.loads(pickle.dumps(jobs))] == [j.name for j in jobs]


def test_train_all_rejects_what_is_not_a_job_and_duplicate_names(tmp_path):
    with pytest.raises(ParameterError, match="Job items"):
        train_all([{"name": "x"}], cache=tmp_path)
    with pytest.raises(ParameterError, match=r"share the checkpoint name\(s\) \['toy'\]"):
        train_all([_job(), _job()], cache=tmp_path)


# --- batched / decode ------------------------------------------------------------------------------------

def test_batched_equals_one_pass_and_restores_the_mode():
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Dropout(0.5)).train()
    x = torch.randn(1003, 5)
    out = batched(net, x, batch_size=100, module=net)
    net.eval()
    with torch.no_grad():
        expected = net(x)
    net.train()
    assert torch.allclose(out, expected, atol=1e-6) and net.training  # eval inside (no dropout), train after

    def boom(b):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        batched(boom, x, module=net)
    assert net.training
    assert batched(net, torch.empty(0, 5), module=net, width=4).shape == (0, 4)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        batched(net, x, batch_size=0)


def test_decode_matches_the_decoder_in_one_pass():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_size=3, arch="mlp", hidden_size=16))
    z = torch.randn(2500, 3)
    with torch.no_grad():
        expected = model.decode(z)
    assert torch.allclose(decode(model, z, batch_size=1000), expected, atol=1e-6)


# --- latent separation ------------------------------------------------------------------------------------

def test_separated_clusters_score_one_and_shuffled_labels_score_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    centres = np.eye(4) * 100
    codes = centres[labels] + rng.normal(size=(200, 4))
    s = latent_separation(codes, labels, seed=0)
    assert s["knn_accuracy"] == 1.0
    assert s["silhouette"] > 0.95  # within-cluster distance ~2, between ~141: (141 - 2) / 141
    shuffled = latent_separation(codes, rng.permutation(labels), seed=0)
    assert shuffled["knn_accuracy"] < 0.45 and abs(shuffled["silhouette"]) < 0.1  # chance is 0.25


def test_silhouette_closed_form():
    # class 0: five points at -1 and five at +1; class 1: five at 9 and five at 11 (on a line)
    codes = np.array([[-1.0], [1.0], [9.0], [11.0]] * 5)
    labels = np.array([0, 0, 1, 1] * 5)
    s = latent_separation(codes, labels, k=1, folds=2, seed=0)
    a = 5 * 2 / 9  # mean distance to the 9 others of its class: four at 0, five at 2 (every point)
    # nearest other class: outer points (-1, 11) are at 10 and 12 on average 11; inner ones (1, 9) at 8 and 10
    expected = ((11 - a) / 11 + (9 - a) / 9) / 2
    assert s["silhouette"] == pytest.approx(expected)
    assert s["knn_accuracy"] == 1.0


def test_latent_separation_rejects_bad_input():
    with pytest.raises(ValueError, match="at least two classes"):
        latent_separation(np.zeros((10, 2)), np.zeros(10))
    with pytest.raises(ValueError, match=r"\(N, d\) code matrix"):
        latent_separation(np.zeros((10, 2)), np.zeros(9))
