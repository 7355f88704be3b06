"""Training jobs side by side on Dask (vaebook.jobs.train_all with workers / train_on_dask): the same
bits as one after another, a killed worker's job resumes elsewhere, a failing job is named."""

import os
import signal
import threading
import time
from functools import partial

import pytest
import torch

from vaebook import data
from vaebook.jobs import Job, JobError, dask_client, job_checkpoint, run_job, train_all, train_on_dask
from vaebook.models import VAE, VAEConfig

pytestmark = pytest.mark.slow


def _job(name, latent, epochs=2, subset=1000, lr=1e-3, hidden=64):
    return Job(name=name, model=partial(VAE, VAEConfig(latent_size=latent, arch="mlp", hidden_size=hidden)),
               data=partial(data.training_tensors, subset=subset, seed=0), epochs=epochs, batch_size=100, lr=lr,
               seed=0, device="cpu", chapter="test", threads=1)


def _same(a, b):
    cols = [c for c in a.history.columns if c != "seconds"]
    return a.history[cols].equals(b.history[cols]) and all(
        torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_a_local_cluster_gives_the_same_bits_as_one_after_another(tmp_path):
    jobs = [_job("a", 2), _job("b", 4), _job("c", 8)]
    parallel = train_all(jobs, cache=tmp_path / "dask", workers=2)
    sequential = train_all(jobs, cache=tmp_path / "seq", workers=1)
    assert not any(r.loaded for r in parallel)  # trained by the workers in this call (then loaded here)
    assert not any(r.loaded for r in sequential)
    again = train_all(jobs, cache=tmp_path / "dask", workers=2)
    assert all(r.loaded for r in again)  # now they come from the cache
    assert all(_same(p, s) for p, s in zip(parallel, sequential))


def test_a_killed_worker_does_not_lose_the_grid(tmp_path):
    jobs = [_job("long", 2, epochs=40, subset=2000, hidden=400), _job("short", 4, epochs=2)]
    with dask_client(workers=2) as client:  # a cluster we hold, so we can kill one of its workers mid-job
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(
            summary=train_on_dask(jobs, cache=tmp_path, client=client)))
        thread.start()
        deadline = time.time() + 120
        while job_checkpoint(jobs[0], tmp_path)[1] < 2 and time.time() < deadline:
            time.sleep(0.2)
        pids = client.run(os.getpid)
        busy = [w for w, keys in client.processing().items() if any("long" in str(k) for k in keys)]
        assert busy, "the long job should be running"
        os.kill(pids[busy[0]], signal.SIGKILL)
        thread.join(timeout=300)
    assert "summary" in result
    assert result["summary"][0]["resumed_from"] >= 2  # the rerun resumed from the dead worker's checkpoint
    resumed = run_job(jobs[0], cache=tmp_path)
    assert resumed.loaded
    uninterrupted = run_job(jobs[0], cache=tmp_path / "clean")
    assert _same(resumed, uninterrupted)


def test_a_failing_job_is_named_and_the_others_are_kept(tmp_path):
    bad = _job("diverges", 2, lr=1e6)  # NaN loss: TrainingError inside the worker
    good = _job("fine", 4)
    with pytest.raises(JobError, match=r"chapter 'test', model 'diverges' failed after epoch 0 of 2"):
        train_all([bad, good], cache=tmp_path, workers=2)
    assert job_checkpoint(good, tmp_path)[1] == 2


def test_jobs_go_to_a_cluster_given_by_its_scheduler_address(tmp_path, monkeypatch):
    """What `--scheduler tcp://host:port` / $VAEBOOK_SCHEDULER does: the jobs train on that cluster's workers
    (here a separate local cluster on the loopback), and the results here are loaded from the shared cache."""
    from distributed import LocalCluster

    jobs = [_job("x", 2), _job("y", 3)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        monkeypatch.setenv("VAEBOOK_SCHEDULER", cluster.scheduler_address)
        remote = train_all(jobs, cache=tmp_path / "remote")
    monkeypatch.delenv("VAEBOOK_SCHEDULER")
    here = train_all(jobs, cache=tmp_path / "here", workers=1)
    assert not any(r.loaded for r in remote) and all(_same(a, b) for a, b in zip(remote, here))


def test_local_workers_get_the_malloc_settings_not_dasks_trim_threshold():
    with dask_client(workers=1) as client:
        env = client.run(lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")})
    (worker_env,) = env.values()
    assert worker_env == {"MALLOC_TRIM_THRESHOLD_": "268435456", "OMP_NUM_THREADS": "1"}


def test_a_taken_dashboard_port_prints_nothing_into_the_page():
    import socket
    import warnings

    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 8787))  # Dask's default HTTP port, held by someone else
        taken.listen()
    except OSError:
        pass  # already held by another process: the same situation
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with dask_client(workers=1) as client:
                assert client.submit(int, 1).result() == 1
    finally:
        taken.close()
    assert [str(w.message) for w in caught if "port" in str(w.message).lower()] == []
