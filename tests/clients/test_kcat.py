"""kcat (librdkafka's command-line client) against the Rivulet broker: produce and consume
with keys and every codec, metadata listing, and offset lookup by timestamp."""

import json
import shutil
import subprocess

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat/kafkacat not installed (scripts/install-test-deps.sh)")

TIMEOUT_S = 60


def kcat(addr, *args, input=None):
    """Runs kcat against `addr`; fails the test on a non-zero exit or after TIMEOUT_S."""
    cmd = [KCAT, "-b", addr, "-q", *args]
    try:
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(cmd)} did not finish within {TIMEOUT_S}s")
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}: {r.stderr}"
    return r.stdout


def lines(n, start=0):
    return [f"key{i % 5}:value-{i}-{'y' * (i % 30)}" for i in range(start, start + n)]


# zstd is not in kcat's -z list but librdkafka takes it as compression.codec.
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume_keys_exact(broker, topic_name, codec):
    sent = lines(200)
    kcat(broker, "-P", "-t", topic_name, "-K:", "-X", f"compression.codec={codec}", input="\n".join(sent) + "\n")
    out = kcat(broker, "-C", "-t", topic_name, "-o", "beginning", "-e", "-f", "%k:%s:%o\n")
    expected = [f"{line}:{offset}" for offset, line in enumerate(sent)]
    assert out.splitlines() == expected


def test_consume_count_and_offsets(broker, topic_name):
    sent = lines(50)
    kcat(broker, "-P", "-t", topic_name, "-K:", input="\n".join(sent) + "\n")
    # From an absolute offset, a bounded count.
    out = kcat(broker, "-C", "-t", topic_name, "-o", "10", "-c", "5", "-f", "%o %s\n")
    assert out.splitlines() == [f"{o} {sent[o].split(':', 1)[1]}" for o in range(10, 15)]
    # Relative to the end.
    out = kcat(broker, "-C", "-t", topic_name, "-o", "-3", "-e", "-f", "%o\n")
    assert out.splitlines() == ["47", "48", "49"]


def test_metadata_lists_topic_with_partitions(broker, topic_name):
    a = KafkaAdminClient(bootstrap_servers=broker, request_timeout_ms=30_000)
    try:
        a.create_topics([NewTopic(name=topic_name, num_partitions=3, replication_factor=1)])
    finally:
        a.close()
    md = json.loads(kcat(broker, "-L", "-J", "-t", topic_name))
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic_name in topics, md
    t = topics[topic_name]
    assert "error" not in t, t
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    assert len(md["brokers"]) == 1 and md["brokers"][0]["name"] == broker

    md = json.loads(kcat(broker, "-L", "-J"))
    assert topic_name in {t["topic"] for t in md["topics"]}


def test_query_offset_by_timestamp(broker, topic_name):
    # kcat cannot set per-message timestamps when producing, so kafka-python does.
    base = 1_700_000_000_000
    p = KafkaProducer(bootstrap_servers=broker, acks="all", request_timeout_ms=30_000)
    try:
        for i in range(10):
            p.send(topic_name, value=f"v{i}".encode(), partition=0, timestamp_ms=base + i * 1000)
        p.flush(timeout=TIMEOUT_S)
    finally:
        p.close(timeout=10)

    def query(ts):
        r = json.loads(kcat(broker, "-Q", "-J", "-t", f"{topic_name}:0:{ts}"))
        return r[topic_name]["0"]["offset"]

    assert query(base) == 0
    assert query(base + 4000) == 4
    assert query(base + 4500) == 5  # first record at or after the timestamp
    assert query(base + 9000) == 9
    # Past the last record: Kafka answers -1 (librdkafka: end / OFFSET_END).
    assert query(base + 60_000) in (-1, 10)
    # The timestamps come back on consume too.
    out = kcat(broker, "-C", "-t", topic_name, "-o", "beginning", "-e", "-f", "%T %o\n")
    assert out.splitlines() == [f"{base + i * 1000} {i}" for i in range(10)]
