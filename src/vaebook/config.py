"""Chapter parameters: one typed, frozen dataclass per chapter, profiles written as differences, and the
record of a run.

A chapter declares its parameters once, in ``vaebook.chapters.NAME``::

    @dataclass(frozen=True)
    class Params(ChapterParams):
        latent_sizes: tuple[int, ...] = integers((2, 4, 16), "latent sizes to compare")
        epochs: int = integer(12, "training epochs per model")

    DEFAULT = Params()
    PROFILES = {"smoke": replace(DEFAULT, epochs=1), "default": DEFAULT, "full": replace(DEFAULT, epochs=50)}

Each field's limits live beside it (the small vocabulary below: :func:`integer`, :func:`number`,
:func:`integers`, :func:`choice`, ...). Constructing a ``Params`` (and so ``replace``) checks every field,
so an invalid profile fails at import and an invalid override fails with one line naming the parameter,
the value and an example of a valid one. The notebook's ``parameters`` cell lists the same names with
``None`` ("take the profile's value"); the next cell is one call::

    run = chapter_params("latent_size", profile, globals())
    run  # renders the profile, every parameter, the device and the package versions

``python -m vaebook.book execute NAME -p KEY VALUE`` runs the same check before it starts a kernel.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import platform
import subprocess
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

PROFILE_NAMES = ("smoke", "default", "full")  # every chapter has these three
OPTIONAL_PROFILE_NAMES = ("reference",)        # a smaller stand-in for a full profile too long to run
PROFILE_HELP = "smoke | default | full (| reference, where a chapter declares one)"


class ParameterError(ValueError):
    """A chapter or library parameter is invalid. The message says which, why, and how to fix it."""


# --- the validator vocabulary: each returns a dataclass field whose metadata holds its check ---------

Check = Callable[[str, Any], Any]  # (name, value) -> normalised value, or raise ParameterError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _param(default: Any, check: Check, help: str) -> Any:
    return field(default=default, metadata={"check": check, "help": help})


def check_integer(name: str, v: Any, minimum: int = 1, maximum: int | None = None,
                  optional: bool = False, none_means: str = "") -> int | None:
    if v is None and optional:
        return None
    bound = f">= {minimum}" + (f" and <= {maximum:,}" if maximum is not None else "")
    if not _is_int(v) or v < minimum or (maximum is not None and v > maximum):
        alt = f" (or None for {none_means})" if optional else ""
        raise ParameterError(f"{name} must be an integer {bound}{alt}, got {v!r}; "
                             f"pass e.g. -p {name} {max(minimum, 1)}")
    return v


def integer(default: int | None, help: str, minimum: int = 1, maximum: int | None = None,
            optional: bool = False, none_means: str = "all") -> Any:
    """An integer in [minimum, maximum]; ``optional`` also allows None (meaning ``none_means``)."""
    return _param(default, lambda n, v: check_integer(n, v, minimum, maximum, optional, none_means), help)


def number(default: float, help: str, minimum: float = 0.0, inclusive: bool = False,
           maximum: float | None = None) -> Any:
    """A finite number > minimum (>= with ``inclusive``), at most ``maximum``; ints become floats."""

    def check(name: str, v: Any) -> float:
        ok = _is_number(v) and (v >= minimum if inclusive else v > minimum) and (maximum is None or v <= maximum)
        if not ok:
            rel = ">=" if inclusive else ">"
            upper = f" and <= {maximum}" if maximum is not None else ""
            raise ParameterError(f"{name} must be a finite number {rel} {minimum:g}{upper}, got {v!r}; "
                                 f"pass e.g. -p {name} {default!r}")
        return float(v)

    return _param(default, check, help)


def fraction(default: float, help: str) -> Any:
    """A number strictly between 0 and 1."""

    def check(name: str, v: Any) -> float:
        if not _is_number(v) or not 0 < v < 1:
            raise ParameterError(f"{name} must be a fraction strictly between 0 and 1, got {v!r}; "
                                 f"pass e.g. -p {name} {default!r}")
        return float(v)

    return _param(default, check, help)


def integers(default: Sequence[int], help: str, minimum: int = 1, maximum: int | None = None) -> Any:
    """A non-empty list of integers in [minimum, maximum], stored as a tuple; a single integer is a list of one."""

    def check(name: str, v: Any) -> tuple[int, ...]:
        if _is_int(v):
            v = [v]
        example = " ".join(str(x) for x in default)
        if not isinstance(v, (list, tuple)) or len(v) == 0:
            raise ParameterError(f"{name} must be a non-empty list of integers >= {minimum}, got {v!r}; "
                                 f"pass e.g. -p {name} '[{example.replace(' ', ', ')}]'")
        for item in v:
            if not _is_int(item) or item < minimum or (maximum is not None and item > maximum):
                bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
                raise ParameterError(f"{name} must contain integers {bound}, got {item!r} in {list(v)!r}; "
                                     f"pass e.g. -p {name} '{list(default)!r}'")
        return tuple(v)

    return _param(tuple(default), check, help)


def choice(default: Any, help: str, options: Sequence[Any]) -> Any:
    """One of ``options``."""

    def check(name: str, v: Any) -> Any:
        if v not in options or isinstance(v, bool) != isinstance(default, bool):
            raise ParameterError(f"{name} must be one of {list(options)!r}, got {v!r}; "
                                 f"pass e.g. -p {name} {options[0]!r}")
        return v

    return _param(default, check, help)


def digits(default: Sequence[int] | None, help: str) -> Any:
    """A non-empty list of distinct digits 0-9 (a tuple), or None for all ten."""

    def check(name: str, v: Any) -> tuple[int, ...] | None:
        if v is None:
            return None
        if not isinstance(v, (list, tuple)) or not v or any((not _is_int(d)) or not 0 <= d <= 9 for d in v):
            raise ParameterError(f"{name} must be a non-empty list of digits 0-9 (or None for all), got {v!r}; "
                                 f"pass e.g. -p {name} '[1, 4, 8]'")
        if len(set(v)) != len(v):
            raise ParameterError(f"{name} has repeated digits: {v!r}; pass e.g. -p {name} '[1, 4, 8]'")
        return tuple(v)

    return _param(None if default is None else tuple(default), check, help)


def custom(default: Any, help: str, check: Check) -> Any:
    """A field with a chapter's own check (it raises :class:`ParameterError` and returns the value)."""
    return _param(default, check, help)


def validate_device(v: Any) -> str:
    """Return a torch device string for 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; raise otherwise."""
    if not isinstance(v, str):
        raise ParameterError(f"device must be a string ('auto', 'cpu', 'cuda', 'cuda:N', 'mps'), got {v!r}; "
                             "pass e.g. -p device auto")
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
    raise ParameterError(f"unknown device {v!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' "
                         "(e.g. -p device auto)")


def _check_device(name: str, v: Any) -> str:
    validate_device(v)
    return v


@dataclass(frozen=True)
class ChapterParams:
    """Fields every chapter has. Subclasses add theirs; constructing one checks (and normalises) them all."""

    seed: int = integer(0, "seed of every random choice (weights, batches, data subsets, samples)", minimum=0)
    device: str = custom("auto", "'auto' (CUDA if present, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'",
                         _check_device)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            if check is not None:
                object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class TrainingParams(ChapterParams):
    """Fields every chapter that trains models has, passed to each of its training jobs."""

    precision: str = choice("auto", "'auto' (each model in the precision it was measured to train as well "
                            "in, where the hardware has native bf16), 'fp32' or 'bf16'", ("auto", "fp32", "bf16"))
    threads: int = integer(1, "torch threads per training job (results depend on it; one lets two jobs "
                           "train side by side on two cores)", maximum=256)

    def job_settings(self) -> dict[str, Any]:
        """The settings every training job of the chapter shares (see :class:`vaebook.jobs.Job`)."""
        return {"seed": self.seed, "device": self.device, "precision": self.precision, "threads": self.threads}


@dataclass(frozen=True)
class SeededParams(TrainingParams):
    """A chapter that compares models trains each of them with ``seeds`` seeds (``seed``, ``seed`` + 1, ...),
    so every comparison it draws can be checked across training runs, not one draw."""

    seeds: int = integer(3, "training seeds per model (seed, seed + 1, ...); a comparison is claimed only "
                         "if it holds for every one (3 or more)", maximum=100)

    def seed_values(self) -> list[int]:
        """The seeds of the chapter's replicate runs, the chapter's own ``seed`` first."""
        return [self.seed + i for i in range(self.seeds)]

    def replicate(self, seed: int) -> "SeededParams":
        """These parameters with ``seed`` in place of the chapter's own (one replicate run)."""
        return dataclasses.replace(self, seed=seed)

    def job_name(self, name: str, seed: int) -> str:
        """A model's checkpoint name for ``seed``: the chapter's own seed keeps the plain ``name`` (so its
        cached models keep their files), a replicate adds ``-seed{seed}``."""
        return name if seed == self.seed else f"{name}-seed{seed}"


# --- resolving a chapter's parameters -----------------------------------------------------------------

def _unknown(chapter: str, names: Sequence[str], valid: Sequence[str]) -> ParameterError:
    hints = []
    for n in names:
        close = difflib.get_close_matches(n, valid, n=1)
        hints.append(f"{n!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ParameterError(f"chapter {chapter!r} has no parameter(s) {sorted(names)}: {', '.join(hints)}; "
                          f"its parameters are {sorted(valid)}")


def resolve_params(chapter: str, profiles: Mapping[str, ChapterParams], profile: str,
                   overrides: Mapping[str, Any]) -> "Run":
    """The profile's parameters with the non-``None`` ``overrides`` applied and checked, as a :class:`Run`.

    Raises :class:`ParameterError` for an unknown profile, an unknown name, or an invalid value.
    """
    if not isinstance(profile, str) or profile not in profiles:
        raise ParameterError(f"unknown profile {profile!r} for chapter {chapter!r}; "
                             f"choose one of {sorted(profiles)} (e.g. -p profile smoke)")
    base = profiles[profile]
    valid = base.names()
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        raise _unknown(chapter, unknown, valid)
    given = {k: v for k, v in overrides.items() if v is not None}
    params = dataclasses.replace(base, **given)
    return Run(chapter=chapter, profile=profile, params=params,
               overrides={k: getattr(params, k) for k in given})


# Names a Jupyter kernel defines by itself; anything else in the parameters cell's namespace that is not a
# parameter is a misspelt or unknown override (papermill injects unknown names without complaint).
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open", "profile"}


def chapter_params(chapter: str, profile: str, namespace: Mapping[str, Any]) -> "Run":
    """Resolve a chapter's parameters from its notebook namespace (``globals()`` after the parameters cell).

    Every parameter name whose value is not ``None`` is an override; any other plain value in the namespace
    (a name papermill injected that the chapter does not have) is rejected as unknown. Also sets the book's
    figure style (:func:`vaebook.plots.use_book_style`), so every chapter draws for the same column.
    """
    from .chapters import profiles as chapter_profiles
    from .plots import use_book_style

    profiles = chapter_profiles(chapter)
    valid = set(next(iter(profiles.values())).names())
    overrides, unknown = {}, []
    for k, v in namespace.items():
        if k.startswith("_") or k in _KERNEL_NAMES:
            continue
        if isinstance(v, types.ModuleType) or callable(v):  # imports and definitions, not parameters
            continue
        if k in valid:
            overrides[k] = v
        else:
            unknown.append(k)
    if unknown:
        raise _unknown(chapter, unknown, sorted(valid))
    run = resolve_params(chapter, profiles, profile, overrides)
    use_book_style()
    return run


# --- the run record ---------------------------------------------------------------------------------

def git(*args: str, cwd: str | os.PathLike | None = None) -> str:
    """``git ARGS`` in ``cwd`` (default: this package's folder): its output, stripped, or "" when git is
    missing, fails or is not in a repository."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd or Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _git_commit() -> str:
    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("+local changes" if git("status", "--porcelain", "--untracked-files=no") else "")


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
    """A chapter's resolved parameters plus where and with what it ran. ``run.epochs`` reads a parameter."""

    chapter: str
    profile: str
    params: ChapterParams
    overrides: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and name in params.names():
            return getattr(params, name)
        raise AttributeError(f"chapter {self.__dict__.get('chapter')!r} has no parameter {name!r}")

    @property
    def torch_device(self) -> torch.device:
        return torch.device(validate_device(self.params.device))

    def machine(self) -> dict[str, str]:
        dev = self.torch_device
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
        return {"device": f"{dev} ({name})", "torch threads": str(torch.get_num_threads()),
                "cpu cores": str(os.cpu_count())}

    def as_dict(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "profile": self.profile, **dataclasses.asdict(self.params)}

    def table(self) -> "Any":
        import pandas as pd

        helps = self.params.help()
        rows = [("profile", self.profile, "", PROFILE_HELP)]
        for k in self.params.names():
            rows.append((k, repr(getattr(self.params, k)), "override" if k in self.overrides else "profile",
                         helps.get(k, "")))
        return pd.DataFrame(rows, columns=["parameter", "value", "from", "meaning"]).set_index("parameter")

    def _repr_markdown_(self) -> str:
        helps = self.params.help()
        lines = [f"**Chapter `{self.chapter}`, profile `{self.profile}`.**", "",
                 "| parameter | value | from | meaning |", "|---|---|---|---|"]
        for k in self.params.names():
            v = getattr(self.params, k)
            lines.append(f"| `{k}` | `{v!r}` | {'override' if k in self.overrides else 'profile'} | "
                         f"{helps.get(k, '')} |")
        lines += ["", "| machine and versions | |", "|---|---|"]
        for k, v in {**self.machine(), **versions()}.items():
            lines.append(f"| {k} | `{v}` |")
        return "\n".join(lines)
