"""`flowsim explore` in a real browser: Debian's headless chromium, driven by playwright, against the CLI's server.

The page's numbers are read back from its Bokeh models (``Bokeh.documents[0]``), not from
pixels, and compared with ``flowsim.integrate`` run here.  The server is the real command
(``python -m flowsim explore results/paper``) in a subprocess; the last test stops it with
Ctrl-C (SIGINT), and the fixture's teardown kills it if anything is left.

``FLOWSIM_SCREENSHOT=docs/explore.png pytest tests/integration/test_explore_browser.py``
rewrites the explore how-to's screenshot (by default it goes to a temporary folder, so that a test
run leaves the work tree clean).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import flowsim
from flowsim.model.parameterisations import make_parameterisation

# the module's server and browser (~4 s to start) on one worker, not on each that takes a test
pytestmark = pytest.mark.xdist_group("browser")

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "results" / "paper"
CHROMIUM = "/usr/bin/chromium"
APT = "apt-get update && apt-get install -y chromium chromium-driver"
#: Flags that work in this sandbox (no GPU, no network, no first-run chatter).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytest.importorskip("bokeh", reason="flowsim explore needs bokeh: pip install -e '.[test]'")
playwright = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright: pip install -e '.[test]'"
)
if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
    pytest.skip(f"no chromium: install Debian's with `{APT}` (.ci/run does)", allow_module_level=True)
if not (RUN / "flows.csv").is_file():
    pytest.skip(f"{RUN} has no flows.csv (flowsim reproduce writes it)", allow_module_level=True)

#: The plane's pixel for a point (p1, p2), in page coordinates.
JS_PIXEL = """([x, y]) => {
  const v = Bokeh.index.get_one(Bokeh.documents[0].get_model_by_name('plane'));
  const r = v.canvas_view.el.getBoundingClientRect();
  return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)];
}"""
#: A ColumnDataSource's columns as plain arrays.
JS_DATA = """(name) => {
  const d = Bokeh.documents[0].get_model_by_name(name).data, out = {};
  for (const k in d) out[k] = Array.from(d[k]);
  return out;
}"""
JS_TEXT = "(name) => Bokeh.documents[0].get_model_by_name(name).text"
#: An element's text, its shadow roots' included (Bokeh renders into shadow DOM).
JS_DEEP_TEXT = """(e) => {
  const walk = (n) => n.nodeType === 3 ? n.textContent :
    [...(n.shadowRoot ? n.shadowRoot.childNodes : []), ...n.childNodes].map(walk).join(' ');
  return walk(e);
}"""
#: The <input>/<select> element of a named widget (inside its shadow root).
JS_INPUT = """(name) => {
  const v = Bokeh.index.get_one(Bokeh.documents[0].get_model_by_name(name));
  return v.input_el;
}"""


class Server:
    """`python -m flowsim explore results/paper` on a free port, started at once; ``url`` waits for its address."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowsim", "explore", str(RUN)],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.err: list[str] = []
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True).start()
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            line = self.proc.stdout.readline()  # printed when the server listens
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            assert found, f"no address printed: {line!r}; stderr: {''.join(self.err)}"
            self._url = found.group(0)
        return self._url


@pytest.fixture(scope="module")
def server():
    srv = Server()
    try:
        yield srv
    finally:  # never left running, whatever the tests did
        if srv.proc.poll() is None:
            srv.proc.kill()
        srv.proc.wait(10)


@pytest.fixture(scope="module")
def run():
    return flowsim.load(RUN)


@pytest.fixture(scope="module")
def page(server, run):  # run: read here while the server starts
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)  # while the server starts
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 760})
            off_host: list[str] = []
            pg.on(
                "request",
                lambda r: None if r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")) else off_host.append(r.url),
            )
            url = server.url
            tic = time.perf_counter()
            pg.goto(url)
            pg.wait_for_function(
                "() => window.Bokeh && Bokeh.documents.length > 0 && "
                "Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('plane')) != null"
            )
            pg.load_seconds = time.perf_counter() - tic
            pg.off_host = off_host
            yield pg
        finally:
            browser.close()


def _click(page, p1: float, p2: float, paths: bool = True) -> float:
    """Click the plane at (p1, p2); wait until (with ``paths``) both paths are drawn from there; the seconds."""
    page.mouse.move(5, 740)  # off the plane first: a row's tooltip must not lie over the point
    x, y = page.evaluate(JS_PIXEL, [p1, p2])
    tic = time.perf_counter()
    page.mouse.click(x, y)
    page.wait_for_function(
        """([a, b, paths]) => {
      const d = Bokeh.documents[0], s = d.get_model_by_name('start').data;
      return s.p1.length && Math.abs(s.p1[0] - a) < 0.01 && Math.abs(s.p2[0] - b) < 0.01 && (!paths ||
             d.get_model_by_name('run_path').data.p1.length && d.get_model_by_name('compare_path').data.p1.length);
    }""",
        arg=[p1, p2, paths],
    )
    return time.perf_counter() - tic


def _set(page, name: str, value: str) -> None:
    """Type into a TextInput or choose in a Select, as a user does."""
    el = page.evaluate_handle(JS_INPUT, name).as_element()
    if el.evaluate("e => e.tagName") == "SELECT":
        el.select_option(value)
    else:
        el.fill(value)
        el.press("Enter")


def _expected(model: str, start, exp) -> np.ndarray:
    """The path flowsim.integrate gives from ``start`` under DPO(0.1), the run's stop rule and solver."""
    p0 = np.array([start])
    pol = make_parameterisation(model).bind(p0, np.ones_like(p0)).row(0)
    r = flowsim.integrate(flowsim.DPO(beta=0.1), policy=pol, stop=exp.stop, options=exp.solver, path=True)
    return pol.probs(r.path_x)[:, :2]


def test_the_page_loads_from_this_machine_alone(page):
    assert page.load_seconds < 30
    assert page.off_host == [], f"the page asked for off-host assets: {page.off_host[:3]}"
    assert "Click a start" in page.evaluate(JS_TEXT, "info")
    cells = page.evaluate("() => Bokeh.documents[0].get_model_by_name('cells').data.p1_0.length")
    assert cells == 10_000  # results/paper's grid, one cell per flow
    assert len(page.evaluate(JS_DATA, "field")["x0"]) == 15 * 15


def test_a_click_draws_the_flow_that_integrate_gives(page, run):
    exp = run.experiment
    seconds = _click(page, 0.30, 0.60)
    start = page.evaluate(JS_DATA, "start")
    p0 = (start["p1"][0], start["p2"][0])  # snapped to the run's start nearest the click
    drawn = page.evaluate(JS_DATA, "run_path")
    want = _expected("ratio", p0, exp)
    np.testing.assert_allclose(np.c_[drawn["p1"], drawn["p2"]], want, rtol=1e-12, atol=1e-15)
    row = run.flows.query("p1_0 == @p0[0] and p2_0 == @p0[1]").iloc[0]
    np.testing.assert_allclose([drawn["p1"][-1], drawn["p2"][-1]], [row.p1_final, row.p2_final], rtol=1e-9)
    info = page.evaluate(JS_TEXT, "info")
    ms = [float(m) for m in re.findall(r"<td>(\d+)</td></tr>", info)]
    print(f"\nclick -> both paths drawn: {1e3 * seconds:.0f} ms in the browser; computed in {ms} ms")
    assert ms and max(ms) < 1000  # < 200 ms measured unloaded; generous under a loaded CI machine


def test_switching_the_model_redraws_the_compared_path(page, run):
    exp = run.experiment
    before = page.evaluate(JS_DATA, "compare_path")
    _set(page, "model", "logits")
    page.wait_for_function(
        "(n) => { const d = Bokeh.documents[0].get_model_by_name('compare_path').data.p1;"
        " return d.length && d[d.length - 1] != n; }",
        arg=before["p1"][-1],
    )
    start = page.evaluate(JS_DATA, "start")
    drawn = page.evaluate(JS_DATA, "compare_path")
    want = _expected("logits", (start["p1"][0], start["p2"][0]), exp)
    np.testing.assert_allclose(np.c_[drawn["p1"], drawn["p2"]], want, rtol=1e-12, atol=1e-15)
    assert "logits" in page.evaluate(JS_TEXT, "info")


def test_a_bad_value_shows_the_config_error_and_the_page_lives_on(page):
    _set(page, "beta", "-1")
    page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('error').text.length > 0")
    error = page.evaluate(JS_TEXT, "error")
    assert "loss.beta" in error and "-1.0" in error, error  # flowsim's own validation, as for a file
    assert page.evaluate(JS_DATA, "compare_path")["p1"] == []
    assert "<td>compare</td>" not in page.evaluate(JS_TEXT, "info")  # no stale comparison left standing
    _set(page, "beta", "abc")
    page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('error').text.includes('abc')")
    _set(page, "beta", "0.1")
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('error').text == '' && "
        "Bokeh.documents[0].get_model_by_name('compare_path').data.p1.length > 0"
    )
    _click(page, 0.80, 0.55, paths=False)  # a start a normalised model cannot take: said on the page
    page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('error').text.includes('it needs p1 + p2')")


def test_the_screenshot_then_hovering_a_cell_shows_its_row(page, tmp_path):
    _set(page, "model", "logits")
    _click(page, 0.20, 0.45)
    out = Path(os.environ.get("FLOWSIM_SCREENSHOT", tmp_path / "explore.png"))
    out.parent.mkdir(parents=True, exist_ok=True)
    page.mouse.move(5, 740)  # off the plane: no tooltip in the picture
    page.wait_for_timeout(300)
    page.screenshot(path=str(out))
    assert out.stat().st_size > 20_000
    x, y = page.evaluate(JS_PIXEL, [0.62, 0.28])
    page.mouse.move(x, y)
    tip = page.locator(".bk-Tooltip", has_text="p1_final").first
    tip.wait_for(state="visible", timeout=10_000)
    text = tip.evaluate(JS_DEEP_TEXT)
    assert "t_stop" in text and "p1_final" in text and "status" in text, text
    assert "region" not in text and "nfev" not in text, text  # a few fields; the rest on a click
    assert "0.62" in text and "0.28" in text  # the hovered start's own row


def test_ctrl_c_stops_the_server_cleanly(server, page):
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(15) == 130
    time.sleep(0.2)  # the reader thread drains stderr
    err = "".join(server.err)
    assert "Traceback" not in err, err
    assert "interrupted" in err
