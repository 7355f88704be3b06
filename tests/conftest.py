"""Shared test set-up: MNIST from $VAEBOOK_DATA (CI points it at ../shared/data), a private checkpoint cache,
and one staged copy of the book per session (executed and built by the chapter tests, read by the browser test)."""

import os
import shutil

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    # Tests never reuse or overwrite the book's cached models: each session trains into its own folder.
    old = os.environ.get("VAEBOOK_CACHE")
    os.environ["VAEBOOK_CACHE"] = str(tmp_path_factory.mktemp("vaebook-cache"))
    yield
    if old is None:
        os.environ.pop("VAEBOOK_CACHE", None)
    else:
        os.environ["VAEBOOK_CACHE"] = old


@pytest.fixture
def one_thread():
    """One torch thread for the test: bit-identical comparisons need the same reduction order in both runs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def single_threaded_module():
    """One thread for torch and BLAS for a whole test module: on a shared 2-core machine, two spinning
    threads per process make small models 10-40 times slower (measured), and the results do not depend on it."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def mnist():
    from vaebook.data import mnist_splits

    return mnist_splits()


@pytest.fixture(scope="session")
def staged_book(tmp_path_factory):
    """A copy of the book's sources, so tests never overwrite the chapters `make book` produced."""
    from vaebook import book

    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(book.PROJECT_ROOT / name, root / name)
    shutil.copytree(book.PROJECT_ROOT / "book", root / "book", ignore=shutil.ignore_patterns("generated"))
    (root / "book" / "generated").mkdir()
    return root


@pytest.fixture(scope="session")
def built_book(staged_book):
    """The staged book's HTML folder, every chapter executed with the smoke profile.

    Chapters that tests/test_chapters.py already executed this session are reused, and the book is built
    only if a chapter was executed here or no build exists yet (the hook below runs this fixture's users
    last, after the chapter tests have executed and built everything).
    """
    from vaebook import book

    generated = staged_book / "book" / "generated"
    executed_here = [name for name in book.available_chapters() if not (generated / f"{name}.ipynb").exists()]
    for name in executed_here:
        book.execute(name, profile="smoke", out_dir=generated, quiet=True)
    html = staged_book / "_build" / "html"
    if executed_here or not (html / "index.html").exists():
        book.build(root=staged_book)
    return html


def pytest_collection_modifyitems(config, items):
    # Tests reading the built book run last, so they reuse the chapters the chapter tests executed
    # instead of executing every chapter a second time (sorting is stable: the rest keep their order).
    items.sort(key=lambda item: "built_book" in getattr(item, "fixturenames", ()))
