import pytest

from vaebook.config import ParameterError, resolve

PROFILES = {"smoke": dict(epochs=1, latent_sizes=[2, 4], device="auto", seed=0, lr=1e-3, train_subset=100),
            "default": dict(epochs=5, latent_sizes=[2, 4, 16], device="auto", seed=0, lr=1e-3, train_subset=None)}


def test_profile_and_overrides():
    run = resolve("demo", PROFILES, "smoke", epochs=3, latent_sizes=None)
    assert run.epochs == 3 and run.latent_sizes == [2, 4] and run.overrides == {"epochs": 3}
    assert "override" in run._repr_markdown_() and "torch" in run._repr_markdown_()


@pytest.mark.parametrize("overrides, match", [
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"latent_sizes": [2, 0]}, "latent_sizes must contain integers >= 1"),
    ({"latent_sizes": []}, "latent_sizes must be a non-empty list"),
    ({"device": "gpu"}, "unknown device 'gpu'"),
    ({"lr": 0}, "lr must be a finite number > 0"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"train_subset": 0}, "train_subset must be an integer >= 1"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"epcohs": 3}, r"has no parameter\(s\) \['epcohs'\]"),
])
def test_invalid_parameters_fail_with_one_clear_message(overrides, match):
    with pytest.raises(ParameterError, match=match):
        resolve("demo", PROFILES, "default", **overrides)


def test_unknown_profile():
    with pytest.raises(ParameterError, match=r"unknown profile 'fast'.*\['default', 'smoke'\]"):
        resolve("demo", PROFILES, "fast")


def test_cuda_request_without_gpu_is_explained():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ParameterError, match="no CUDA GPU"):
        resolve("demo", PROFILES, "smoke", device="cuda")
