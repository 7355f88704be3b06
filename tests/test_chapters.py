"""Every chapter executes with the smoke profile, its pages are clean, and the book builds with -W.

The staged copy of the book they execute into and build (fixture ``staged_book``) is in conftest.py."""

import nbformat
import pytest

from vaebook import book

CHAPTERS = book.available_chapters()


def problems(nb) -> list[str]:
    """stderr streams (warnings, tqdm), errors and tracebacks a reader should never see."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"cell {i}: error {out.ename}")
            elif out.output_type == "stream" and out.name == "stderr":
                found.append(f"cell {i}: stderr {out.text[:200]!r}")
            elif out.output_type == "stream" and ("Traceback" in out.text or "Warning:" in out.text):
                found.append(f"cell {i}: {out.text[:200]!r}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_executes_cleanly_with_smoke_profile(name, staged_book):
    path = book.execute(name, profile="smoke", out_dir=staged_book / "book" / "generated", quiet=True)
    nb = nbformat.read(path, as_version=4)
    assert problems(nb) == []
    assert any(c.get("metadata", {}).get("tags") == ["parameters"] for c in nb.cells)
    # the page states the profile that produced it
    assert any("profile `smoke`" in str(o.get("data", {}).get("text/markdown", ""))
               for c in nb.cells for o in c.get("outputs", []))


def test_invalid_parameter_fails_before_a_kernel_starts(tmp_path):
    from vaebook.config import ParameterError

    with pytest.raises(ParameterError, match="latent_sizes must contain integers >= 1"):
        book.execute("latent_size", profile="smoke", params={"latent_sizes": [2, 0]}, out_dir=tmp_path, quiet=True)
    assert list(tmp_path.iterdir()) == []  # no executed notebook, no failed notebook, no run record


@pytest.mark.slow
def test_book_builds_with_warnings_as_errors(staged_book):
    generated = staged_book / "book" / "generated"
    for name in CHAPTERS:  # chapters not executed by the tests above (e.g. with -k) still build
        if not (generated / f"{name}.ipynb").exists():
            book.execute(name, profile="smoke", out_dir=generated, quiet=True)
    index = book.build(strict=True, root=staged_book)
    html = staged_book / "_build" / "html"
    assert index.exists()
    for name in CHAPTERS:
        page = (html / "book" / "generated" / f"{name}.html").read_text()
        assert "Traceback" not in page
    # the reproducibility page names the profile of every chapter in this build
    repro = (generated / "reproducibility.md").read_text()
    for name in CHAPTERS:
        assert f"| {book.TITLES.get(name, name)} | `smoke` |" in repro
    # math is served from the book itself, not a CDN
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert "cdn.jsdelivr" not in (html / "book" / "generated" / "latent_size.html").read_text()


def test_run_records_are_per_chapter_and_broken_ones_are_reported(tmp_path, capsys):
    book._record_run(tmp_path, "latent_size", "smoke", {"epochs": 1}, 12.3)
    book._record_run(tmp_path, "gk_distribution", "default", {}, 4.0)
    first = book.read_run_record(tmp_path, "latent_size")
    assert first["profile"] == "smoke" and first["overrides"] == {"epochs": 1} and first["seconds"] == 12.3
    assert book.read_run_record(tmp_path, "gk_distribution")["profile"] == "default"
    assert book.read_run_record(tmp_path, "flow_vae") is None
    (tmp_path / "runs" / "latent_size.json").write_text('{"profile": "sm')  # a truncated file
    message = book.read_run_record(tmp_path, "latent_size")
    assert isinstance(message, str) and "unreadable" in message and "latent_size.json" in message
    assert "unreadable" in capsys.readouterr().err
    (tmp_path / "latent_size.ipynb").write_text("{}")
    book._write_generated_pages(tmp_path)
    repro = (tmp_path / "reproducibility.md").read_text()
    assert "record unreadable: re-execute it" in repro
