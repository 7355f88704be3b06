"""Precision, memory format and thread count: what `precision="auto"` picks, that each is part of the
checkpoint key, that bf16 training keeps fp32 weights, and how many jobs train side by side."""

from functools import partial

import pytest
import torch

from vaebook import train
from vaebook.classifier import MNISTClassifier
from vaebook.config import ParameterError
from vaebook.flow_vae import FlowVAE, FlowVAEConfig
from vaebook.gan import GAN
from vaebook.jobs import Job, job_path, local_workers, run_job
from vaebook.models import VAE, VAEConfig


def _data(n=256):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), None


@pytest.mark.parametrize("native", [True, False])
def test_auto_takes_the_measured_preference_only_with_native_bf16(monkeypatch, native):
    monkeypatch.setattr(train, "cpu_has_fast_bf16", lambda: native)
    cpu = torch.device("cpu")
    expect = "bf16" if native else "fp32"
    for model in (VAE(VAEConfig(arch="conv")), GAN(), MNISTClassifier()):
        assert train.resolve_precision("auto", model, cpu) == expect
    for model in (VAE(VAEConfig(arch="mlp")), FlowVAE(FlowVAEConfig(flow="planar", n_flows=2))):
        assert train.resolve_precision("auto", model, cpu) == "fp32"  # measured: no gain, so no other result
    assert train.resolve_precision("bf16", VAE(VAEConfig(arch="mlp")), cpu) == "bf16"  # forcing works
    with pytest.raises(ParameterError, match="precision must be one of"):
        train.resolve_precision("half", GAN(), cpu)


def test_the_conv_models_ask_for_channels_last_and_custom_networks_do_not():
    assert VAE(VAEConfig(arch="conv")).channels_last and GAN().channels_last and MNISTClassifier().channels_last
    assert not VAE(VAEConfig(arch="mlp")).channels_last
    assert not FlowVAE(FlowVAEConfig()).channels_last


def _job(**kw):
    base = dict(name="k", model=partial(VAE, VAEConfig(latent_size=2, arch="conv")), data=_data, epochs=1,
                device="cpu", threads=1, precision="fp32", channels_last=False)
    return Job(**{**base, **kw})


def test_precision_memory_format_and_threads_are_in_the_key(tmp_path):
    paths = {job_path(_job(**kw), tmp_path).name for kw in
             ({}, {"precision": "bf16"}, {"channels_last": True}, {"threads": 2})}
    assert len(paths) == 4


def test_bf16_training_keeps_fp32_weights_and_channels_last_layout(tmp_path):
    result = run_job(_job(precision="bf16", channels_last=True), cache=tmp_path)
    weights = [p for p in result.model.parameters()]
    assert all(p.dtype == torch.float32 for p in weights)
    conv = next(m.weight for m in result.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(torch.tensor(result.history["loss"].to_numpy())).all()
    again = run_job(_job(precision="bf16", channels_last=True), cache=tmp_path)
    assert again.loaded  # the same set-up finds its checkpoint


def test_local_workers(monkeypatch):
    monkeypatch.delenv("VAEBOOK_WORKERS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    jobs = [_job(name=str(i)) for i in range(5)]
    assert local_workers(jobs) == 5                                   # 8 cores, 1 thread each, 5 jobs
    assert local_workers([_job(name=str(i), threads=4) for i in range(5)]) == 2   # 8 // 4
    monkeypatch.setenv("VAEBOOK_WORKERS", "3")
    assert local_workers(jobs) == 3
    monkeypatch.setenv("VAEBOOK_WORKERS", "zero")
    with pytest.raises(ParameterError, match="VAEBOOK_WORKERS must be an integer >= 1"):
        local_workers(jobs)
