"""`rivulet topics|groups|bench` (the rivulet-client crate, through librdkafka) against the
broker. Skipped while the binary does not have these subcommands wired up yet."""

import json
import subprocess
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer

from conftest import rivulet_bin, wait_until

TIMEOUT_S = 120


def run(*args, check=True, timeout=TIMEOUT_S):
    cmd = [str(rivulet_bin()), *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout}s")
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def require_subcommand(name):
    """Skips unless `rivulet <name> --help` works and `rivulet <name>` takes --brokers there
    (or, for bench, has produce/consume)."""
    if not rivulet_bin().exists():
        pytest.skip(f"no binary at {rivulet_bin()}")
    r = run(name, "--help", check=False, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"`rivulet {name}` is not available in this binary yet")
    return r.stdout


def brokers_args(addr, name):
    help_text = require_subcommand(name)
    if "--brokers" not in help_text:
        pytest.skip(f"`rivulet {name}` takes no --brokers flag before its subcommand")
    return [name, "--brokers", addr]


def produce(addr, topic, n, partition=None):
    p = KafkaProducer(bootstrap_servers=addr, acks="all", request_timeout_ms=30_000)
    try:
        for i in range(n):
            p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=partition)
        p.flush(timeout=60)
    finally:
        p.close(timeout=10)


def test_topics_commands(broker, topic_name):
    t = brokers_args(broker, "topics")
    out = run(*t, "create", topic_name, "--partitions", "3", "--config", "retention.ms=3600000").stdout
    assert topic_name in out
    # Creating it twice fails with a message naming the topic.
    r = run(*t, "create", topic_name, check=False)
    assert r.returncode != 0 and topic_name in r.stderr

    listed = run(*t, "list").stdout
    rows = {line.split()[0]: line.split()[1:] for line in listed.splitlines()[1:] if line.strip()}
    assert rows.get(topic_name) == ["3"], listed

    produce(broker, topic_name, 5, partition=1)
    described = run(*t, "describe", topic_name).stdout
    assert "partitions: 3" in described
    assert "records: 5" in described
    part_rows = [line.split() for line in described.splitlines() if line.strip()[:1].isdigit()]
    # PARTITION LEADER LOG-START HIGH-WATERMARK RECORDS
    assert [r[0] for r in part_rows] == ["0", "1", "2"], described
    assert part_rows[1][2:5] == ["0", "5", "5"], described
    # "* retention.ms = 3600000" (local.retention.ms and others contain the name too).
    override = [line for line in described.splitlines() if line[1:].split("=")[0].strip() == "retention.ms"]
    assert override and override[0].startswith("*") and override[0].rstrip().endswith("3600000"), described

    r = run(*t, "describe", f"{topic_name}-missing", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr

    run(*t, "delete", topic_name)
    wait_until(
        lambda: topic_name not in run(*t, "list").stdout, timeout_s=30, what="deleted topic gone from `topics list`"
    )


def test_groups_commands(broker, topic_name):
    g = brokers_args(broker, "groups")
    group = f"g-{topic_name}"
    produce(broker, topic_name, 10)
    c = KafkaConsumer(
        topic_name,
        bootstrap_servers=broker,
        group_id=group,
        client_id="cli-test-client",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=500,
    )
    try:
        got = 0
        deadline = time.monotonic() + 60
        while got < 10 and time.monotonic() < deadline:
            got += sum(len(v) for v in c.poll(timeout_ms=500).values())
        assert got == 10
        c.commit()
        produce(broker, topic_name, 4)  # lag 4 behind the commit

        def described():
            c.poll(timeout_ms=100)  # keep the member alive (heartbeats)
            out = run(*g, "describe", group).stdout
            return out if "state: Stable" in out else None

        out = wait_until(described, timeout_s=30, what="the group to be Stable")
        assert "client-id: cli-test-client" in out, out
        assert f"assignment: {topic_name}[0]" in out, out
        row = next(line.split() for line in out.splitlines() if line.startswith(topic_name))
        # TOPIC PARTITION COMMITTED LOG-END LAG MEMBER
        assert row[1:5] == ["0", "10", "14", "4"], out

        listed = run(*g, "list").stdout
        assert group in listed
    finally:
        c.close()

    # An empty group still shows its committed offsets and lag.
    out = wait_until(
        lambda: (lambda o: o if "members: 0" in o else None)(run(*g, "describe", group).stdout),
        timeout_s=30,
        what="the group to be empty after the consumer left",
    )
    row = next(line.split() for line in out.splitlines() if line.startswith(topic_name))
    assert row[1:5] == ["0", "10", "14", "4"], out

    r = run(*g, "describe", f"{group}-missing", check=False)
    assert r.returncode != 0


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_bench_with_own_broker():
    require_subcommand("bench")
    r = run("bench", "produce", "--count", "20000", "--acks", "all", "--timeout-secs", "60")
    res = last_json(r.stdout)
    assert res["bench"] == "produce" and res["broker_started_by_bench"] is True
    assert res["delivered"] == 20000 and res["errors"] == 0
    assert res["records_per_sec"] > 0 and res["broker_peak_rss_mib"] > 0
    assert res["latency_p99_ms"] >= res["latency_p50_ms"] > 0
    for key in ["records_per_sec:", "mb_per_sec:", "latency_p99_ms:", "broker_peak_rss_mib:"]:
        assert key in r.stdout


def test_bench_against_broker(broker, topic_name):
    require_subcommand("bench")
    common = ["--brokers", broker, "--topic", topic_name, "--timeout-secs", "60", "--partitions", "2"]
    # Consume pre-fills the topic first.
    res = last_json(run("bench", "consume", *common, "--count", "5000", "--compression", "zstd").stdout)
    assert res["prefilled"] == 5000 and res["consumed"] == 5000
    res = last_json(run("bench", "produce", *common, "--count", "5000", "--idempotent", "--size", "200").stdout)
    assert res["delivered"] == 5000 and res["broker_started_by_bench"] is False
    # Now the topic has 10000 records: nothing to pre-fill.
    res = last_json(run("bench", "consume", *common, "--count", "10000").stdout)
    assert res["prefilled"] == 0 and res["consumed"] == 10000


def test_bench_raw_client(broker, topic_name):
    """`--client raw`: the minimal kafka-protocol client produces exactly --count records
    (pipelined, pre-encoded batches round-robin over the partitions) and reads them back by
    walking batch headers, with dense offsets."""
    require_subcommand("bench")
    common = ["--brokers", broker, "--topic", topic_name, "--timeout-secs", "60", "--partitions", "2"]
    r = run("bench", "produce", "--client", "raw", *common, "--count", "50000", "--in-flight", "4", "--acks", "all")
    res = last_json(r.stdout)
    assert res["client"] == "raw" and "client:" in r.stdout
    assert res["delivered"] == 50000 and res["errors"] == 0, res
    assert res["partitions"] == 2 and res["records_per_sec"] > 0
    assert res["latency_p99_ms"] >= res["latency_p50_ms"] > 0

    # Both partitions got batches, and together they hold exactly the records sent.
    described = run("topics", "--brokers", broker, "describe", topic_name).stdout
    assert "records: 50000" in described, described

    # The topic holds 50000 records: nothing to pre-fill, the raw consumer reads exactly those.
    res = last_json(run("bench", "consume", "--client", "raw", *common, "--count", "50000").stdout)
    assert res["client"] == "raw" and res["prefilled"] == 0
    assert res["consumed"] == 50000 and res["errors"] == 0, res

    # Compressed batches from librdkafka (pre-fill) are walked without decompressing them.
    res = last_json(run("bench", "consume", "--client", "raw", *common, "--count", "60000", "--compression", "lz4").stdout)
    assert res["prefilled"] == 10000 and res["consumed"] == 60000 and res["errors"] == 0, res

    # acks 0 gets no responses: refused before anything runs.
    r = run("bench", "produce", "--client", "raw", *common, "--acks", "0", check=False)
    assert r.returncode != 0 and "acks" in r.stderr
