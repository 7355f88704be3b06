"""Shared test set-up: MNIST from $VAEBOOK_DATA (CI points it at ../shared/data), a private checkpoint cache."""

import os

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


@pytest.fixture(scope="session")
def mnist():
    from vaebook.data import mnist_splits

    return mnist_splits()
