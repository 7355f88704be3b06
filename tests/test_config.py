"""Chapter parameters: the typed declarations, profiles as differences, one-line messages, and the
book's command line rejecting bad overrides before any kernel starts."""

import dataclasses
import subprocess
import sys

import pytest

from vaebook import book, chapters
from vaebook.config import (OPTIONAL_PROFILE_NAMES, PROFILE_NAMES, ChapterParams, ParameterError, chapter_params, integer,
                            integers, number, resolve_params)


@dataclasses.dataclass(frozen=True)
class Demo(ChapterParams):
    epochs: int = integer(5, "epochs")
    latent_sizes: tuple = integers((2, 4, 16), "sizes")
    lr: float = number(1e-3, "learning rate")
    train_subset: int | None = integer(None, "images", optional=True)


PROFILES = {"smoke": dataclasses.replace(Demo(), epochs=1, latent_sizes=[2, 4], train_subset=100),
            "default": Demo()}


def test_profiles_are_differences_and_lists_become_tuples():
    assert PROFILES["smoke"].latent_sizes == (2, 4) and PROFILES["smoke"].lr == 1e-3


def test_profile_and_overrides():
    run = resolve_params("demo", PROFILES, "smoke", {"epochs": 3, "latent_sizes": None})
    assert run.epochs == 3 and run.latent_sizes == (2, 4) and run.overrides == {"epochs": 3}
    text = run._repr_markdown_()
    assert "override" in text and "torch" in text and "| `epochs` | `3` |" in text


@pytest.mark.parametrize("overrides, match", [
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"latent_sizes": [2, 0]}, "latent_sizes must contain integers >= 1"),
    ({"latent_sizes": []}, "latent_sizes must be a non-empty list"),
    ({"device": "gpu"}, "unknown device 'gpu'"),
    ({"lr": 0}, "lr must be a finite number > 0"),
    ({"lr": "fast"}, "lr must be a finite number > 0"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"train_subset": 0}, "train_subset must be an integer >= 1"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"epochs": True}, "epochs must be an integer"),
    ({"epcohs": 3}, r"has no parameter\(s\) \['epcohs'\].*did you mean 'epochs'"),
])
def test_invalid_parameters_fail_with_one_clear_message(overrides, match):
    with pytest.raises(ParameterError, match=match) as info:
        resolve_params("demo", PROFILES, "default", overrides)
    assert "\n" not in str(info.value)


def test_unknown_profile():
    with pytest.raises(ParameterError, match=r"unknown profile 'fast'.*\['default', 'smoke'\]"):
        resolve_params("demo", PROFILES, "fast", {})


def test_cuda_request_without_gpu_is_explained():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ParameterError, match="no CUDA GPU"):
        resolve_params("demo", PROFILES, "smoke", {"device": "cuda"})


def test_a_bad_profile_fails_when_declared():
    with pytest.raises(ParameterError, match="epochs must be an integer >= 1"):
        dataclasses.replace(Demo(), epochs=0)


@pytest.mark.parametrize("name", book.CHAPTERS)
def test_every_profile_of_every_chapter_is_valid(name):
    profiles = chapters.profiles(name)
    assert set(PROFILE_NAMES) <= set(profiles) <= set(PROFILE_NAMES + OPTIONAL_PROFILE_NAMES)
    for profile, params in profiles.items():
        run = chapters.resolve(name, profile)  # checks every field again, nothing executes
        assert run.params == params and isinstance(params, ChapterParams)


@pytest.mark.parametrize("name", book.CHAPTERS)
def test_parameters_cell_names_exactly_the_declared_fields(name):
    import jupytext

    nb = jupytext.read(book.NOTEBOOKS / f"{name}.py")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(cell.source, namespace)
    names = {k for k in namespace if not k.startswith("__")}
    declared = set(chapters.profiles(name)["default"].names())
    assert names == declared | {"profile"}
    assert all(namespace[k] is None for k in declared)  # None: take the profile's value


def test_chapter_params_reads_the_notebook_namespace():
    namespace = {"profile": "smoke", "latent_sizes": [2], "epochs": None, "In": [], "np": sys}
    run = chapter_params("latent_size", "smoke", namespace)
    assert run.latent_sizes == (2,) and run.overrides == {"latent_sizes": (2,)}
    with pytest.raises(ParameterError, match=r"\['epcohs'\]"):
        chapter_params("latent_size", "smoke", {"epcohs": 3})


def test_book_rejects_a_bad_override_before_starting_a_kernel(tmp_path):
    out_dir = tmp_path / "generated"  # made just before a kernel starts: it must not exist afterwards
    out = subprocess.run([sys.executable, "-m", "vaebook.book", "execute", "latent_size", "--profile", "smoke",
                          "-p", "latent_sizes", "[2, 0]", "--out-dir", str(out_dir)], capture_output=True, text=True,
                         env={**__import__("os").environ, "VAEBOOK_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == ["error: latent_sizes must contain integers >= 1, got 0 in [2, 0]; "
                     "pass e.g. -p latent_sizes '[2, 4, 16]'"]
    assert list(tmp_path.iterdir()) == []  # no kernel's output folder, nothing trained


def test_parse_params_reads_yaml_numbers_without_a_dot():
    assert book.parse_params([["lr", "1e-3"], ["latent_sizes", "[2, 4]"], ["device", "cpu"]]) == \
        {"lr": 1e-3, "latent_sizes": [2, 4], "device": "cpu"}


def test_seeded_params_list_replicate_and_name_the_seeds():
    from vaebook.config import SeededParams

    p = SeededParams(seed=7, seeds=3)
    assert p.seed_values() == [7, 8, 9]
    assert p.replicate(8).seed == 8 and p.replicate(8).seeds == 3 and p.seed == 7   # a copy, not a change
    assert p.job_name("gan_vs_vae-gan", 7) == "gan_vs_vae-gan"                    # the own seed keeps its name
    assert p.job_name("gan_vs_vae-gan", 9) == "gan_vs_vae-gan-seed9"
    assert SeededParams(seeds=1).seed_values() == [0]
    with pytest.raises(ParameterError, match="seeds must be an integer >= 1"):
        SeededParams(seeds=0)
