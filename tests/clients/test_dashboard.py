"""The live dashboard in a real browser: `rivulet up` on free ports, Debian's headless
Chromium driven through chromedriver (Selenium). The test waits until the charts show at
least two windows, checks that the values the page shows (table cells, chart points) are the
ones `/api/queries/<name>/results` returns, toggles a series through the legend and a key
through the selector, saves screenshots (light, dark, phone width) and finally restarts
`rivulet up` on the same dashboard port to see the page reconnect by itself.

Screenshots go to `$RIVULET_TEST_ARTIFACTS` (default `<repo>/target/test-artifacts`):
`dashboard.png`, `dashboard-dark.png`, `dashboard-phone.png`.

Chromium, chromedriver and selenium are installed by `scripts/install-test-deps.sh`; when
they are missing the test fails (it is not skipped), saying so.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT, rivulet_bin

DASHBOARD_AT = "rivulet dashboard at http://"
BROKER_AT = "rivulet broker listening on "
START_TIMEOUT_S = 60
RESULTS_TIMEOUT_S = 150
STOP_TIMEOUT_S = 60


def artifacts_dir() -> Path:
    d = Path(os.environ.get("RIVULET_TEST_ARTIFACTS", REPO_ROOT / "target" / "test-artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def require_browser():
    """Chromium, chromedriver and selenium, or a failure that says how to get them."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromedriver (chromium-driver)", driver)) if not p]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip, in .venv)")
    if missing:
        pytest.fail(f"the dashboard browser test needs {', '.join(missing)}: run scripts/install-test-deps.sh")
    return chromium, driver


class Up:
    """A `rivulet up` process with its dashboard address."""

    def __init__(self, data_dir: Path, dashboard_listen="127.0.0.1:0", env=None, args=()):
        binary = rivulet_bin()
        if not binary.exists():
            raise RuntimeError(f"rivulet binary not found at {binary} (build it or set RIVULET_BIN)")
        self.log_path = data_dir.parent / f"{data_dir.name}-{int(time.time() * 1000)}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "up", "--listen", "127.0.0.1:0", "--dashboard-listen", dashboard_listen,
             "--rate", "2000", "--data-dir", str(data_dir), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, text=True,
            env={**os.environ, **(env or {})},
        )
        lines: "queue.Queue[str | None]" = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        self.addr = None
        broker = None
        while self.addr is None or broker is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise RuntimeError(f"rivulet up printed no dashboard/broker line; log:\n{self.log_tail()}")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=STOP_TIMEOUT_S)
                raise RuntimeError(f"rivulet up exited with {code}; log:\n{self.log_tail()}")
            if line.startswith(DASHBOARD_AT):
                self.addr = line[len(DASHBOARD_AT):].strip()
            elif line.startswith(BROKER_AT):
                broker = line[len(BROKER_AT):].strip()
        assert self.addr.startswith("127.0.0.1:"), self.addr
        self.broker = broker
        self.url = f"http://{self.addr}"

    def log_tail(self, n=40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self):
        """SIGINT (a clean shutdown), SIGKILL if it takes too long."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._log.close()
        return self.proc.returncode


def api(up: Up, path: str):
    with urllib.request.urlopen(up.url + path, timeout=30) as r:
        assert r.status == 200, path
        return json.loads(r.read().decode())


def wait_until(pred, timeout_s, what, interval_s=0.5):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


# What the page shows, read in one script so it is one consistent moment of the DOM.
READ_PAGE = """
const rows = [...document.querySelectorAll('#windows-table tbody tr[data-key]')].map(tr => ({
  key: tr.dataset.key, start: Number(tr.dataset.start), end: Number(tr.dataset.end),
  epoch: Number(tr.dataset.epoch), final: tr.dataset.final === 'true',
  cells: [...tr.querySelectorAll('td[data-col]')].map(td => ({
    col: td.dataset.col, value: td.dataset.value, text: td.textContent })),
}));
const points = [...document.querySelectorAll('figure.chart')].flatMap(f =>
  [...f.querySelectorAll('circle[data-key]')].map(c => ({
    agg: f.dataset.agg, key: c.dataset.key, end: Number(c.dataset.x),
    value: Number(c.dataset.value), epoch: Number(c.dataset.epoch) })));
const windows = Math.max(0, ...[...document.querySelectorAll('figure.chart')].map(f => Number(f.dataset.windows)));
return { rows, points, windows, connected: document.body.dataset.connected,
         server: document.body.dataset.server || null };
"""


def compare_with_api(up: Up, page):
    """Every row and chart point the page shows equals the API's value for that key and
    window, whenever both are from the same epoch (open windows change every second; final
    ones never do). Returns how many values were compared."""
    keys = sorted({r["key"] for r in page["rows"]} | {p["key"] for p in page["points"]})
    res = api(up, "/api/queries/stats/results?windows=60&keys=" + ",".join(keys))
    by = {(w["key"], w["window_end_ms"]): w for w in res["windows"]}
    compared = 0
    finals = 0
    for r in page["rows"]:
        w = by.get((r["key"], r["end"]))
        assert w is not None, f"page row {r} is not in the API's results"
        assert w["window_start_ms"] == r["start"]
        if w["epoch"] != r["epoch"]:
            assert not r["final"], f"a final window changed: page {r}, api {w}"
            continue
        for c in r["cells"]:
            v = w["values"][c["col"]]
            assert float(c["value"]) == pytest.approx(v, rel=0, abs=1e-12), (r, w)
            # The text shown is the value, rounded to the 3 decimals the page displays.
            assert float(c["text"].replace(",", "")) == pytest.approx(v, abs=0.0005 + 1e-9), (c, v)
            compared += 1
        finals += r["final"]
    for p in page["points"]:
        w = by.get((p["key"], p["end"]))
        assert w is not None, f"chart point {p} is not in the API's results"
        if w["epoch"] == p["epoch"]:
            assert p["value"] == pytest.approx(w["values"][p["agg"]], rel=0, abs=1e-12), (p, w)
            compared += 1
    return compared, finals


@pytest.fixture
def browser():
    chromium, driver_path = require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rivulet-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    d.set_page_load_timeout(60)
    d.set_script_timeout(30)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(d, path: Path, width: int, mobile=False):
    """A full-page screenshot at `width` CSS pixels (the viewport set through the DevTools
    protocol, so its size is exact; `mobile` honours the page's viewport meta tag like a
    phone). Returns how many pixels the page is wider than the viewport."""
    def viewport(height):
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    try:
        viewport(900)
        time.sleep(1.5)  # a push or two at the new width (the charts redraw to fit)
        height = int(d.execute_script("return document.documentElement.scrollHeight"))
        viewport(min(height, 8000))
        time.sleep(1.5)
        assert d.save_screenshot(str(path)), path
        overflow = d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return overflow


def test_dashboard_in_headless_chromium(browser, tmp_path):
    d = browser
    data = tmp_path / "data"
    up = Up(data)
    try:
        d.set_window_size(1280, 900)
        d.get(up.url + "/?theme=light")
        assert "Rivulet" in d.title

        page = wait_until(
            lambda: (lambda p: p if p["windows"] >= 2 and any(r["final"] for r in p["rows"]) else None)(
                d.execute_script(READ_PAGE)),
            RESULTS_TIMEOUT_S, "two windows in the charts and a final row in the table")
        assert page["connected"] == "true"
        compared, finals = compare_with_api(up, page)
        assert finals > 0 and compared >= 4, (compared, finals)

        # Health cards agree with /api/health (counters only grow between the two reads).
        shown = d.execute_script("return document.getElementById('m-engine-in-sub').textContent")
        total_shown = int(shown.split("·")[1].split()[0].replace(",", ""))
        assert 0 < total_shown <= api(up, "/api/health")["engine"]["input_rows_total"]
        status = d.execute_script("return document.getElementById('status').dataset.status")
        assert status in ("healthy", "degraded", "starting", "down")
        # Topics and groups tables from the admin client.
        wait_until(lambda: d.execute_script(
            "return !!document.querySelector('#topics-table tr[data-topic=\"events\"]') && "
            "!!document.querySelector('#groups-table tr[data-group=\"rivulet-stats\"]')"),
            30, "topics and groups tables")

        # The legend hides and shows a series in every chart.
        key = page["rows"][0]["key"]
        sel = f'figure.chart g.series[data-key="{key}"]'
        assert d.execute_script(f"return document.querySelectorAll('{sel}').length") > 0
        d.execute_script(f"document.querySelector('#legend button[data-key=\"{key}\"]').click()")
        assert d.execute_script(f"return document.querySelectorAll('{sel}').length") == 0
        wait_until(lambda: d.execute_script(f"return document.querySelectorAll('{sel}').length") == 0
                   and d.execute_script("return document.body.dataset.connected") == "true",
                   10, "series hidden across pushes")
        d.execute_script(f"document.querySelector('#legend button[data-key=\"{key}\"]').click()")
        assert d.execute_script(f"return document.querySelectorAll('{sel}').length") > 0

        # The key selector: dropping a key reconnects with the others only; Top 10 brings it back.
        d.execute_script(f"document.querySelector('#key-chips button[data-key=\"{key}\"]').click()")
        wait_until(lambda: d.execute_script(
            f"return document.querySelector('#key-top').getAttribute('aria-pressed') === 'false' && "
            f"!document.querySelector('#windows-table tr[data-key=\"{key}\"]') && "
            f"document.querySelectorAll('#windows-table tbody tr[data-key]').length > 0"),
            20, f"key {key} dropped from the selection")
        d.execute_script("document.getElementById('key-top').click()")
        wait_until(lambda: d.execute_script(
            f"return !!document.querySelector('#windows-table tr[data-key=\"{key}\"]')"),
            20, f"key {key} back with Top 10")
        page = wait_until(lambda: (lambda p: p if p["windows"] >= 2 else None)(d.execute_script(READ_PAGE)),
                          20, "charts after reselecting")
        compare_with_api(up, page)

        # Screenshots: light, dark, phone width; no sideways scrolling on the phone.
        out = artifacts_dir()
        screenshot(d, out / "dashboard.png", 1280)
        d.get(up.url + "/?theme=dark")
        wait_until(lambda: d.execute_script(READ_PAGE)["windows"] >= 2, 30, "dark page with data")
        bg = d.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(15, 20, 25)", bg
        screenshot(d, out / "dashboard-dark.png", 1280)
        d.get(up.url + "/?theme=light")
        wait_until(lambda: d.execute_script(READ_PAGE)["windows"] >= 2, 30, "phone page with data")
        overflow = screenshot(d, out / "dashboard-phone.png", 390, mobile=True)
        assert overflow <= 1, f"page is {overflow}px wider than a phone screen"

        # Nothing failed in the page (a blocked outside request would show up here).
        severe = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
        assert not severe, severe

        # A restart of `rivulet up` on the same dashboard port: the page reconnects by itself.
        d.set_window_size(1280, 900)
        first_server = d.execute_script("return document.body.dataset.server")
        assert first_server
        port = up.addr.rsplit(":", 1)[1]
        assert up.stop() == 0, up.log_tail()
        wait_until(lambda: d.execute_script("return document.body.dataset.connected") == "false",
                   20, "the page to notice the restart")
        up = None
        deadline = time.monotonic() + 30
        while up is None:
            try:
                up = Up(data, dashboard_listen=f"127.0.0.1:{port}")
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)  # the port may take a moment to be free again
        wait_until(lambda: d.execute_script(
            "return document.body.dataset.connected === 'true' && document.body.dataset.server"),
            30, "the page to reconnect")
        assert d.execute_script("return document.body.dataset.server") != first_server
    finally:
        if up is not None:
            up.stop()


def test_dashboard_asks_for_its_token_once(browser, tmp_path):
    """With RIVULET_DASHBOARD_TOKEN the page first shows its token prompt; a wrong token is
    refused, the right one opens the dashboard, and a reload does not ask again (the session
    cookie). The API refuses requests without the token; the token is in no output."""
    import urllib.error
    import uuid

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    token = "tok-" + uuid.uuid4().hex
    up = Up(tmp_path / "data", env={"RIVULET_DASHBOARD_TOKEN": token})
    d = browser
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            api(up, "/api/queries")
        assert refused.value.code == 401
        d.get(up.url + "/")
        WebDriverWait(d, 30).until(lambda d: d.find_elements(By.ID, "token"))
        d.find_element(By.ID, "token").send_keys("not-the-token-at-all")
        d.find_element(By.ID, "sign-in").click()
        WebDriverWait(d, 30).until(lambda d: d.find_elements(By.ID, "login-error"))
        d.find_element(By.ID, "token").send_keys(token)
        d.find_element(By.ID, "sign-in").click()
        WebDriverWait(d, 60).until(lambda d: d.find_elements(By.ID, "status") and d.find_element(By.ID, "status").text)
        assert not d.find_elements(By.ID, "token")
        # Once: a reload goes straight to the dashboard, and its live updates flow.
        d.get(up.url + "/")
        WebDriverWait(d, 60).until(lambda d: d.find_elements(By.ID, "status") and d.find_element(By.ID, "status").text)
        assert not d.find_elements(By.ID, "token")
    finally:
        code = up.stop()
    assert code == 0, up.log_tail()
    assert token not in up.log_path.read_text(errors="replace")


# The page's view of a query spread over processes: the scope line, the task rows, the events.
READ_INSTANCE = """
const scope = document.getElementById('instance-scope');
return { hidden: scope.hidden, scope: scope.textContent,
         tasks: [...document.querySelectorAll('#instance-tasks tbody tr[data-task]')].map(tr => Number(tr.dataset.task)),
         events: [...document.querySelectorAll('#instance-events li')].map(li => li.dataset.event) };
"""


def test_dashboard_of_a_query_spread_over_processes(browser, tmp_path):
    """Issue 16: `rivulet up --checkpoint-store kafka` over a 2-partition topic runs the query
    as two tasks; its page says it shows the whole query. A second process of the same query
    (`rivulet run`, same name) joins the group and takes a task over: the first page then says
    plainly that it shows one instance of 2, lists its one task and the move."""
    d = browser
    up = Up(tmp_path / "data", args=("--checkpoint-store", "kafka", "--partitions", "2"))
    run = None
    run_log = open(tmp_path / "run.log", "wb")
    try:
        d.set_window_size(1280, 900)
        d.get(up.url + "/?theme=light")
        whole = wait_until(lambda: (lambda p: p if not p["hidden"] and p["tasks"] == [0, 1]
                                    and "shows the whole query" in p["scope"] else None)(
            d.execute_script(READ_INSTANCE)), RESULTS_TIMEOUT_S, "the whole query on one page")
        assert "runs all 2 tasks of group rivulet-stats" in whole["scope"], whole

        pipeline = REPO_ROOT / "examples" / "pipeline.toml"
        run = subprocess.Popen(
            [str(rivulet_bin()), "run", "--pipeline", str(pipeline), "--brokers", up.broker,
             "--checkpoint-store", "kafka", "--checkpoint-dir", str(tmp_path / "run-checkpoints"),
             "--dashboard", "--dashboard-listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=run_log)
        one = wait_until(lambda: (lambda p: p if len(p["tasks"]) == 1
                                  and "shows one instance of 2" in p["scope"] else None)(
            d.execute_script(READ_INSTANCE)), RESULTS_TIMEOUT_S, "one instance of two on the page")
        owner = api(up, "/api/health")["instance"]["owner"]
        assert f"this process ({owner}) runs task {one['tasks'][0]} of 2" in one["scope"], one
        assert one["events"][0] == "tasksRevoked", one
        assert "tasksAssigned" in one["events"], one
        screenshot(d, artifacts_dir() / "dashboard-instance.png", 1280)
        severe = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
        assert not severe, severe
    finally:
        if run is not None and run.poll() is None:
            run.send_signal(signal.SIGINT)
            try:
                run.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait(timeout=STOP_TIMEOUT_S)
        run_log.close()
        code = up.stop()
    assert run.returncode == 0, (tmp_path / "run.log").read_text(errors="replace")[-4000:]
    assert code == 0, up.log_tail()
