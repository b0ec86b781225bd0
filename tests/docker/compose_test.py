"""The compose file, for real (run by scripts/docker-test.sh, which builds rivulet:latest first).

1. `docker-compose up`: within 90 s the processor's dashboard (published port) reports a
   healthy status and at least two windows of results.
2. `docker-compose stop processor` + `start processor`: the query resumes from its checkpoint
   and no window reaches the Kafka sink (`stats`, emitted once per closed window) twice.
3. `docker stop` of the processor: it shuts down cleanly (its log says so) within 10 s.
4. `docker-compose down` then `up`: the broker's `events` topic still holds the earlier events.

Prints the time from `up` to the first result. Every wait is bounded.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
PROJECT = f"rivulet-compose-test-{os.getpid()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DASHBOARD_PORT = free_port()
BROKER_PORT = free_port()
ENV = dict(
    os.environ,
    RIVULET_DASHBOARD_PORT=str(DASHBOARD_PORT),
    RIVULET_BROKER_PORT=str(BROKER_PORT),
    RIVULET_HOST="127.0.0.1",
    RIVULET_RATE="200",
)


def compose(*args, timeout=180, check=True):
    cmd = ["docker-compose", "-p", PROJECT, *args]
    print("$", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, timeout=timeout, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def container(service: str) -> str:
    return compose("ps", "-q", service).stdout.strip()


DASHBOARD_TOKEN = os.environ.get("RIVULET_DASHBOARD_TOKEN", "rivulet-compose-local")


def get_json(path: str):
    req = urllib.request.Request(f"http://127.0.0.1:{DASHBOARD_PORT}{path}",
                                 headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def wait(what: str, within: float, check):
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except Exception as e:  # noqa: BLE001 - anything before it works is "not yet"
            last = e
        time.sleep(1)
    logs = compose("logs", "--tail=40", check=False).stdout
    raise SystemExit(f"{what}: not within {within:.0f}s (last error: {last})\n{logs}")


def results_windows() -> int:
    health = get_json("/api/health")
    if health["status"] != "healthy":
        return 0
    names = [q["name"] for q in get_json("/api/queries")]
    return max((len(get_json(f"/api/queries/{n}/results")["windows"]) for n in names), default=0)


def read_topic(topic: str):
    c = KafkaConsumer(
        bootstrap_servers=f"127.0.0.1:{BROKER_PORT}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out = []
        deadline = time.monotonic() + 60
        while any(c.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise SystemExit(f"reading {topic} timed out")
            for records in c.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        c.close()


def windows_in_sink():
    rows = [json.loads(r.value) for r in read_topic("stats")]
    return Counter((r["id"], r["window_start"]) for r in rows)


def main():
    try:
        started = time.monotonic()
        compose("up", "-d", "--no-build")
        n = wait(
            "two windows of results on the dashboard",
            90,
            lambda: (lambda w: w if w >= 2 else None)(results_windows()),
        )
        first_result = time.monotonic() - started
        print(f"up to first results: {first_result:.1f}s ({n} windows)", flush=True)

        # 2. Stop and start the processor: resumes from its checkpoint, nothing doubled.
        before = wait("windows in the Kafka sink", 60, lambda: windows_in_sink() or None)
        compose("stop", "processor")
        compose("start", "processor")
        after = wait(
            "new windows after the restart",
            90,
            lambda: (lambda w: w if len(w) > len(before) else None)(windows_in_sink()),
        )
        twice = [k for k, c in after.items() if c > 1]
        assert not twice, f"windows emitted twice in the Kafka sink: {twice[:5]}"
        assert set(before) <= set(after)
        print(f"restart: {len(before)} windows before, {len(after)} after, none twice", flush=True)

        # 3. docker stop: a clean shutdown within 10 s.
        cid = container("processor")
        t = time.monotonic()
        subprocess.run(["docker", "stop", "-t", "10", cid], check=True, timeout=30, capture_output=True)
        stop_secs = time.monotonic() - t
        log = subprocess.run(["docker", "logs", cid], capture_output=True, text=True, timeout=30)
        text = log.stdout + log.stderr
        assert "query stopped after" in text, f"no clean shutdown line:\n{text[-3000:]}"
        assert stop_secs < 10, f"docker stop took {stop_secs:.1f}s"
        print(f"docker stop: clean shutdown in {stop_secs:.1f}s", flush=True)

        # 4. down and up: the events survive in the broker's volume.
        events_before = len(read_topic("events"))
        assert events_before > 0
        compose("down")
        compose("up", "-d", "--no-build", "broker")
        events_after = wait(
            "the broker back with its events",
            60,
            lambda: (lambda n: n if n >= events_before else None)(len(read_topic("events"))),
        )
        print(f"down/up: {events_before} events before, {events_after} after", flush=True)
        print("compose test: passed", flush=True)
    finally:
        compose("down", "-v", "--remove-orphans", check=False, timeout=120)


if __name__ == "__main__":
    sys.exit(main())
