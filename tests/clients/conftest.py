"""Fixtures for the client compatibility tests: real Kafka clients (kafka-python, kcat)
against a Rivulet broker started from the built binary.

The broker is `$RIVULET_BIN` (default `target/debug/rivulet` under the repo root), started
with `broker --listen 127.0.0.1:0 --data-dir <tmp>`; its stdout line
`rivulet broker listening on 127.0.0.1:<port>` gives the bootstrap address.
"""

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_PREFIX = "rivulet broker listening on "
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


def rivulet_bin() -> Path:
    p = Path(os.environ.get("RIVULET_BIN", REPO_ROOT / "target" / "debug" / "rivulet"))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


class Broker:
    """A running broker process; `addr` is its bootstrap address."""

    def __init__(self, data_dir: Path, extra_args=(), listen_args=("--listen", "127.0.0.1:0"), listeners=1):
        binary = rivulet_bin()
        if not binary.exists():
            raise RuntimeError(f"rivulet binary not found at {binary} (build it or set RIVULET_BIN)")
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "broker", *listen_args, "--data-dir", str(data_dir), *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        # stdout is read on a thread so that the wait for the ready line is bounded and the
        # pipe keeps being drained afterwards.
        lines: "queue.Queue[str | None]" = queue.Queue()

        def pump():
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        self.addr = None
        # One ready line per listener, in the order of --listeners.
        self.addrs = []
        while len(self.addrs) < listeners:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise RuntimeError(f"broker printed no ready line within {START_TIMEOUT_S}s; log:\n{self.log_tail()}")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=STOP_TIMEOUT_S)
                raise RuntimeError(f"broker exited with {code} before it was ready; log:\n{self.log_tail()}")
            if line.startswith(READY_PREFIX):
                self.addrs.append(line[len(READY_PREFIX):].strip())
        self.addr = self.addrs[0]
        assert self.addr.startswith("127.0.0.1:"), self.addr

    def log_tail(self, n=40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self):
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._log.close()


@pytest.fixture(scope="session")
def broker_tmp():
    d = Path(tempfile.mkdtemp(prefix="rivulet-clients-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def broker(broker_tmp):
    """One broker per test module; yields its bootstrap address."""
    b = Broker(broker_tmp / f"data-{uuid.uuid4().hex[:8]}")
    try:
        yield b.addr
    finally:
        b.stop()


@pytest.fixture
def topic_name(request):
    """A fresh topic name per test, readable in broker logs."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"{base}-{uuid.uuid4().hex[:8]}"


def wait_until(pred, timeout_s=30.0, interval_s=0.2, what="condition"):
    """Polls `pred` until it returns a truthy value; fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")
