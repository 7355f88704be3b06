"""Running the book as an operator does: stopping a chapter cleanly, and publishing the built book."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from vaebook import book
from vaebook.book import PROJECT_ROOT


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.parametrize("how, sizes", [("sigterm to the process", "[2]"),  # one job, in the kernel
                                        ("ctrl-c to the process group", "[2, 4]")])  # two, on Dask workers
def test_stopping_a_chapter_stops_its_kernel_and_says_where_in_one_line(tmp_path, how, sizes):
    cache, out = tmp_path / "cache", tmp_path / "generated"
    env = {**os.environ, "VAEBOOK_CACHE": str(cache)}
    # enough epochs that the chapter is surely still training when the signal comes
    cmd = [sys.executable, "-m", "vaebook.book", "execute", "latent_size", "--profile", "smoke",
           "-p", "epochs", "200", "-p", "latent_sizes", sizes, "--out-dir", str(out)]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        # a first epoch's checkpoint of every model that trains at once (one per size here: the kernel's one
        # job, or one per Dask worker), so each is surely training when the signal comes; a worker can start
        # its first job a few seconds after the other, e.g. while it still imports torch
        training = len(json.loads(sizes))
        _wait_for(lambda: len(list(cache.rglob("*.pt"))) >= training or proc.poll() is not None, 180,
                  f"a first checkpoint of {training} model(s)")
        assert proc.poll() is None, proc.communicate()
        family = psutil.Process(proc.pid).children(recursive=True)
        assert family, "the chapter's kernel should be a child process"
        t0 = time.monotonic()
        if how.startswith("sigterm"):
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            # say which processes were still alive (the build itself, or a child holding its output pipes)
            def describe(p):
                try:
                    return f"{p.pid} {p.status()} pgid {os.getpgid(p.pid)} {' '.join(p.cmdline()[:4])}"
                except (psutil.Error, ProcessLookupError):
                    return None

            alive = [d for d in map(describe, [psutil.Process(proc.pid), *family]) if d]
            pytest.fail(f"the build did not stop within 30 s of the signal; alive: {alive}")
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    gone, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, f"left running after the build stopped: {[p.pid for p in alive]}"
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"
    assert proc.returncode == (128 + signal.SIGTERM if how.startswith("sigterm") else 128 + signal.SIGINT)
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("stopped by " + ("SIGTERM" if how.startswith("sigterm") else "Ctrl-C")), stderr
    assert "chapter 'latent_size' while training" in lines[-1] and "d2" in lines[-1], lines[-1]
    assert "epoch " in lines[-1], lines[-1]
    assert "resume" in lines[-1]
    assert not (out / "latent_size.ipynb").exists()  # nothing half-published


def test_publish_refuses_without_a_built_book(tmp_path, capsys):
    (tmp_path / "_toc.yml").write_text((PROJECT_ROOT / "_toc.yml").read_text())
    with pytest.raises(book.ChapterError, match="no book is built .* run `make book` first"):
        book.publish(root=tmp_path)


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


def test_publish_pushes_the_built_book_to_gh_pages_of_a_local_remote(built_book, tmp_path):
    root = built_book.parent.parent
    remote = tmp_path / "remote.git"
    _git(tmp_path, "init", "--bare", "-q", str(remote))
    work = tmp_path / "work"  # a repository holding a copy of the built book, origin = the bare remote
    shutil.copytree(root, work, ignore=shutil.ignore_patterns(".doctrees", "jupyter_execute"))
    for args in (("init", "-q"), ("config", "user.email", "t@example.com"), ("config", "user.name", "t"),
                 ("add", "_toc.yml"), ("commit", "-q", "-m", "book"), ("remote", "add", "origin", str(remote))):
        _git(work, *args)
    # a rebuild rewrites the changed chapters' pages, not index.html (a redirect written once): an old
    # index.html is no sign of a stale build
    os.utime(work / "_build" / "html" / "index.html", (0, 0))
    book.publish(root=work)
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", "gh-pages"], cwd=remote,
                             capture_output=True, text=True, check=True).stdout.split()
    assert "index.html" in listing and ".nojekyll" in listing
    for name in book.toc_chapters(work):
        assert f"book/generated/{name}.html" in listing
    # a chapter re-executed after the build: the build is stale, so publishing is refused
    notebook = work / "book" / "generated" / f"{book.toc_chapters(work)[0]}.ipynb"
    os.utime(notebook, (time.time() + 60, time.time() + 60))
    with pytest.raises(book.ChapterError, match="executed after the last build"):
        book.publish(root=work)
