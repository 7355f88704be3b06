"""The book pipeline: execute the percent-format notebooks with papermill, then build with Jupyter Book.

    python -m vaebook.book execute latent_size --profile smoke -p epochs 3
    python -m vaebook.book build [--strict]
    python -m vaebook.book all --profile default [--strict]

``notebooks/NAME.py`` (jupytext percent format, the file people edit) is converted in memory, executed by
papermill with ``profile`` and any ``-p KEY VALUE`` overrides (values parsed as YAML, as papermill's own
command line does: ``-p latent_sizes '[2, 4]'``), and written to ``book/generated/NAME.ipynb``, which
``_toc.yml`` points at. Each execution is recorded in ``book/generated/runs/NAME.json`` and shown on the
book's reproducibility page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import ParameterError
from .data import PROJECT_ROOT
from .io import atomic_write_json, atomic_write_text

NOTEBOOKS = PROJECT_ROOT / "notebooks"
GENERATED = PROJECT_ROOT / "book" / "generated"
class ChapterError(RuntimeError):
    pass


def _toc_files(root: Path = PROJECT_ROOT) -> list[str]:
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return files


def toc_chapters(root: Path = PROJECT_ROOT) -> list[str]:
    """The chapters, in book order: ``_toc.yml``'s entries under book/generated/ that have a notebook.
    ``_toc.yml`` is the one list of chapters."""
    prefix = "book/generated/"
    return [f[len(prefix):] for f in _toc_files(root)
            if f.startswith(prefix) and (NOTEBOOKS / f"{f[len(prefix):]}.py").exists()]


def notebook_title(name: str) -> str:
    """A chapter's title: the first markdown heading of ``notebooks/NAME.py``."""
    import re

    path = NOTEBOOKS / f"{name}.py"
    if path.exists():
        m = re.search(r"^# # (.+)$", path.read_text(), flags=re.M)
        if m:
            return m.group(1).strip()
    return name


CHAPTERS = toc_chapters()
TITLES = {name: notebook_title(name) for name in CHAPTERS}


def available_chapters() -> list[str]:
    return list(CHAPTERS)


def parse_params(pairs: list[list[str]] | None) -> dict:
    import yaml

    params = {}
    for key, value in pairs or []:
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):
            try:  # YAML 1.1 reads "1e-3" (no dot) as a string; a number is meant
                parsed = float(parsed) if parsed.strip().lower() not in ("nan", "inf", "-inf", "+inf") else parsed
            except ValueError:
                pass
        params[key] = parsed
    return params


def check_parameters(name: str, profile: str, params: dict | None = None):
    """Check a chapter's profile and overrides against its declaration, before any kernel starts; return
    the resolved :class:`vaebook.config.Run`. Raises :class:`vaebook.config.ParameterError`."""
    from .chapters import resolve

    if name not in CHAPTERS:
        raise ChapterError(f"no chapter {name!r}; chapters: {available_chapters()}")
    return resolve(name, profile, params or {})


def execute(name: str, profile: str = "default", params: dict | None = None,
            out_dir: Path = GENERATED, quiet: bool = False) -> Path:
    """Execute one chapter; return the executed notebook's path. Raises ChapterError on failure."""
    import jupytext
    import nbformat
    import papermill

    source = NOTEBOOKS / f"{name}.py"
    if not source.exists():
        raise ChapterError(f"no chapter {name!r}: {source} does not exist; chapters: {available_chapters()}")
    check_parameters(name, profile, params)  # a bad value fails here, before a kernel starts
    out_dir.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(source)
    notebook.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                                "language": "python"})
    parameters = {"profile": profile, **(params or {})}
    target = out_dir / f"{name}.ipynb"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".executing-") as tmp:
        src_nb = Path(tmp) / f"{name}.source.ipynb"
        out_nb = Path(tmp) / f"{name}.ipynb"
        nbformat.write(notebook, src_nb)
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(str(src_nb), str(out_nb), parameters=parameters,
                                       kernel_name="python3", cwd=str(PROJECT_ROOT),
                                       progress_bar=not quiet and sys.stderr.isatty(),
                                       log_output=False)
        except papermill.PapermillExecutionError as exc:
            failed = out_dir / f"{name}.failed.ipynb"
            if out_nb.exists():
                os.replace(out_nb, failed)
            raise ChapterError(f"chapter {name!r} failed ({exc.ename}: {exc.evalue}); the executed "
                               f"notebook with the error is {failed}") from exc
        seconds = time.perf_counter() - t0
        os.replace(out_nb, target)
    (out_dir / f"{name}.failed.ipynb").unlink(missing_ok=True)
    (out_dir / f"{name}.md").unlink(missing_ok=True)  # a placeholder from an earlier build
    _record_run(out_dir, name, profile, params or {}, seconds)
    if not quiet:
        print(f"executed {name} (profile {profile}) in {seconds:.0f} s -> {target}")
    return target


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _record_run(out_dir: Path, name: str, profile: str, params: dict, seconds: float) -> None:
    # One small file per chapter, so chapters executed in parallel never overwrite each other's record.
    from .train import cpu_has_fast_bf16

    record = {"profile": profile, "overrides": params, "seconds": round(seconds, 1),
              "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
              # what precision="auto" resolved against, and where the missing models trained
              "compute": {"native_bf16": cpu_has_fast_bf16(), "cpu_cores": os.cpu_count(),
                          "scheduler": os.environ.get("VAEBOOK_SCHEDULER") or "local",
                          "workers": os.environ.get("VAEBOOK_WORKERS") or "cores // threads"}}
    atomic_write_json(out_dir / "runs" / f"{name}.json", record)


def read_run_record(out_dir: Path, name: str) -> dict | str | None:
    """A chapter's execution record; None when there is none, or a message saying why it is unreadable."""
    path = out_dir / "runs" / f"{name}.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        missing = [k for k in ("profile", "overrides", "seconds", "finished", "commit") if k not in record]
        if missing:
            raise ValueError(f"missing fields {missing}")
        return record
    except (OSError, ValueError) as exc:
        msg = f"run record {path} is unreadable ({type(exc).__name__}: {exc}); re-execute the chapter"
        print(msg, file=sys.stderr)
        return msg


def _write_generated_pages(out_dir: Path) -> None:
    """Placeholders for chapters not executed yet, and the reproducibility page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in toc_chapters():
        if not (out_dir / f"{name}.ipynb").exists():
            atomic_write_text(out_dir / f"{name}.md", (
                f"# {TITLES.get(name, name)}\n\nThis chapter has not been executed on this machine yet. "
                f"Run `make chapter NAME={name}` (or `make book`) to train its models and fill this page.\n"))
    lines = ["# Reproducibility", "",
             "Every chapter is a percent-format notebook in `notebooks/`, executed by papermill with a "
             "named profile and optional overrides. This page lists how each chapter in this build was "
             "produced; each chapter's first cells show every parameter, the device and the package "
             "versions.", "",
             "| chapter | profile | overrides | execution time | compute | finished | commit |",
             "|---|---|---|---|---|---|---|"]
    for name in available_chapters():
        r = read_run_record(out_dir, name)
        if r is None or not (out_dir / f"{name}.ipynb").exists():
            lines.append(f"| {TITLES.get(name, name)} | not executed | | | | | |")
            continue
        if isinstance(r, str):
            lines.append(f"| {TITLES.get(name, name)} | record unreadable: re-execute it | | | | | |")
            continue
        over = ", ".join(f"`{k}={v!r}`" for k, v in r["overrides"].items()) or "none"
        c = r.get("compute") or {}
        compute = (f"{c.get('cpu_cores')} cores, native bf16: {'yes' if c.get('native_bf16') else 'no'}, "
                   f"jobs on {c.get('scheduler')} Dask ({c.get('workers')} workers)") if c else "not recorded"
        lines.append(f"| {TITLES.get(name, name)} | `{r['profile']}` | {over} | {r['seconds']:.0f} s | {compute} | "
                     f"{r['finished']} | `{r['commit']}` |")
    lines += ["", "To rerun one chapter with other parameters:", "",
              "```bash", "make chapter NAME=latent_size PARAMS=\"-p epochs 3\"", "```", ""]
    atomic_write_text(out_dir / "reproducibility.md", "\n".join(lines))


def build(strict: bool = False, root: Path = PROJECT_ROOT) -> Path:
    """Build the HTML book into ``<root>/_build/html``; ``strict`` turns warnings into errors.

    ``root`` holds ``_config.yml``, ``_toc.yml`` and ``book/`` (tests build a staged copy elsewhere).
    """
    _write_generated_pages(root / "book" / "generated")
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(root), "--builder", "html"]
    if strict:
        cmd += ["--warningiserror", "--nitpick", "--keep-going"]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb)] + cmd[3:]
    result = subprocess.run(cmd, cwd=root)
    if result.returncode != 0:
        raise ChapterError(f"jupyter-book build failed (exit {result.returncode}); see the messages above")
    index = root / "_build" / "html" / "index.html"
    print(f"book built: {index}")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaebook.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_exec = sub.add_parser("execute", help="execute chapters (all if none named)")
    p_exec.add_argument("names", nargs="*")
    p_all = sub.add_parser("all", help="execute every chapter, then build the book")
    for p in (p_exec, p_all):
        p.add_argument("--profile", default="default", help="smoke | default | full")
        p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="train missing models on this Dask cluster (e.g. tcp://host:8786; default "
                            "$VAEBOOK_SCHEDULER, else a local cluster sized to this machine)")
        p.add_argument("--workers", type=int, default=None,
                       help="local cluster size (default: cores // threads per job; 1 trains one model at a time)")
        p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                       help="override one chapter parameter (YAML value), as papermill's -p")
    p_exec.add_argument("--build", action="store_true", help="rebuild the book afterwards")
    p_build = sub.add_parser("build", help="build the HTML book from the executed chapters")
    for p in (p_exec, p_all, p_build):
        p.add_argument("--strict", action="store_true", help="treat build warnings as errors")
    sub.add_parser("list", help="list the chapters")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print("\n".join(available_chapters()))
            return 0
        if args.command in ("execute", "all"):
            names = getattr(args, "names", None) or available_chapters()
            params = parse_params(args.parameter)
            profile = params.pop("profile", args.profile)
            for name in names:  # check every chapter before executing any
                check_parameters(name, profile, params)
            # The chapters' kernels read these (vaebook.jobs.train_all); they inherit this environment.
            if args.scheduler:
                os.environ["VAEBOOK_SCHEDULER"] = args.scheduler
            if args.workers is not None:
                if args.workers < 1:
                    raise ParameterError(f"--workers must be an integer >= 1, got {args.workers}; e.g. --workers 2")
                os.environ["VAEBOOK_WORKERS"] = str(args.workers)
            for name in names:
                execute(name, profile, params)
        if args.command == "build" or args.command == "all" or getattr(args, "build", False):
            build(strict=args.strict)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ChapterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
