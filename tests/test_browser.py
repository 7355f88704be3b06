"""The book as a reader gets it: every page opened in headless Chromium (vaebook.browser_check).

Chromium is driven over the DevTools Protocol on ``--remote-debugging-pipe`` (standard library only; see
the module's docstring). The pages are opened from ``file://``, as the README tells readers to open the
book. First the checker is shown to see each fault it is meant to find, on small pages with known
faults; then the smoke-profile book the chapter tests built must show none of them.

Without Chromium (Debian: ``apt-get install chromium``; ``.ci/run`` installs it) these tests skip, except
under CI (the ``CI`` environment variable set), where a missing browser is a failure.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from vaebook import browser_check

# What Sphinx writes into each page for MathJax (sphinx.ext.mathjax with sphinx-mathjax-offline).
HEAD = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>
<script>window.MathJax = {{"options":
  {{"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"}}}}</script>
<script defer="defer" src="{mathjax}"></script></head>"""


@pytest.fixture(scope="session")
def chromium():
    path = browser_check.find_chromium()
    if path is None:
        reason = "no Chromium for the browser test (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run it (.ci/run installs it)")
        pytest.skip(reason)
    return path


def page(title: str, body: str, mathjax: str = "_static/mathjax/tex-chtml.js") -> str:
    return HEAD.format(title=title, mathjax=mathjax) + f"<body>{body}</body></html>"


@pytest.fixture
def pages_with_known_faults(tmp_path):
    """A clean page and two broken ones, beside the MathJax the book ships (sphinx-mathjax-offline's)."""
    from PIL import Image

    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "mathjax").symlink_to(Path(spec.origin).parent / "static" / "mathjax")
    Image.new("L", (3, 2), 255).save(tmp_path / "dot.png")
    (tmp_path / "clean.html").write_text(page("clean", r"""
        <p>Inline <span class="math notranslate nohighlight">\(\beta^2\)</span> and displayed:</p>
        <div class="math notranslate nohighlight">\[\int_0^1 x\,dx = \tfrac12\]</div>
        <pre>code may show $$, \( and $\alpha$ verbatim</pre>
        <img src="dot.png" alt="a dot">"""))
    (tmp_path / "faults.html").write_text(page("faults", r"""
        <p>a formula in single dollars, which MathJax does not read: $\alpha + 1$</p>
        <p><span class="math notranslate nohighlight">\(\frac{1}\)</span></p>
        <img src="missing.png" alt="">
        <img src="http://127.0.0.1:9/elsewhere.png" alt="">
        <script src="gone.js"></script>
        <script>throw new Error("boom")</script>"""))
    Image.new("L", (1200, 40), 255).save(tmp_path / "wide.png")
    Image.new("L", (500, 40), 255).save(tmp_path / "narrow.png")
    column = '<div class="cell_output" style="width: 612px"><div class="output">{}</div></div>'
    (tmp_path / "layout.html").write_text(page("layout faults", "<style>img { max-width: 100%; }</style>" + r"""
        <p>| parameter | value |</p><p>|---|---|</p>
        <div style="width: 300px"><div class="math notranslate nohighlight">\[
            a + b + c + d + e + f + g + h + i + j + k + l + m + n + o + p + q + r + s + t + u + v + w = 1\]</div></div>
        """ + column.format("<pre>" + "x" * 120 + "</pre>") + column.format('<img src="wide.png">')
        + column.format("<table><tr>" + "<td>column&nbsp;of&nbsp;text</td>" * 12 + "</tr></table>")))
    (tmp_path / "layout_ok.html").write_text(page("layout done right", "<style>img { max-width: 100%; }</style>" + r"""
        <p>| a pipe in a sentence is fine |</p>
        <div style="width: 300px"><div class="math notranslate nohighlight">\[a + b = 1\]</div></div>
        """ + column.format("<pre>" + "x" * 60 + "</pre>") + column.format('<img src="narrow.png">')
        + column.format("<table><tr>" + "<td>short</td>" * 4 + "</tr></table>")))
    (tmp_path / "no_mathjax.html").write_text(page("no MathJax", r"""
        <p>Inline <span class="math notranslate nohighlight">\(\beta^2\)</span></p>""",
                                                   mathjax="_static/nowhere/tex-chtml.js"))
    return tmp_path


def test_the_checker_finds_each_fault_it_looks_for(chromium, pages_with_known_faults):
    reports = browser_check.check_book(pages_with_known_faults, chromium=chromium, timeout=20)
    assert list(reports) == ["clean.html", "faults.html", "layout.html", "layout_ok.html",
                             "no_mathjax.html"]  # every page, redirects none
    assert reports["layout_ok.html"].problems == ()

    clean = reports["clean.html"]
    assert clean.problems == () and (clean.math, clean.typeset, clean.images) == (2, 2, 1)

    expected = {  # the start of each problem the page must show, one each, and no others
        "faults.html": ["raw TeX in the visible text: ...", r"MathJax TeX error: Missing argument for \frac",
                        "image did not load: missing.png", "image did not load: http://127.0.0.1:9/",
                        "request failed (net::ERR_FILE_NOT_FOUND): file://",   # gone.js
                        "request failed (net::ERR_FILE_NOT_FOUND): file://",   # missing.png
                        "request outside the book (the book must work offline): http://127.0.0.1:9/",
                        "request failed (net::ERR_UNSAFE_PORT): http://127.0.0.1:9/",  # Chromium blocks port 9
                        "uncaught script error: Error: boom"],
        "layout.html": ["raw markdown table in the visible text: ...| parameter | value | |---|",
                        "display equation cut off at the column's edge: ",
                        "output line wider than the column: " + "x" * 80,
                        "figure shrunk to fit (its text shrinks too): wide.png drawn 1200 px wide, shown at 612 px",
                        "output table wider than the column: 12 columns"],
        "no_mathjax.html": ["request failed (net::ERR_FILE_NOT_FOUND): file://",
                            "MathJax did not start, and the page has 1 math element(s)",
                            r"math not typeset: \(\beta^2\)", r"raw TeX in the visible text: ...Inline \(\beta^2\)..."],
    }
    for name, starts in expected.items():
        problems = sorted(reports[name].problems)
        unmatched = list(problems)
        for start in starts:
            hit = next((p for p in unmatched if p.startswith(start)), None)
            assert hit is not None, f"{name}: no problem starting {start!r} in {problems}"
            unmatched.remove(hit)
        assert unmatched == [], f"{name}: unexpected problems {unmatched}"
    faults = reports["faults.html"].problems
    assert any(r"does not read: $\alpha + 1$..." in p for p in faults if p.startswith("raw TeX"))
    missing = sorted(p.rsplit("/", 1)[1] for p in faults if "ERR_FILE_NOT_FOUND" in p)
    assert missing == ["gone.js", "missing.png"]


@pytest.mark.slow
def test_every_page_of_the_book_renders_in_chromium(chromium, built_book):
    reports = browser_check.check_book(built_book, chromium=chromium)
    broken = [f"{name}: {problem}" for name, report in reports.items() for problem in report.problems]
    assert broken == [], "\n".join(broken)
    from vaebook import book

    chapters = {f"book/generated/{name}.html" for name in book.available_chapters()}
    assert chapters <= set(reports), f"chapter pages not checked: {sorted(chapters - set(reports))}"
    # the check saw what it checks: the chapters' math typeset and their figures loaded
    assert sum(reports[c].math for c in chapters) > 0 and sum(reports[c].images for c in chapters) > 0
