//! Transactions with a real client (librdkafka through the rdkafka crate): commit and abort
//! over several partitions and topics, read_committed against read_uncommitted, an open
//! transaction invisible until it commits, offsets sent to a transaction, and fencing by a
//! second producer with the same transactional id.

#![allow(clippy::unwrap_used)]

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_testkit::*;

const T: std::time::Duration = TXN_TIMEOUT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_abort_over_several_partitions_and_topics() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "ta", 3, &[]).await;
    create_topic(&b, "tb", 2, &[]).await;
    let stats = broker.handle.as_ref().unwrap().stats();
    tokio::task::spawn_blocking(move || {
        use std::sync::atomic::Ordering::Relaxed;
        let targets = [("ta", 0), ("tb", 1), ("ta", 2), ("tb", 0), ("ta", 1)];
        let topics = [("ta", 3), ("tb", 2)];
        let p = transactional_producer(&b, "tx-commit-abort");
        p.init_transactions(T).expect("init_transactions");
        p.begin_transaction().unwrap();
        send_values(&p, &targets, &values("c1", 30));
        p.commit_transaction(T).expect("commit");
        p.begin_transaction().unwrap();
        send_values(&p, &targets, &values("ab", 20));
        p.abort_transaction(T).expect("abort");
        p.begin_transaction().unwrap();
        send_values(&p, &targets, &values("c2", 10));
        p.commit_transaction(T).expect("commit");
        let committed = sorted([values("c1", 30), values("c2", 10)].concat());
        assert_eq!(read_values(&b, &topics, "read_committed"), committed);
        let all = sorted([values("c1", 30), values("ab", 20), values("c2", 10)].concat());
        assert_eq!(read_values(&b, &topics, "read_uncommitted"), all);

        // An open transaction is invisible to read_committed until it commits, and holds
        // back what comes after it.
        p.begin_transaction().unwrap();
        send_values(&p, &targets, &values("open", 5));
        let plain = producer_config(&b).create::<BaseProducer>().unwrap();
        send_values(&plain, &[("ta", 0)], &values("plain", 3));
        assert_eq!(read_values(&b, &topics, "read_committed"), committed);
        assert_eq!(
            read_values(&b, &topics, "read_uncommitted").len(),
            60 + 5 + 3
        );
        assert_eq!(stats.transactions_open.load(Relaxed), 1);
        p.commit_transaction(T).expect("commit");
        assert_eq!(stats.transactions_open.load(Relaxed), 0);
        assert_eq!(stats.transactions_committed.load(Relaxed), 3);
        assert_eq!(stats.transactions_aborted.load(Relaxed), 1);
        let after = sorted([committed, values("open", 5), values("plain", 3)].concat());
        assert_eq!(read_values(&b, &topics, "read_committed"), after);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted() {
    let broker = TestBroker::start_with(|c| c.txn.abort_timed_out_interval_ms = 100).await;
    let b = broker.bootstrap();
    create_topic(&b, "slow", 1, &[]).await;
    let stats = broker.handle.as_ref().unwrap().stats();
    tokio::task::spawn_blocking(move || {
        let p = transactional_producer_config(&b, "tx-slow")
            .set("transaction.timeout.ms", "1000")
            .set("message.timeout.ms", "1000")
            .set("socket.timeout.ms", "1000")
            .create::<BaseProducer>()
            .unwrap();
        p.init_transactions(T).unwrap();
        p.begin_transaction().unwrap();
        send_values(&p, &[("slow", 0)], &values("stalled", 3));
        // The producer stalls past its timeout: the broker aborts (and fences it).
        let deadline = std::time::Instant::now() + WAIT;
        while stats
            .transactions_timed_out
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            assert!(std::time::Instant::now() < deadline, "never timed out");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let plain = producer_config(&b).create::<BaseProducer>().unwrap();
        send_values(&plain, &[("slow", 0)], &values("after", 2));
        assert_eq!(
            read_values(&b, &[("slow", 1)], "read_committed"),
            values("after", 2)
        );
        assert!(
            p.commit_transaction(T).is_err(),
            "a timed-out transaction committed"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_move_only_on_commit() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "in", 1, &[]).await;
    create_topic(&b, "out", 1, &[]).await;
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = group_consumer_config(&b, "eos-group").create().unwrap();
        let meta = consumer.group_metadata().expect("group metadata");
        let p = transactional_producer(&b, "tx-offsets");
        p.init_transactions(T).unwrap();
        let offsets = |at: i64| {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset("in", 0, Offset::Offset(at))
                .unwrap();
            tpl
        };
        p.begin_transaction().unwrap();
        send_values(&p, &[("out", 0)], &values("x", 2));
        p.send_offsets_to_transaction(&offsets(5), &meta, T)
            .expect("send offsets");
        p.abort_transaction(T).unwrap();
        assert_eq!(
            committed_offsets(&b, "eos-group", "in", 1),
            vec![Offset::Invalid]
        );
        p.begin_transaction().unwrap();
        send_values(&p, &[("out", 0)], &values("y", 2));
        p.send_offsets_to_transaction(&offsets(7), &meta, T)
            .expect("send offsets");
        p.commit_transaction(T).unwrap();
        assert_eq!(
            committed_offsets(&b, "eos-group", "in", 1),
            vec![Offset::Offset(7)]
        );
        assert_eq!(
            read_values(&b, &[("out", 1)], "read_committed"),
            values("y", 2)
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_id_fences_the_first() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "fenced", 2, &[]).await;
    tokio::task::spawn_blocking(move || {
        let targets = [("fenced", 0), ("fenced", 1)];
        let old = transactional_producer(&b, "tx-fence");
        old.init_transactions(T).unwrap();
        old.begin_transaction().unwrap();
        send_values(&old, &targets, &values("zombie", 6));
        // The new instance takes over: the zombie's open transaction is aborted.
        let new = transactional_producer(&b, "tx-fence");
        new.init_transactions(T).expect("second init_transactions");
        let err = old
            .commit_transaction(T)
            .expect_err("the fenced producer committed");
        let KafkaError::Transaction(err) = err else {
            panic!("not a transaction error: {err:?}")
        };
        assert!(
            // librdkafka raises its local `_FENCED` (or the broker's PRODUCER_FENCED).
            err.is_fatal() && err.name().contains("FENCED"),
            "{err:?}"
        );
        new.begin_transaction().unwrap();
        send_values(&new, &targets, &values("live", 4));
        new.commit_transaction(T).unwrap();
        assert_eq!(
            read_values(&b, &[("fenced", 2)], "read_committed"),
            values("live", 4)
        );
        assert_eq!(
            read_values(&b, &[("fenced", 2)], "read_uncommitted").len(),
            10
        );
    })
    .await
    .unwrap();
}
