"""kafka-python (the seed application's client library) against the Rivulet broker:
produce/consume with every codec it can use, consumer groups with committed offsets,
the admin client, multi-partition topics and timestamp lookups."""

import json
import time
from collections import defaultdict

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import codec as kcodec
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from conftest import wait_until

N = 300
CONSUME_TIMEOUT_S = 60
REQUEST_TIMEOUT_MS = 30_000


def codec_available(name):
    checks = {
        "none": lambda: True,
        "gzip": kcodec.has_gzip,
        "snappy": kcodec.has_snappy,
        "lz4": kcodec.has_lz4,
        "zstd": kcodec.has_zstd,
    }
    return checks[name]()


CODECS = [
    pytest.param(
        c,
        marks=pytest.mark.skipif(not codec_available(c), reason=f"python module for {c} not installed"),
    )
    for c in ["none", "gzip", "snappy", "lz4", "zstd"]
]


def producer(addr, **kw):
    return KafkaProducer(
        bootstrap_servers=addr,
        acks="all",
        key_serializer=lambda k: k.encode(),
        value_serializer=lambda v: json.dumps(v, sort_keys=True).encode(),
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        max_block_ms=REQUEST_TIMEOUT_MS,
        **kw,
    )


def consumer(addr, *topics, **kw):
    return KafkaConsumer(
        *topics,
        bootstrap_servers=addr,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        key_deserializer=lambda k: k.decode() if k is not None else None,
        value_deserializer=lambda v: json.loads(v),
        request_timeout_ms=REQUEST_TIMEOUT_MS + 5_000,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        **kw,
    )


def admin(addr):
    return KafkaAdminClient(bootstrap_servers=addr, request_timeout_ms=REQUEST_TIMEOUT_MS)


def create_topic(addr, name, partitions, configs=None):
    a = admin(addr)
    try:
        a.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1, topic_configs=configs or {})]
        )
    finally:
        a.close()


def produce_keyed(addr, topic, start, count, compression="none", **kw):
    """Sends `count` keyed JSON records; returns [(key, value, partition, offset)] in send order."""
    p = producer(addr, compression_type=None if compression == "none" else compression, **kw)
    try:
        futures = []
        for i in range(start, start + count):
            key = f"k{i % 7}"
            value = {"i": i, "key": key, "payload": "x" * (i % 50)}
            futures.append((key, value, p.send(topic, key=key, value=value)))
        p.flush(timeout=CONSUME_TIMEOUT_S)
        out = []
        for key, value, f in futures:
            md = f.get(timeout=CONSUME_TIMEOUT_S)
            assert md.topic == topic
            out.append((key, value, md.partition, md.offset))
        return out
    finally:
        p.close(timeout=10)


def consume_n(c, n, timeout_s=CONSUME_TIMEOUT_S):
    """Polls until `n` records arrived (or fails after `timeout_s`); returns them in order."""
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=500).values():
            got.extend(records)
    assert len(got) >= n, f"consumed {len(got)} of {n} records within {timeout_s}s"
    return got


def check_records(sent, got):
    """Every record arrived once, with its key and value, in offset order per partition."""
    assert len(got) == len(sent)
    expected = {(s[2], s[3]): s for s in sent}
    per_partition = defaultdict(list)
    for r in got:
        key, value, _, _ = expected[(r.partition, r.offset)]
        assert r.key == key
        assert r.value == value
        per_partition[r.partition].append(r)
    for partition, records in per_partition.items():
        offsets = [r.offset for r in records]
        assert offsets == sorted(offsets), f"partition {partition} out of order"
        sent_order = [s[1]["i"] for s in sent if s[2] == partition]
        assert [r.value["i"] for r in records] == sent_order


@pytest.mark.parametrize("compression", CODECS)
def test_produce_consume_roundtrip(broker, topic_name, compression):
    sent = produce_keyed(broker, topic_name, 0, N, compression=compression, linger_ms=5)
    # Auto-created with the broker's default of one partition: offsets 0..N-1 in send order.
    assert [s[3] for s in sent] == list(range(N))
    c = consumer(broker, topic_name, group_id=f"g-{topic_name}")
    try:
        got = consume_n(c, N)
        check_records(sent, got)
    finally:
        c.close()


def test_group_commit_and_resume(broker, topic_name):
    group = f"g-{topic_name}"
    first = produce_keyed(broker, topic_name, 0, N)
    c = consumer(broker, topic_name, group_id=group)
    try:
        check_records(first, consume_n(c, N))
        c.commit()
        tp = TopicPartition(topic_name, 0)
        assert c.committed(tp) == N
    finally:
        c.close()

    second = produce_keyed(broker, topic_name, N, 50)
    c = consumer(broker, topic_name, group_id=group)
    try:
        got = consume_n(c, 50)
        # Resumes exactly after the committed offset: nothing from the first batch again.
        assert got[0].offset == N
        check_records(second, got)
        assert c.committed(TopicPartition(topic_name, 0)) == N
        # Nothing more arrives.
        extra = [r for rs in c.poll(timeout_ms=1000).values() for r in rs]
        assert extra == []
    finally:
        c.close()


def test_multi_partition_topic(broker, topic_name):
    create_topic(broker, topic_name, 3)
    sent = produce_keyed(broker, topic_name, 0, N)
    partitions = {s[2] for s in sent}
    assert partitions <= {0, 1, 2}
    assert len(partitions) > 1, "7 keys over 3 partitions should use more than one"
    # The default partitioner hashes keys: one key, one partition.
    by_key = defaultdict(set)
    for key, _, partition, _ in sent:
        by_key[key].add(partition)
    assert all(len(ps) == 1 for ps in by_key.values())
    c = consumer(broker, topic_name, group_id=f"g-{topic_name}")
    try:
        check_records(sent, consume_n(c, N))
        assert c.partitions_for_topic(topic_name) == {0, 1, 2}
    finally:
        c.close()


def describe_topic_configs(a, topic):
    """{name: value} of a topic's configs, across kafka-python 2.x and 3.x result shapes."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    try:
        res = a.describe_configs([resource], config_filter="all")  # kafka-python 3.x
    except TypeError:
        res = a.describe_configs([resource])  # kafka-python 2.x
    if isinstance(res, dict):
        return {k: v.get("value") for k, v in res["topic"][topic].items()}
    out = {}
    for response in res:
        for r in response.resources:
            # (error_code, error_message, resource_type, resource_name, config_entries)
            assert r[0] == 0, f"describe_configs error {r}"
            for entry in r[4]:
                out[entry[0]] = entry[1]
    return out


def test_admin_client(broker, topic_name):
    a = admin(broker)
    try:
        a.create_topics(
            [
                NewTopic(
                    name=topic_name,
                    num_partitions=2,
                    replication_factor=1,
                    topic_configs={"retention.ms": "3600000"},
                )
            ]
        )
        wait_until(lambda: topic_name in a.list_topics(), what="the new topic in list_topics")
        configs = describe_topic_configs(a, topic_name)
        assert configs.get("retention.ms") == "3600000", configs
        described = a.describe_topics([topic_name])
        assert len(described) == 1 and len(described[0]["partitions"]) == 2

        # Creating it again fails with TopicAlreadyExists.
        from kafka.errors import TopicAlreadyExistsError

        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(name=topic_name, num_partitions=1, replication_factor=1)])

        a.delete_topics([topic_name])
        wait_until(lambda: topic_name not in a.list_topics(), what="the topic gone from list_topics")
    finally:
        a.close()


TS_BASE = 1_700_000_000_000


def produce_with_timestamps(addr, topic, count):
    """Records i = 0..count-1 with timestamp TS_BASE + i*1000 ms, to partition 0."""
    p = KafkaProducer(bootstrap_servers=addr, acks="all", request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        futures = [
            p.send(topic, value=f"v{i}".encode(), partition=0, timestamp_ms=TS_BASE + i * 1000)
            for i in range(count)
        ]
        p.flush(timeout=CONSUME_TIMEOUT_S)
        return [f.get(timeout=CONSUME_TIMEOUT_S).offset for f in futures]
    finally:
        p.close(timeout=10)


def test_timestamps_and_offsets_for_times(broker, topic_name):
    create_topic(broker, topic_name, 1)
    offsets = produce_with_timestamps(broker, topic_name, 10)
    assert offsets == list(range(10))
    c = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False, request_timeout_ms=REQUEST_TIMEOUT_MS + 5_000)
    try:
        tp = TopicPartition(topic_name, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = consume_n(c, 10)
        assert [r.timestamp for r in got] == [TS_BASE + i * 1000 for i in range(10)]
        found = c.offsets_for_times({tp: TS_BASE + 3000})
        assert found[tp].offset == 3
        found = c.offsets_for_times({tp: TS_BASE + 3500})  # first record at or after it
        assert found[tp].offset == 4
        found = c.offsets_for_times({tp: TS_BASE + 100_000})  # after the last record
        assert found[tp] is None
        assert c.beginning_offsets([tp])[tp] == 0
        assert c.end_offsets([tp])[tp] == 10
    finally:
        c.close()


def read_to_end(addr, topic, partitions, isolation_level):
    """Every value of `topic` from the beginning to the end a consumer with `isolation_level`
    sees (its end offsets: the last stable offset under read_committed), sorted."""
    c = KafkaConsumer(
        bootstrap_servers=addr,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        got = []
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"positions {[c.position(tp) for tp in tps]} < {ends}"
            for records in c.poll(timeout_ms=200).values():
                got.extend(r.value.decode() for r in records)
        return sorted(got)
    finally:
        c.close()


def test_transactional_producer(broker, topic_name):
    """kafka-python's transactional producer (the seed's library): a committed transaction
    is seen by read_committed, an aborted one only by read_uncommitted."""
    create_topic(broker, topic_name, 2)
    p = KafkaProducer(
        bootstrap_servers=broker,
        transactional_id=f"py-{topic_name}",
        acks="all",
        enable_idempotence=True,
    )
    try:
        p.init_transactions()
        p.begin_transaction()
        for i in range(10):
            p.send(topic_name, value=f"c-{i}".encode(), partition=i % 2)
        p.commit_transaction()
        p.begin_transaction()
        for i in range(5):
            p.send(topic_name, value=f"a-{i}".encode(), partition=i % 2)
        p.flush(timeout=CONSUME_TIMEOUT_S)
        p.abort_transaction()
    finally:
        p.close(timeout=10)
    committed = sorted(f"c-{i}" for i in range(10))
    assert read_to_end(broker, topic_name, 2, "read_committed") == committed
    everything = sorted(committed + [f"a-{i}" for i in range(5)])
    assert read_to_end(broker, topic_name, 2, "read_uncommitted") == everything
