"""Chapter parameters: named profiles, overrides from papermill, validation, and a record of the run.

Every chapter has one ``parameters`` cell (papermill injects overrides after it) whose values default to
``None``, meaning "take the profile's value". The next cell calls :func:`resolve` with the chapter's
profile table, so an invalid value fails there with one clear message, before anything trains::

    run = resolve("latent_size", PROFILES, profile, epochs=epochs, latent_sizes=latent_sizes)
    run  # renders the profile, every parameter, the device and the package versions
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

PROFILE_NAMES = ("smoke", "default", "full")


class ParameterError(ValueError):
    """A chapter or library parameter is invalid. The message says which, why, and how to fix it."""


# --- validators, keyed by parameter name; every chapter shares them ---------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(name: str, v: Any, minimum: int = 1) -> None:
    if not _is_int(v) or v < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {v!r}; "
                             f"pass e.g. -p {name} {max(minimum, 1)}")


def _positive_int_list(name: str, v: Any) -> None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)) or len(v) == 0:
        raise ParameterError(f"{name} must be a non-empty list of integers >= 1, got {v!r}; "
                             f"pass e.g. -p {name} '[2, 4, 16]'")
    for item in v:
        if not _is_int(item) or item < 1:
            raise ParameterError(f"{name} must contain integers >= 1, got {item!r} in {v!r}")


def _positive_float(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0) or v != v or v == float("inf"):
        raise ParameterError(f"{name} must be a finite number > 0, got {v!r}")


def _nonneg_float_list(name: str, v: Any) -> None:
    vals = v if isinstance(v, (list, tuple)) else [v]
    if len(vals) == 0:
        raise ParameterError(f"{name} must be a non-empty list of numbers >= 0, got {v!r}")
    for item in vals:
        if item is None or isinstance(item, str):
            continue  # named settings such as "source" are checked by the chapter
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not (item >= 0) or item == float("inf"):
            raise ParameterError(f"{name} must contain finite numbers >= 0, got {item!r} in {v!r}")


def _optional_subset(name: str, v: Any) -> None:
    if v is None:
        return
    _positive_int(name, v, minimum=1)


def _fraction(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < 1):
        raise ParameterError(f"{name} must be a fraction strictly between 0 and 1, got {v!r}")


def _digits(name: str, v: Any) -> None:
    if v is None:
        return
    if not isinstance(v, (list, tuple)) or not v or any((not _is_int(d)) or not 0 <= d <= 9 for d in v):
        raise ParameterError(f"{name} must be a non-empty list of digits 0-9 (or None for all), got {v!r}")
    if len(set(v)) != len(v):
        raise ParameterError(f"{name} has repeated digits: {v!r}")


def validate_device(v: Any) -> str:
    """Return a torch device string for 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; raise otherwise."""
    if not isinstance(v, str):
        raise ParameterError(f"device must be a string ('auto', 'cpu', 'cuda', 'cuda:N', 'mps'), got {v!r}")
    if v == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if v == "cpu":
        return v
    if v == "cuda" or (v.startswith("cuda:") and v[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ParameterError(f"device {v!r} was requested but torch sees no CUDA GPU here; "
                                 "use device='auto' or 'cpu'")
        if ":" in v and int(v[5:]) >= torch.cuda.device_count():
            raise ParameterError(f"device {v!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return v
    if v == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ParameterError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
        return v
    raise ParameterError(f"unknown device {v!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


def _device(name: str, v: Any) -> None:
    validate_device(v)


def _seed(name: str, v: Any) -> None:
    if not _is_int(v) or v < 0:
        raise ParameterError(f"{name} must be an integer >= 0, got {v!r}")


VALIDATORS: dict[str, Callable[[str, Any], None]] = {
    "epochs": _positive_int,
    "batch_size": _positive_int,
    "latent_size": _positive_int,
    "latent_sizes": _positive_int_list,
    "hidden_size": _positive_int,
    "train_subset": _optional_subset,
    "test_subset": _optional_subset,
    "n_samples": _positive_int,
    "lr": _positive_float,
    "betas": _nonneg_float_list,
    "val_fraction": _fraction,
    "digits": _digits,
    "device": _device,
    "seed": _seed,
}


def validate(params: Mapping[str, Any], extra: Mapping[str, Callable[[str, Any], None]] | None = None) -> None:
    """Check every known parameter; ``extra`` adds chapter-specific validators."""
    rules = dict(VALIDATORS)
    if extra:
        rules.update(extra)
    for name, value in params.items():
        rule = rules.get(name)
        if rule is None and name.endswith("_epochs"):
            rule = _positive_int
        if rule is not None:
            rule(name, value)


# --- the run record ---------------------------------------------------------------------------------

def _git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return out.stdout.strip() + ("+local changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def versions() -> dict[str, str]:
    """Versions of the packages that shape the results."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("vaebook", "torch", "numpy", "scipy", "scikit-learn", "scikit-image", "torchmetrics",
                "pandas", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    out["vaebook commit"] = _git_commit()
    return out


@dataclass
class Run:
    """A chapter's resolved parameters plus where and with what it ran."""

    chapter: str
    profile: str
    params: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"chapter {self.__dict__.get('chapter')!r} has no parameter {name!r}")

    @property
    def torch_device(self) -> torch.device:
        return torch.device(validate_device(self.params.get("device", "auto")))

    def machine(self) -> dict[str, str]:
        dev = self.torch_device
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
        return {"device": f"{dev} ({name})", "torch threads": str(torch.get_num_threads()),
                "cpu cores": str(os.cpu_count())}

    def table(self) -> "Any":
        import pandas as pd

        rows = [("profile", self.profile, "")]
        for k, v in self.params.items():
            rows.append((k, repr(v), "override" if k in self.overrides else "profile"))
        return pd.DataFrame(rows, columns=["parameter", "value", "from"]).set_index("parameter")

    def _repr_markdown_(self) -> str:
        lines = [f"**Chapter `{self.chapter}`, profile `{self.profile}`.**", "",
                 "| parameter | value | from |", "|---|---|---|"]
        for k, v in self.params.items():
            lines.append(f"| `{k}` | `{v!r}` | {'override' if k in self.overrides else 'profile'} |")
        lines += ["", "| machine and versions | |", "|---|---|"]
        for k, v in {**self.machine(), **versions()}.items():
            lines.append(f"| {k} | `{v}` |")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "profile": self.profile, **self.params}


def resolve(chapter: str, profiles: Mapping[str, Mapping[str, Any]], profile: str,
            extra_validators: Mapping[str, Callable[[str, Any], None]] | None = None,
            **overrides: Any) -> Run:
    """Merge a profile's parameters with the non-``None`` overrides, validate, and return a :class:`Run`.

    Raises :class:`ParameterError` for an unknown profile, an unknown override, or an invalid value.
    """
    if profile not in profiles:
        raise ParameterError(f"unknown profile {profile!r} for chapter {chapter!r}; "
                             f"choose one of {sorted(profiles)} (e.g. -p profile smoke)")
    params = dict(profiles[profile])
    unknown = sorted(k for k in overrides if k not in params)
    if unknown:
        raise ParameterError(f"chapter {chapter!r} has no parameter(s) {unknown}; "
                             f"its parameters are {sorted(params)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    params.update(given)
    validate(params, extra_validators)
    return Run(chapter=chapter, profile=profile, params=params, overrides=given)
