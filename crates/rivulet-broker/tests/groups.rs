//! Consumer groups with real librdkafka consumers: three members join one after another, one
//! leaves, rebalances (eager `range` and `cooperative-sticky`) hand partitions around, and with
//! manual commits every message is processed exactly once across the group. Then the broker is
//! shut down and restarted, and a new member resumes exactly at the committed offsets.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;

/// Everything the group test observes, shared by all members.
#[derive(Default)]
struct Observed {
    /// (member, partition, offset, value) for every processed message.
    processed: Vec<(usize, i32, i64, String)>,
    /// Rebalance events: (member, "assign"/"revoke", partitions).
    events: Vec<(usize, &'static str, Vec<i32>)>,
    /// Current assignment per member.
    assignment: BTreeMap<usize, BTreeSet<i32>>,
    /// Commit failures (a failed commit can legitimately cause redelivery; reported).
    commit_errors: Vec<String>,
    /// Consumer errors returned by poll.
    poll_errors: Vec<String>,
}

struct MemberCtx {
    id: usize,
    topic: String,
    obs: Arc<Mutex<Observed>>,
    /// Next offset to commit per partition: processed but not yet committed.
    pending: Mutex<BTreeMap<i32, i64>>,
}

impl MemberCtx {
    fn commit_pending(&self, consumer: &BaseConsumer<MemberCtx>) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap());
        if pending.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &pending {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o))
                .unwrap();
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
            // Kafka may refuse commits while a rebalance completes (REBALANCE_IN_PROGRESS):
            // keep the offsets so the next commit (at the latest the one on revoke) carries them.
            self.obs
                .lock()
                .unwrap()
                .commit_errors
                .push(format!("member {}: commit {pending:?}: {e}", self.id));
            let mut cur = self.pending.lock().unwrap();
            for (p, o) in pending {
                let e = cur.entry(p).or_insert(o);
                *e = (*e).max(o);
            }
        }
    }
}

impl ClientContext for MemberCtx {}

impl ConsumerContext for MemberCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Commit what was processed before giving partitions away (as a Java
        // onPartitionsRevoked would), so the next owner starts right after it.
        if let Rebalance::Revoke(_) = rebalance {
            self.commit_pending(consumer);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut obs = self.obs.lock().unwrap();
        let (kind, tpl) = match rebalance {
            Rebalance::Assign(tpl) => ("assign", *tpl),
            Rebalance::Revoke(tpl) => ("revoke", *tpl),
            Rebalance::Error(e) => {
                obs.poll_errors
                    .push(format!("member {}: rebalance error {e}", self.id));
                return;
            }
        };
        let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let cur = obs.assignment.entry(self.id).or_default();
        for p in &parts {
            if kind == "assign" {
                cur.insert(*p);
            } else {
                cur.remove(p);
            }
        }
        obs.events.push((self.id, kind, parts));
    }
}

struct Member {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn group_consumer_config(bootstrap: &str, group: &str, strategy: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("partition.assignment.strategy", strategy)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "300")
        .set("max.poll.interval.ms", "60000")
        .set("fetch.wait.max.ms", "100")
        .set("coordinator.query.interval.ms", "1000");
    c
}

/// Starts a member thread: poll, process (record), then commit after each drained batch.
fn start_member(
    id: usize,
    bootstrap: &str,
    group: &str,
    strategy: &str,
    topic: &str,
    obs: Arc<Mutex<Observed>>,
) -> Member {
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = MemberCtx {
        id,
        topic: topic.to_string(),
        obs: obs.clone(),
        pending: Mutex::new(BTreeMap::new()),
    };
    let consumer: BaseConsumer<MemberCtx> = group_consumer_config(bootstrap, group, strategy)
        .set("client.id", format!("member-{id}"))
        .create_with_context(ctx)
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let hard_deadline = Instant::now() + Duration::from_secs(180);
        while !s.load(Ordering::SeqCst) && Instant::now() < hard_deadline {
            // Drain up to 100 messages, then commit them.
            let mut n = 0;
            let mut timeout = Duration::from_millis(100);
            while n < 100 {
                match consumer.poll(timeout) {
                    None => break,
                    Some(Ok(m)) => {
                        let v = m
                            .payload()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .unwrap_or_default();
                        obs.lock()
                            .unwrap()
                            .processed
                            .push((id, m.partition(), m.offset(), v));
                        consumer
                            .context()
                            .pending
                            .lock()
                            .unwrap()
                            .insert(m.partition(), m.offset() + 1);
                        n += 1;
                    }
                    Some(Err(e)) => obs
                        .lock()
                        .unwrap()
                        .poll_errors
                        .push(format!("member {id}: {e}")),
                }
                timeout = Duration::from_millis(0);
            }
            consumer.context().commit_pending(&consumer);
        }
        // Leave: commit what was processed, then close (LeaveGroup) when dropped.
        consumer.context().commit_pending(&consumer);
        drop(consumer);
    });
    Member { stop, thread }
}

fn stop_member(m: Member) {
    m.stop.store(true, Ordering::SeqCst);
    m.thread.join().expect("member thread panicked");
}

async fn produce_range(p: &FutureProducer, topic: &str, range: std::ops::Range<usize>) {
    let mut futs = vec![];
    for i in range {
        let v = i.to_string();
        let part = (i % PARTITIONS as usize) as i32;
        let f = p
            .send_result(
                FutureRecord::<str, str>::to(topic)
                    .key(&v)
                    .payload(&v)
                    .partition(part),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        futs.push(f);
    }
    for f in futs {
        tokio::time::timeout(WAIT, f)
            .await
            .expect("delivery timed out")
            .expect("canceled")
            .map_err(|(e, _)| e)
            .expect("delivery failed");
    }
}

/// Waits until the current assignments are exactly `sizes` (member -> partition count), disjoint
/// and covering all partitions.
async fn wait_assignment(obs: &Arc<Mutex<Observed>>, sizes: &[(usize, usize)], what: &str) {
    let o = obs.clone();
    let want: BTreeMap<usize, usize> = sizes.iter().copied().collect();
    let ok = wait_until(move || {
        let obs = o.lock().unwrap();
        let mut all = BTreeSet::new();
        let mut total = 0;
        for (m, n) in &want {
            let a = obs.assignment.get(m).cloned().unwrap_or_default();
            if a.len() != *n {
                return false;
            }
            total += a.len();
            all.extend(a);
        }
        let others_empty = obs
            .assignment
            .iter()
            .all(|(m, a)| want.contains_key(m) || a.is_empty());
        total == PARTITIONS as usize && all.len() == PARTITIONS as usize && others_empty
    })
    .await;
    let obs = obs.lock().unwrap();
    assert!(
        ok,
        "{what}: assignment never became {sizes:?}; now {:?}; events {:?}; errors {:?} {:?}",
        obs.assignment, obs.events, obs.poll_errors, obs.commit_errors
    );
}

async fn wait_processed(obs: &Arc<Mutex<Observed>>, n: usize, what: &str) {
    let o = obs.clone();
    let ok = wait_until(move || o.lock().unwrap().processed.len() >= n).await;
    let obs = obs.lock().unwrap();
    assert!(
        ok,
        "{what}: processed {} of {n}; assignment {:?}; events {:?}; errors {:?} {:?}",
        obs.processed.len(),
        obs.assignment,
        obs.events,
        obs.poll_errors,
        obs.commit_errors
    );
}

async fn group_rebalance_exactly_once_and_resume(strategy: &str) {
    let mut broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap();
    let topic = format!("grp-{strategy}");
    let group = format!("group-{strategy}");
    create_topic(&bootstrap, &topic, PARTITIONS, &[]).await;
    let p = producer(&bootstrap);
    let obs = Arc::new(Mutex::new(Observed::default()));

    // Member 0 alone gets all six partitions.
    produce_range(&p, &topic, 0..300).await;
    let m0 = start_member(0, &bootstrap, &group, strategy, &topic, obs.clone());
    wait_assignment(&obs, &[(0, 6)], "one member").await;
    wait_processed(&obs, 100, "member 0 consuming").await;

    // Member 1 joins while data flows.
    let m1 = start_member(1, &bootstrap, &group, strategy, &topic, obs.clone());
    produce_range(&p, &topic, 300..600).await;
    wait_assignment(&obs, &[(0, 3), (1, 3)], "two members").await;

    // Member 2 joins.
    let m2 = start_member(2, &bootstrap, &group, strategy, &topic, obs.clone());
    produce_range(&p, &topic, 600..900).await;
    wait_assignment(&obs, &[(0, 2), (1, 2), (2, 2)], "three members").await;
    produce_range(&p, &topic, 900..1200).await;
    wait_processed(&obs, 1100, "three members consuming").await;

    // Member 2 leaves; its partitions move to the others.
    stop_member(m2);
    produce_range(&p, &topic, 1200..1500).await;
    wait_assignment(&obs, &[(0, 3), (1, 3)], "after member 2 left").await;
    wait_processed(&obs, 1500, "all 1500 consumed").await;

    eprintln!(
        "{strategy}: rebalance events {:?}",
        obs.lock().unwrap().events
    );
    // Events up to here (the final stops revoke everything, by design).
    let events_before_stop = obs.lock().unwrap().events.clone();
    // Let the final commits land, then stop everyone.
    stop_member(m0);
    stop_member(m1);

    {
        let obs = obs.lock().unwrap();
        // Exactly once across the group.
        let mut seen: BTreeMap<(i32, i64), Vec<usize>> = BTreeMap::new();
        for (m, part, off, v) in &obs.processed {
            let i: usize = v.parse().unwrap();
            assert_eq!(
                i % PARTITIONS as usize,
                *part as usize,
                "value {i} on partition {part}"
            );
            assert_eq!(
                i / PARTITIONS as usize,
                *off as usize,
                "value {i} at offset {off}"
            );
            seen.entry((*part, *off)).or_default().push(*m);
        }
        let dups: Vec<_> = seen.iter().filter(|(_, ms)| ms.len() > 1).collect();
        assert!(
            dups.is_empty(),
            "{strategy}: {} messages processed more than once, e.g. {:?}; commit errors {:?}; events {:?}",
            dups.len(),
            &dups[..dups.len().min(10)],
            obs.commit_errors,
            obs.events
        );
        assert_eq!(seen.len(), 1500, "{strategy}: every message processed");
        if !obs.commit_errors.is_empty() {
            eprintln!(
                "{strategy}: commit errors (retried): {:?}",
                obs.commit_errors
            );
        }
        // Rebalances really happened and were seen by the members.
        let assigns_of = |m: usize| {
            obs.events
                .iter()
                .filter(|e| e.0 == m && e.1 == "assign")
                .count()
        };
        assert!(
            assigns_of(0) >= 3,
            "member 0 should see >= 3 assignments: {:?}",
            obs.events
        );
        assert!(
            assigns_of(1) >= 2,
            "member 1 should see >= 2 assignments: {:?}",
            obs.events
        );
        if strategy == "cooperative-sticky" {
            // Cooperative: when member 2 left, members 0 and 1 kept their partitions; nobody
            // lost a partition except through an incremental revoke of what moved.
            let revokes_all = events_before_stop
                .iter()
                .filter(|e| e.1 == "revoke" && e.2.len() == PARTITIONS as usize)
                .count();
            assert_eq!(
                revokes_all, 0,
                "cooperative rebalance revoked everything: {events_before_stop:?}"
            );
        }
    }

    // Check the committed offsets are the end of every partition.
    let b = bootstrap.clone();
    let (g, t) = (group.clone(), topic.clone());
    let committed = blocking(move || group_offsets(&b, &g, &t)).await;
    assert_eq!(
        committed,
        vec![250; PARTITIONS as usize],
        "committed offsets before restart"
    );

    // More data after the commit point, then a clean restart.
    produce_range(&p, &topic, 1500..1560).await;
    drop(p);
    broker.restart().await;

    let b = bootstrap.clone();
    let (g, t) = (group.clone(), topic.clone());
    let committed = blocking(move || group_offsets(&b, &g, &t)).await;
    assert_eq!(
        committed,
        vec![250; PARTITIONS as usize],
        "committed offsets after restart"
    );

    // A new member resumes at the committed offsets: it sees only 1500..1560.
    let obs2 = Arc::new(Mutex::new(Observed::default()));
    let m = start_member(10, &bootstrap, &group, strategy, &topic, obs2.clone());
    wait_processed(&obs2, 60, "resumed member").await;
    // Give it a moment to (wrongly) receive anything older; bounded.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_member(m);
    {
        let obs2 = obs2.lock().unwrap();
        let mut vals: Vec<usize> = obs2
            .processed
            .iter()
            .map(|x| x.3.parse().unwrap())
            .collect();
        vals.sort_unstable();
        assert_eq!(
            vals,
            (1500..1560).collect::<Vec<_>>(),
            "resumed member must consume exactly the new messages"
        );
        for (_, part, off, _) in &obs2.processed {
            assert!(
                *off >= 250,
                "partition {part}: re-consumed offset {off} below the commit point"
            );
        }
    }
    broker.shutdown().await;
}

/// Committed offsets of `group` for every partition of `topic` (OffsetFetch), -1001 if none.
fn group_offsets(bootstrap: &str, group: &str, topic: &str) -> Vec<i64> {
    committed_offsets(bootstrap, group, topic, PARTITIONS)
        .into_iter()
        .map(|o| match o {
            Offset::Offset(o) => o,
            other => other.to_raw().unwrap_or(-1),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_range_eager_rebalance_exactly_once_and_resume_after_restart() {
    group_rebalance_exactly_once_and_resume("range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_cooperative_sticky_rebalance_exactly_once_and_resume_after_restart() {
    group_rebalance_exactly_once_and_resume("cooperative-sticky").await;
}
