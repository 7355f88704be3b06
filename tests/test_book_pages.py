"""The two cheapest regressions of the built book, checked without a browser (tests/test_browser.py checks
the same pages in Chromium): a markdown table left as raw pipe text, and output wider than the text column."""

import base64
import html.parser
import io
import json

import pytest
from PIL import Image

from vaebook import book, plots

# The text column is 612 px at a 1200 px window (see vaebook.plots); output text is 14 px DejaVu Sans
# Mono, 8.4 px a character: 72 characters fit.
COLUMN_CHARS = 72
COLUMN_PX = 612


class _VisibleText(html.parser.HTMLParser):
    SKIP = {"pre", "code", "script", "style", "textarea"}

    def __init__(self):
        super().__init__()
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        self.depth += tag in self.SKIP

    def handle_endtag(self, tag):
        self.depth -= tag in self.SKIP

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def visible_text(page: str) -> str:
    parser = _VisibleText()
    parser.feed(page)
    return " ".join(parser.parts)


def test_visible_text_skips_code():
    assert "|---|" in visible_text("<p>| a |</p><p>|---|</p>")
    assert "|---|" not in visible_text("<pre>|---|</pre><code>|---|</code>")


def _chapter_outputs(generated):
    for name in book.available_chapters():
        nb = json.loads((generated / f"{name}.ipynb").read_text())
        for i, cell in enumerate(nb["cells"]):
            for out in cell.get("outputs", []):
                yield name, i, out


@pytest.mark.slow
def test_no_raw_markdown_table_in_any_built_page(built_book):
    import re

    rule = re.compile(r"\|\s*:?-{3,}:?\s*\|")
    raw = [f"{p.relative_to(built_book)}: {m.group(0)!r}" for p in built_book.rglob("*.html")
           if "_static" not in p.parts for m in [rule.search(visible_text(p.read_text(errors="replace")))] if m]
    assert raw == []


@pytest.mark.slow
def test_no_output_line_wider_than_the_column(built_book):
    generated = built_book.parent.parent / "book" / "generated"
    wide = []
    for name, i, out in _chapter_outputs(generated):
        data = out.get("data", {})
        if out["output_type"] == "stream" and out.get("name") == "stdout":
            text = "".join(out["text"])
        elif "text/plain" in data and not ({"text/html", "text/markdown", "image/png", "image/gif"} & set(data)):
            text = "".join(data["text/plain"])
        else:
            continue
        wide += [f"{name} cell {i}: {line[:80]}" for line in text.splitlines() if len(line) > COLUMN_CHARS]
    assert wide == [], "\n".join(wide)


@pytest.mark.slow
def test_figures_are_drawn_for_the_column(built_book):
    generated = built_book.parent.parent / "book" / "generated"
    assert plots.COLUMN_WIDTH * plots.DPI <= COLUMN_PX
    wide = []
    for name, i, out in _chapter_outputs(generated):
        for mime in ("image/png", "image/gif"):
            if mime in out.get("data", {}):
                width = Image.open(io.BytesIO(base64.b64decode(out["data"][mime]))).width
                if width > COLUMN_PX:
                    wide.append(f"{name} cell {i}: {mime} {width} px wide")
    assert wide == [], "\n".join(wide)


@pytest.mark.slow
def test_every_chapter_writes_a_results_file_and_shows_it_beside_the_reference(built_book):
    from vaebook.report import read_results

    generated = built_book.parent.parent / "book" / "generated"
    required = {"gan_vs_vae": {"fid_gan", "fid_vae", "precision_gan", "recall_gan", "min_digit_share_gan",
                               "max_digit_share_gan"},
                "gmm_vae": {"accuracy_148"}, "flow_vae": {"nll_vae", "nll_best_flow"},
                "beta_vae": {"psnr_source_beta"}}
    for name in book.available_chapters():
        record = read_results(generated / "results" / f"{name}.json")  # raises on a schema error
        assert record["chapter"] == name and record["profile"] == "smoke"
        assert required.get(name, set()) <= set(record["metrics"]), name
        page = visible_text((built_book / "book" / "generated" / f"{name}.html").read_text())
        assert "This build and the reference run" in page and "this build" in page, name
    acc = read_results(generated / "results" / "gmm_vae.json")["metrics"]["accuracy_148"]
    assert isinstance(acc, list) and len(acc) >= 1
