"""One module per chapter: its typed parameters (``Params``), its ``PROFILES`` (written as differences
from the default), and, where it trains models, ``jobs(run)``: the models as :class:`vaebook.jobs.Job`
data. Notebooks hold prose, the parameters cell, calls into these modules and the library, and plots.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Mapping

from ..config import ChapterParams, ParameterError, Run, resolve_params


def module(chapter: str) -> ModuleType:
    """The chapter's module ``vaebook.chapters.<chapter>``; a clear error for an unknown chapter."""
    if not isinstance(chapter, str) or not chapter.isidentifier():
        raise ParameterError(f"unknown chapter {chapter!r}")
    try:
        return importlib.import_module(f"{__name__}.{chapter}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{chapter}":
            raise ParameterError(f"chapter {chapter!r} declares no parameters (no module {exc.name})") from None
        raise


def profiles(chapter: str) -> dict[str, ChapterParams]:
    """The chapter's named profiles (smoke, default, full)."""
    return module(chapter).PROFILES


def resolve(chapter: str, profile: str, overrides: Mapping[str, Any] | None = None) -> Run:
    """Check ``overrides`` against the chapter's declaration without running anything (the book's
    command line calls this before it starts a kernel)."""
    return resolve_params(chapter, profiles(chapter), profile, dict(overrides or {}))
