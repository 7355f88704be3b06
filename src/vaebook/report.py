"""What a chapter concludes: numbers glued into its prose, and its headline numbers in a results file.

    report = Report(run)                        # after chapter_params, at the top of the chapter
    report.glue("best_d", best)                 # the prose says {glue:md}`best_d`
    report.glue("gain", 1.234, "+.2f")          # formatted here, once: "+1.23"
    report.metric("fid_gan", per_seed_values)   # a headline number, also written to the results file
    report.write()                              # last cell: book/generated/results/NAME.json

A sentence that rests on a number gets it from :meth:`Report.glue` (MyST-NB's ``glue``), so the prose
says what this run measured on every rerun. :meth:`Report.write` writes the chapter's headline metrics
with their provenance, the machine-readable record that reference runs and the findings page read::

    {"chapter", "profile", "seeds", "metrics": {name: number or list per seed},
     "provenance": {"commit", "dirty", "started", "wall_seconds", "device", "threads", "precision",
                    "versions"}}
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from .config import ParameterError, git, versions
from .data import PROJECT_ROOT
from .io import atomic_write_json

RESULTS_ENV = "VAEBOOK_RESULTS_DIR"
REFERENCE_DIR = PROJECT_ROOT / "book" / "reference"  # committed results of reference runs (full profile)
SCHEMA_KEYS = ("chapter", "profile", "seeds", "metrics", "provenance")
PROVENANCE_KEYS = ("commit", "dirty", "started", "wall_seconds", "device", "threads", "precision", "versions")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ResultsError(ValueError):
    """A results file is missing, unreadable or does not follow the schema."""


def results_dir() -> Path:
    """Where chapters write results: ``$VAEBOOK_RESULTS_DIR`` (set by ``python -m vaebook.book execute``),
    else ``book/generated/results``."""
    return Path(os.environ.get(RESULTS_ENV) or PROJECT_ROOT / "book" / "generated" / "results")


def _number(value: Any, name: str) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"metric {name!r} must be a number or a list of numbers, got {value!r}") from None
    return x if math.isfinite(x) else None  # JSON has no NaN: a value that could not be measured is null


def _native_bf16() -> bool:
    """What precision="auto" resolves against on CPU (see :func:`vaebook.train.resolve_precision`)."""
    from .train import cpu_has_fast_bf16

    return bool(cpu_has_fast_bf16())


class Report:
    """A chapter's glued numbers and headline metrics; ``run`` is the chapter's :class:`vaebook.config.Run`."""

    def __init__(self, run):
        self.run = run
        self.chapter = run.chapter
        self.metrics: dict[str, float | None | list[float | None]] = {}
        self.glued: dict[str, str] = {}
        self._t0 = time.perf_counter()
        self.started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def glue(self, name: str, value: Any, fmt: str = "") -> str:
        """Glue ``format(value, fmt)`` under ``name`` as Markdown (the prose writes {glue:md}`name`);
        return the text."""
        if not _NAME.match(name):
            raise ParameterError(f"glue name {name!r} must be lower-case letters, digits and _, e.g. 'best_fid'")
        text = format(value, fmt) if fmt else str(value)
        self.glued[name] = text
        try:
            from IPython.display import Markdown
            from myst_nb import glue
        except ImportError:  # outside a book (plain Python): the text is still returned and recorded
            return text
        glue(name, Markdown(text), display=False)
        return text

    def metric(self, name: str, value: Any, fmt: str = "") -> Any:
        """Record a headline metric for the results file (a number, or one per seed as a list); when
        ``fmt`` is given, also glue it (a list is glued as its values joined by " / ")."""
        if not _NAME.match(name):
            raise ParameterError(f"metric name {name!r} must be lower-case letters, digits and _, e.g. 'fid_gan'")
        if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0):
            stored: Any = [_number(v, name) for v in list(value)]
        else:
            stored = _number(value, name)
        self.metrics[name] = stored
        if fmt:
            shown = " / ".join(format(v, fmt) for v in value) if isinstance(stored, list) else format(value, fmt)
            self.glue(name, shown)
        return value

    def record(self) -> dict:
        p = self.run.params
        seeds = p.seed_values() if hasattr(p, "seed_values") else [getattr(p, "seed", 0)]
        status = git("status", "--porcelain", "--untracked-files=no", cwd=PROJECT_ROOT)
        return {
            "chapter": self.chapter, "profile": self.run.profile, "seeds": seeds, "metrics": dict(self.metrics),
            "provenance": {
                "commit": git("rev-parse", "--short", "HEAD", cwd=PROJECT_ROOT) or "unknown", "dirty": bool(status),
                "started": self.started, "wall_seconds": round(time.perf_counter() - self._t0, 1),
                "device": str(self.run.torch_device), "threads": getattr(p, "threads", None),
                "precision": getattr(p, "precision", None), "native_bf16": _native_bf16(), "versions": versions(),
            },
        }

    def reference(self, reference_dir: str | os.PathLike | None = None) -> dict | None:
        """The committed reference run's results record (``book/reference/NAME.json``), or None if there is none."""
        path = Path(reference_dir or REFERENCE_DIR) / f"{self.chapter}.json"
        return read_results(path) if path.exists() else None

    def reference_table(self, reference_dir: str | os.PathLike | None = None):
        """This build's headline metrics beside the committed reference run's (:meth:`reference`), as a
        DataFrame; a note in its ``attrs["note"]`` says how the two runs differ (or that there is no
        reference run). Call it after every :meth:`metric`."""
        return compare_runs(self.record(), self.reference(reference_dir))

    def write(self, folder: str | os.PathLike | None = None) -> Path:
        """Write ``NAME.json`` atomically into ``folder`` (default :func:`results_dir`); return its path."""
        return atomic_write_json(Path(folder or results_dir()) / f"{self.chapter}.json", self.record())


def _shown(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return " / ".join(_shown(v) for v in value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def commits_between(old: str, new: str = "HEAD") -> int | None:
    """How many commits ``new`` is ahead of ``old`` (None when ``old`` is not in this clone)."""
    count = git("rev-list", "--count", f"{old}..{new}", cwd=PROJECT_ROOT)
    return int(count) if count.isdigit() else None


def compare_runs(build: dict, reference: dict | None):
    """A table of the two runs: what produced each (profile, seeds, device, wall time, commit) and their
    shared headline metrics, one row each; metrics only one of them has are shown with a dash."""
    import pandas as pd

    def about(r: dict) -> dict:
        p = r["provenance"]
        return {"profile": r["profile"], "seeds": ", ".join(str(s) for s in r["seeds"]),
                "device": f"{p['device']}, precision {p['precision']}"
                          + (" (native bf16)" if p.get("native_bf16") else "") + f", {p['threads']} thread(s)",
                "execution time": f"{p['wall_seconds'] / 60:.1f} min", "commit": p["commit"] + (" (dirty)" if p["dirty"] else "")}

    columns = {"this build": build}
    if reference is not None:
        columns["reference run"] = reference
    names = list(build["metrics"]) + [m for m in (reference or {}).get("metrics", {}) if m not in build["metrics"]]
    rows = {}
    for key in ("profile", "seeds", "device", "execution time", "commit"):
        rows[key] = {col: about(r)[key] for col, r in columns.items()}
    for name in names:
        rows[name] = {col: _shown(r["metrics"].get(name)) for col, r in columns.items()}
    table = pd.DataFrame(rows).T
    table.index.name = ""
    if reference is None:
        table.attrs["note"] = ("There is no reference run of this chapter yet (book/reference/ holds none). "
                               "The execution time counts models loaded from the cache as loaded, not trained.")
    else:
        ref_commit = reference["provenance"]["commit"]
        ahead = commits_between(ref_commit)
        age = ("from this commit" if ahead == 0 else f"{ahead} commit{'s' if ahead != 1 else ''} older than this build"
               if ahead is not None else "from a commit not in this clone")
        table.attrs["note"] = (f"The reference run ({reference['profile']} profile, {reference['provenance']['started']}) "
                               f"is {age}. Execution times count models loaded from the cache as loaded, not trained.")
    return table


def check_results(record: Any, where: str = "results") -> dict:
    """Check a results record against the schema; return it, or raise :class:`ResultsError` saying what is wrong."""
    if not isinstance(record, dict):
        raise ResultsError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in SCHEMA_KEYS if k not in record]
    if missing:
        raise ResultsError(f"{where}: missing {missing}")
    if not isinstance(record["metrics"], dict) or not isinstance(record["seeds"], list):
        raise ResultsError(f"{where}: 'metrics' must be an object and 'seeds' a list")
    for name, value in record["metrics"].items():
        values = value if isinstance(value, list) else [value]
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            raise ResultsError(f"{where}: metric {name!r} must be a number, null or a list of them, got {value!r}")
    prov = record["provenance"]
    if not isinstance(prov, dict) or [k for k in PROVENANCE_KEYS if k not in prov]:
        raise ResultsError(f"{where}: provenance must hold {list(PROVENANCE_KEYS)}")
    return record


def read_results(path: str | os.PathLike) -> dict:
    """Read and check one results file; a broken file raises :class:`ResultsError` naming it."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path} does not exist; execute the chapter to write it") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path} is unreadable ({exc}); re-execute the chapter to rewrite it") from None
    return check_results(record, str(path))
