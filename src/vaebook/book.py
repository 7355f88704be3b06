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
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .config import PROFILE_HELP, ParameterError, git
from .data import PROJECT_ROOT
from .io import atomic_write_json, atomic_write_text

NOTEBOOKS = PROJECT_ROOT / "notebooks"
GENERATED = PROJECT_ROOT / "book" / "generated"
RESULTS_ENV = "VAEBOOK_RESULTS_DIR"


class ChapterError(RuntimeError):
    pass


class Interrupted(Exception):
    """A chapter was stopped by SIGINT (Ctrl-C) or SIGTERM; the message says which, and what was training."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


# The kernels this process started, so an interrupted build can stop them (each runs in its own session,
# so a Ctrl-C or a SIGTERM sent to this process alone never reaches it).
_KERNELS: list = []


def _kernel_manager_class(socket_dir: str):
    """Jupyter kernel managers that talk to the kernel over IPC sockets in ``socket_dir``: no TCP port is
    opened, so there is nothing to eavesdrop on (and ipykernel has no unencrypted-TCP warning to print)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class ChapterKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        @default("ip")
        def _default_ip(self):
            return os.path.join(socket_dir, "kernel")

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            _KERNELS.append(self)

    return ChapterKernelManager


def _stop_kernels(grace: float = 3.0) -> None:
    """SIGTERM each kernel's process group (the kernel and the Dask workers it started), then SIGKILL what
    is left after ``grace`` seconds. Checkpoints are written atomically, so a killed job loses at most the
    epoch it was in."""
    groups = []
    for km in _KERNELS:
        provisioner = getattr(km, "provisioner", None)
        pgid = getattr(provisioner, "pgid", None)
        if pgid:
            groups.append((pgid, getattr(provisioner, "process", None)))
    for pgid, _ in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pgid, process in groups:
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    _KERNELS.clear()


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(signum)


def _interrupted_message(name: str, status_dir: str, signum: int) -> str:
    from .train import read_training_status

    training = read_training_status(status_dir)
    what = ("while training " + ", ".join(f"{s['model']} (epoch {s['epoch']} of {s['epochs']})" for s in training)
            if training else "outside training (loading or evaluating)")
    how = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    return (f"stopped by {how}: chapter {name!r} {what}. Finished epochs are checkpointed; rerun "
            f"`make chapter NAME={name}` (or `make book`) to resume from the last one. The published page "
            f"is unchanged.")


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

    from .train import STATUS_ENV

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
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".executing-") as tmp, \
            tempfile.TemporaryDirectory(prefix="vaebook-kernel-") as private:
        src_nb = Path(tmp) / f"{name}.source.ipynb"
        out_nb = Path(tmp) / f"{name}.ipynb"
        nbformat.write(notebook, src_nb)
        status_dir = os.path.join(private, "training")
        os.makedirs(status_dir)
        # The kernel (and any Dask worker it starts) inherits these: where training reports its progress,
        # and where the chapter writes its results file.
        env = {STATUS_ENV: status_dir, RESULTS_ENV: str(out_dir / "results")}
        t0 = time.perf_counter()
        try:
            _run_in_thread(lambda: papermill.execute_notebook(
                str(src_nb), str(out_nb), parameters=parameters, kernel_name="python3", cwd=str(PROJECT_ROOT),
                progress_bar=not quiet and sys.stderr.isatty(), log_output=False,
                kernel_manager_class=_kernel_manager_class(private)), env)
        except KeyboardInterrupt as exc:
            signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
            raise Interrupted(_interrupted_message(name, status_dir, signum), signum) from None
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


def _run_in_thread(work, env: dict[str, str]):
    """Run ``work()`` in a thread with ``env`` added to the environment, and return its result.

    The main thread only waits, so a Ctrl-C or SIGTERM (turned into KeyboardInterrupt) reaches this
    process's own handler at once, instead of nbclient's, which asks the kernel to shut down after the
    running cell and so kept it training; the kernels are then stopped and KeyboardInterrupt re-raised."""
    box: dict = {}

    def target():
        try:
            box["result"] = work()
        except BaseException as exc:  # handed to the main thread
            box["error"] = exc

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    old_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        thread = threading.Thread(target=target, name="chapter-kernel", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.2)
        except KeyboardInterrupt:
            logging.disable(logging.CRITICAL)  # the dying kernel's connection errors are not news
            _stop_kernels()
            thread.join(5.0)  # let the client notice the dead kernel and end quietly
            raise
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _record_run(out_dir: Path, name: str, profile: str, params: dict, seconds: float) -> None:
    # One small file per chapter, so chapters executed in parallel never overwrite each other's record.
    from .train import cpu_has_fast_bf16

    record = {"profile": profile, "overrides": params, "seconds": round(seconds, 1),
              "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "commit": git("rev-parse", "--short", "HEAD", cwd=PROJECT_ROOT) or "unknown",
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
    from .findings import findings_markdown

    atomic_write_text(out_dir / "findings.md", findings_markdown(out_dir / "results"))
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


PLACEHOLDER_TEXT = "This chapter has not been executed on this machine yet."


def check_publishable(root: Path = PROJECT_ROOT) -> Path:
    """The built book's HTML folder, if it is complete and clean enough to publish; else ChapterError saying
    what to run. Complete: every chapter executed (no placeholder, no failed notebook) and built after its
    last execution."""
    html = root / "_build" / "html"
    if not (html / "index.html").exists():
        raise ChapterError(f"no book is built in {html}; run `make book` first")
    generated = root / "book" / "generated"
    problems = []
    for name in toc_chapters(root):
        notebook = generated / f"{name}.ipynb"
        if (generated / f"{name}.failed.ipynb").exists():
            problems.append(f"{name} failed when last executed")
        elif not notebook.exists():
            problems.append(f"{name} is not executed")
        page = html / "book" / "generated" / f"{name}.html"
        if notebook.exists() and (not page.exists() or PLACEHOLDER_TEXT in page.read_text(errors="replace")):
            problems.append(f"{name}'s page in the build is missing or a placeholder")
        # Sphinx rewrites a page when its notebook changed (index.html, a redirect, is written once)
        elif notebook.exists() and notebook.stat().st_mtime > page.stat().st_mtime:
            problems.append(f"{name} was executed after the last build")
    if problems:
        raise ChapterError("the built book is not complete: " + "; ".join(problems)
                           + ". Run `make book` (or `make chapter NAME=...` then `make build`) and publish again")
    return html


def publish(root: Path = PROJECT_ROOT, remote: str = "origin", branch: str = "gh-pages") -> None:
    """Push the built book to ``branch`` of ``remote`` with ghp-import (as Jupyter Book's documentation
    recommends): one commit holding ``_build/html`` and a ``.nojekyll`` file, force-pushed, so the branch
    always holds exactly the last published build."""
    html = check_publishable(root)
    if not git("rev-parse", "--git-dir", cwd=root):
        raise ChapterError(f"{root} is not a git repository; publish pushes to a branch of its remote {remote!r}")
    if not git("remote", "get-url", remote, cwd=root):
        raise ChapterError(f"the repository has no remote {remote!r}; add one (git remote add {remote} URL) "
                           f"or name another with --remote")
    commit = git("rev-parse", "--short", "HEAD", cwd=root) or "unknown"
    cmd = [sys.executable, "-m", "ghp_import", "--no-jekyll", "--push", "--force", "--remote", remote,
           "--branch", branch, "--message", f"Publish the book built from {commit}", str(html)]
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ChapterError(f"pushing to {remote} {branch} failed: {detail[-1] if detail else 'no message'}")
    print(f"published {html} to branch {branch!r} of {remote!r} ({git('remote', 'get-url', remote, cwd=root)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaebook.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_exec = sub.add_parser("execute", help="execute chapters (all if none named)")
    p_exec.add_argument("names", nargs="*")
    p_all = sub.add_parser("all", help="execute every chapter, then build the book")
    for p in (p_exec, p_all):
        p.add_argument("--profile", default="default", help=PROFILE_HELP)
        p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="train missing models on this Dask cluster (e.g. tcp://host:8786; default "
                            "$VAEBOOK_SCHEDULER, else a local cluster sized to this machine)")
        p.add_argument("--workers", type=int, default=None,
                       help="local cluster size (default: cores // threads per job; 1 trains one model at a time)")
        p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                       help="override one chapter parameter (YAML value), as papermill's -p")
    p_exec.add_argument("--build", action="store_true", help="rebuild the book afterwards")
    p_exec.add_argument("--out-dir", type=Path, default=GENERATED,
                        help="where executed notebooks go (default book/generated, which the book is built from)")
    p_build = sub.add_parser("build", help="build the HTML book from the executed chapters")
    for p in (p_exec, p_all, p_build):
        p.add_argument("--strict", action="store_true", help="treat build warnings as errors")
    sub.add_parser("list", help="list the chapters")
    p_pub = sub.add_parser("publish", help="push the built book to the gh-pages branch (ghp-import)")
    p_pub.add_argument("--remote", default="origin")
    p_pub.add_argument("--branch", default="gh-pages")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print("\n".join(available_chapters()))
            return 0
        if args.command == "publish":
            publish(remote=args.remote, branch=args.branch)
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
                execute(name, profile, params, out_dir=getattr(args, "out_dir", GENERATED))
        if args.command == "build" or args.command == "all" or getattr(args, "build", False):
            build(strict=args.strict)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ChapterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(str(exc), file=sys.stderr)
        return 128 + exc.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
