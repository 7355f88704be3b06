"""Open every page of the built book in headless Chromium and report what a reader would see broken.

Per page it checks that MathJax typeset the math (every ``.math`` element holds an ``mjx-container``, no
TeX error box, and no raw ``$$``, ``\\(``, ``\\[``, ``\\begin{`` or ``$\\command$`` left in the visible
text outside code), that every image loaded (``naturalWidth > 0``), that no request failed (or, over
HTTP, answered with a status of 400 or more), that the page asked for nothing outside the book (it
must work offline), and that no script threw an uncaught exception. At a 1200 px wide window it also
checks what makes a page hard to read: no raw markdown table (``|---|``) in the visible text, no output
line or table wider than its box, no display equation cut off at the column's edge, and no figure shrunk to fit
the column (its text would shrink with it). ``--screenshots DIR`` saves every page as a PNG.

How Chromium is driven: the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (JSON messages
separated by NUL bytes on file descriptors 3 and 4 of the browser process). That needs no websocket
client and no package beyond the standard library, and unlike ``--dump-dom`` it sees every network
request and can wait for MathJax's own "typesetting done" promise instead of a fixed time budget.

Pages are opened from ``file://`` (how the README tells readers to open the book) or, with
``http=True``, from a loopback ``http.server`` on 127.0.0.1. Command line::

    python -m vaebook.browser_check _build/html [--http] [--page book/intro.html ...] [--screenshots DIR]

prints a line per page and one per problem; exits 0 when every page is clean, 1 when one is not, 2 when
Chromium or the book is missing.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import functools
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SKIPPED_FOLDERS = ("_static", "_sources", "_images", "_downloads")
# Script errors of the book's toolchain, not of its pages: this Jupyter Book 1 stack writes sphinx-thebe's
# inline configuration (``const THEBE_JS_URL = ...``) into every page twice (as it does sphinx-togglebutton's
# ``var togglebuttonSelector`` line, where a repeat is harmless), so the second ``const`` throws. The book
# has no live-code (thebe) button, so nothing a reader uses depends on it.
KNOWN_TOOLCHAIN_SCRIPT_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


class BrowserError(RuntimeError):
    """Chromium could not be started or stopped answering."""


def find_chromium() -> str | None:
    """Path of a Chromium-family browser: ``$VAEBOOK_CHROMIUM`` if set, else the first on ``PATH``."""
    explicit = os.environ.get("VAEBOOK_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else shutil.which(explicit)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def book_pages(html_dir: str | os.PathLike) -> list[Path]:
    """Every HTML page of a built book, relative to ``html_dir``, except redirects (``index.html``)."""
    root = Path(html_dir)
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIPPED_FOLDERS:
            continue
        if 'http-equiv="refresh"' in path.read_text(errors="replace")[:2000].lower():
            continue  # a redirect page has nothing to check, and leaving it mid-check would race
        pages.append(rel)
    if not pages:
        raise FileNotFoundError(f"{root} holds no built book (no .html pages); build it first (make book)")
    return pages


class DevTools:
    """A headless Chromium with a DevTools-Protocol connection over ``--remote-debugging-pipe``."""

    def __init__(self, chromium: str | None = None, timeout: float = 30.0):
        chromium = chromium or find_chromium()
        if chromium is None:
            raise BrowserError(f"no Chromium found (tried {', '.join(CHROMIUM_NAMES)} and $VAEBOOK_CHROMIUM); "
                               "on Debian: apt-get install chromium")
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="vaebook-chromium-")
        self._stderr = tempfile.TemporaryFile()
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [chromium, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
                "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--mute-audio", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox

        def pipes_on_3_and_4():  # the fixed descriptors --remote-debugging-pipe reads and writes
            # copy both ends above 9 first (closed at exec), so that neither dup2 overwrites the other if
            # one of them already is 3 or 4
            read_end = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
            write_end = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(read_end, 3)   # dup2 makes 3 and 4 inheritable; close_fds=False keeps them open
            os.dup2(write_end, 4)  # (Python opens every other descriptor non-inheritable, PEP 446)

        try:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=self._stderr, close_fds=False, preexec_fn=pipes_on_3_and_4)
        except OSError as exc:
            self._release()
            raise BrowserError(f"cannot start {chromium}: {exc}") from exc
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    # --- the protocol -------------------------------------------------------------------------------
    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-1500:]

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium closed the DevTools pipe (exit code {self.process.poll()}); "
                                       f"its stderr ends with:\n{self._stderr_tail()}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Call a DevTools method and return its result; events that arrive meanwhile go to ``events``."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_browser, data):]
        except BrokenPipeError as exc:
            raise BrowserError(f"Chromium exited (code {self.process.poll()}); its stderr ends with:\n"
                               f"{self._stderr_tail()}") from exc
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float) -> bool:
        """Collect events until ``predicate(events)`` holds (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            try:
                reply = self._read_message(deadline)
            except TimeoutError:
                return False
            if "method" in reply:
                self.events.append(reply)
        return True

    def evaluate(self, session: str, expression: str, timeout: float | None = None):
        """Value of a JavaScript expression in the page (promises awaited); raises on a thrown error."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, session, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.send("Browser.close", timeout=5)
        except (BrowserError, TimeoutError, OSError):
            pass
        finally:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._release()

    def _release(self) -> None:
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._stderr.close()
        self._profile.cleanup()

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- what is checked in the page ------------------------------------------------------------------------

# Wait for MathJax's initial typesetting (its startup promise) and for every image to finish loading.
_SETTLE_JS = """
(async () => {
  for (const img of document.images) img.loading = "eager";
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) await mj.startup.promise;
  await Promise.all([...document.images].map(img => img.complete ? null :
      new Promise(done => { img.addEventListener("load", done); img.addEventListener("error", done); })));
  return true;
})()
"""

# Raw TeX a reader would see: text outside code (MathJax skips pre/code), scripts and typeset math.
_INSPECT_JS = r"""
(() => {
  const skip = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "TEXTAREA", "MJX-CONTAINER", "NOSCRIPT"]);
  const visible = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement)
        if (skip.has(el.tagName)) return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    }});
  while (walker.nextNode()) visible.push(walker.currentNode.nodeValue);
  const text = visible.join(" ");
  const rawTeX = [];
  for (const pattern of [/\$\$/, /\\\(/, /\\\[/, /\\begin\{/, /\$(?=\S)[^$]*?\\[A-Za-z]+[^$]*?\$/]) {
    const m = text.match(pattern);
    if (m) rawTeX.push(text.slice(Math.max(0, m.index - 40), m.index + 60).replace(/\s+/g, " ").trim());
  }
  const rawTables = [];
  const tableRule = text.match(/\|\s*:?-{3,}:?\s*\|/);
  if (tableRule) rawTables.push(text.slice(Math.max(0, tableRule.index - 60), tableRule.index + 30)
                                    .replace(/\s+/g, " ").trim());
  // output text wider than its box (a reader must scroll sideways to read the end of the line)
  const wideOutputs = [...document.querySelectorAll(".cell_output pre, .output pre")]
      .filter(el => el.scrollWidth > el.clientWidth + 1)
      .map(el => el.textContent.split("\n").reduce((a, b) => b.length > a.length ? b : a, "").slice(0, 80));
  // a table wider than the output box it sits in
  const wideTables = [...document.querySelectorAll(".cell_output table, .output table")]
      .filter(t => t.getBoundingClientRect().width > t.closest(".cell_output, .output").clientWidth + 1)
      .map(t => `${t.rows.length ? t.rows[t.rows.length - 1].cells.length : 0} columns, ` +
                `${Math.round(t.getBoundingClientRect().width)} px wide`);
  // a display equation wider than the text column that neither fits nor scrolls is cut off
  const clippedMath = [...document.querySelectorAll('mjx-container[display="true"]')].filter(el => {
    const scrolls = ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
    const column = el.parentElement.getBoundingClientRect();
    const box = el.getBoundingClientRect();
    return (el.scrollWidth > el.clientWidth + 1 && !scrolls) || box.right > column.right + 1;
  }).map(el => (el.querySelector("mjx-assistive-mml") || el).textContent.trim().slice(0, 60));
  // a figure shrunk to fit the column shrinks its text with it (drawn for the column, it is not)
  const shrunkFigures = [...document.querySelectorAll(".cell_output img, .output img")]
      .filter(img => img.naturalWidth > 0 && img.getBoundingClientRect().width < 0.95 * img.naturalWidth)
      .map(img => `${(img.getAttribute("src") || "").split("/").pop()} drawn ${img.naturalWidth} px wide, ` +
                  `shown at ${Math.round(img.getBoundingClientRect().width)} px`);
  const mathNodes = [...document.querySelectorAll(".math")];
  return {
    rawTables, wideOutputs, wideTables, clippedMath, shrunkFigures,
    mathjax: Boolean(window.MathJax && window.MathJax.startup),
    math: mathNodes.length,
    untypeset: mathNodes.filter(el => !el.querySelector("mjx-container"))
                        .map(el => el.textContent.trim().slice(0, 80)),
    typeset: document.querySelectorAll("mjx-container").length,
    texErrors: [...document.querySelectorAll("mjx-merror")]
                 .map(el => (el.getAttribute("data-mjx-error") || el.textContent).slice(0, 120)),
    rawTeX,
    images: document.images.length,
    brokenImages: [...document.images].filter(img => !(img.complete && img.naturalWidth > 0))
                                      .map(img => img.getAttribute("src")),
  };
})()
"""


def _network_problems(events: list[dict], session: str, book_prefix: str) -> list[str]:
    urls: dict[str, str] = {}
    problems = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if not url.startswith((book_prefix, "data:", "blob:", "about:")):
                problems.append(f"request outside the book (the book must work offline): {url}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params["requestId"], params["requestId"])
            problems.append(f"request failed ({params.get('errorText')}"
                            f"{', blocked: ' + params['blockedReason'] if params.get('blockedReason') else ''}): {url}")
        elif method == "Network.responseReceived" and params["response"].get("status", 0) >= 400:
            problems.append(f"request answered {params['response']['status']}: {params['response']['url']}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            if not any(known in text for known in KNOWN_TOOLCHAIN_SCRIPT_ERRORS):
                problems.append(f"uncaught script error: {text.splitlines()[0][:200] if text else details}")
    return problems


@dataclass(frozen=True)
class PageReport:
    """What one page showed: its problems (empty when clean) and what was looked at."""

    url: str
    problems: tuple[str, ...]
    math: int = 0        # math elements in the page (``.math``: Sphinx's inline and display math)
    typeset: int = 0     # ``mjx-container`` elements MathJax produced
    images: int = 0      # ``<img>`` elements

    @property
    def ok(self) -> bool:
        return not self.problems


WINDOW_WIDTH = 1200  # px: a laptop browser window, the width the book's pages are checked at


def check_page(browser: DevTools, url: str, book_prefix: str, timeout: float = 30.0,
               screenshot: str | os.PathLike | None = None, width: int = WINDOW_WIDTH) -> PageReport:
    """Open ``url`` in a new tab ``width`` px wide and report what a reader would meet there; with
    ``screenshot``, save the whole page there as a PNG."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Network", "Page", "Runtime"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                             "mobile": False}, session)
        browser.events.clear()
        browser.send("Page.navigate", {"url": url}, session)
        loaded = browser.wait_for(lambda ev: any(e.get("sessionId") == session and e["method"] == "Page.loadEventFired"
                                                 for e in ev), timeout)
        if not loaded:
            return PageReport(url, (f"the page did not finish loading in {timeout:.0f} s",))
        try:
            browser.evaluate(session, _SETTLE_JS, timeout)
        except TimeoutError:
            return PageReport(url, (f"MathJax or the images did not finish in {timeout:.0f} s",))
        # let requests started by the typesetting (MathJax's web fonts) finish or fail
        quiet_until = time.monotonic() + timeout
        while time.monotonic() < quiet_until and _in_flight(browser.events, session):
            browser.wait_for(lambda ev: False, 0.2)
        found = browser.evaluate(session, _INSPECT_JS)
        problems = _network_problems(browser.events, session, book_prefix)
        if screenshot is not None:
            shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                session, timeout=max(timeout, 60))
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.send("Target.closeTarget", {"targetId": target})
    if found["math"] and not found["mathjax"]:
        problems.append(f"MathJax did not start, and the page has {found['math']} math element(s)")
    problems += [f"math not typeset: {text}" for text in found["untypeset"]]
    problems += [f"MathJax TeX error: {text}" for text in found["texErrors"]]
    problems += [f"raw TeX in the visible text: ...{text}..." for text in found["rawTeX"]]
    problems += [f"image did not load: {src}" for src in found["brokenImages"]]
    problems += [f"raw markdown table in the visible text: ...{text}..." for text in found["rawTables"]]
    problems += [f"output line wider than the column: {text}" for text in found["wideOutputs"]]
    problems += [f"output table wider than the column: {text}" for text in found["wideTables"]]
    problems += [f"display equation cut off at the column's edge: {text}" for text in found["clippedMath"]]
    problems += [f"figure shrunk to fit (its text shrinks too): {text}" for text in found["shrunkFigures"]]
    return PageReport(url, tuple(problems), found["math"], found["typeset"], found["images"])


def _in_flight(events: list[dict], session: str) -> bool:
    started, ended = set(), set()
    for e in events:
        if e.get("sessionId") != session:
            continue
        if e["method"] == "Network.requestWillBeSent":
            started.add(e["params"]["requestId"])
        elif e["method"] in ("Network.loadingFinished", "Network.loadingFailed"):
            ended.add(e["params"]["requestId"])
    return bool(started - ended)


@contextmanager
def _loopback_server(root: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def check_book(html_dir: str | os.PathLike, pages: list[str | os.PathLike] | None = None, *, over_http: bool = False,
               chromium: str | None = None, timeout: float = 30.0,
               screenshots: str | os.PathLike | None = None) -> dict[str, PageReport]:
    """Open each page of the book built in ``html_dir`` (default: all, see :func:`book_pages`) in headless
    Chromium, one tab per page, from ``file://`` or (``over_http``) a loopback HTTP server; return
    ``{page: PageReport}`` in page order. With ``screenshots``, save each page there as ``PAGE.png``."""
    root = Path(html_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; pass the book's _build/html")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    pages = book_pages(root) if pages is None else [Path(p) for p in pages]
    missing = [str(p) for p in pages if not (root / p).is_file()]
    if missing:
        raise FileNotFoundError(f"no such page(s) in {root}: {missing}")
    # the browser first: it is started with a preexec_fn, which must not fork while a server thread runs
    with DevTools(chromium, timeout=timeout) as browser, \
            (_loopback_server(root) if over_http else nullcontext(root.as_uri() + "/")) as prefix:
        shots = Path(screenshots) if screenshots is not None else None
        return {p.as_posix(): check_page(browser, prefix + p.as_posix(), prefix, timeout,
                                         None if shots is None else shots / f"{p.stem}.png")
                for p in pages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaebook.browser_check", description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", help="the built book, e.g. _build/html")
    parser.add_argument("--http", action="store_true", help="serve it on 127.0.0.1 instead of file://")
    parser.add_argument("--page", action="append", help="check only this page (relative path); repeatable")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per page (default 30)")
    parser.add_argument("--screenshots", metavar="DIR", help=f"save each page, {WINDOW_WIDTH} px wide, as DIR/PAGE.png")
    args = parser.parse_args(argv)
    try:
        results = check_book(args.html_dir, args.page, over_http=args.http, timeout=args.timeout,
                             screenshots=args.screenshots)
    except (BrowserError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 2
    bad = 0
    for page, report in results.items():
        print(f"{page}: {report.typeset} math typeset ({report.math} math elements), {report.images} images, "
              f"{len(report.problems)} problem(s)")
        for problem in report.problems:
            print(f"  {problem}")
        bad += len(report.problems)
    print(f"{len(results)} pages checked, {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
