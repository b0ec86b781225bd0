//! The coordinator's state machine without a broker: fencing, epochs, the order of operations,
//! timeouts, and the state file across a restart.
#![allow(clippy::unwrap_used)]

use super::*;

fn coordinator(dir: &Path) -> TxnCoordinator {
    TxnCoordinator::open(dir, TxnConfig::default(), true, Arc::default()).unwrap()
}

fn counter() -> impl Fn() -> Result<i64, TxnError> {
    let next = std::sync::atomic::AtomicI64::new(1000);
    move || Ok(next.fetch_add(1, Ordering::Relaxed))
}

fn ready(step: Result<InitStep, TxnError>) -> (i64, i16) {
    match step.unwrap() {
        InitStep::Ready(p, e) => (p, e),
        InitStep::Abort(_) => panic!("unexpected abort"),
    }
}

const ANY: &dyn Fn(&str, i32) -> bool = &|_, _| true;

#[test]
fn epochs_bump_and_fence_older_producers() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator(dir.path());
    let alloc = counter();
    let (pid, e0) = ready(c.init_producer("t", 60_000, (-1, -1), &alloc, 1));
    assert_eq!(e0, 0);
    let (pid2, e1) = ready(c.init_producer("t", 60_000, (-1, -1), &alloc, 2));
    assert_eq!((pid2, e1), (pid, 1));
    // The older epoch is fenced everywhere.
    let err = c
        .add_partitions("t", pid, 0, &[("a".into(), 0)], ANY, 3)
        .unwrap_err();
    assert_eq!(err.0, ResponseError::ProducerFenced);
    assert_eq!(
        code_for(err.0, 1, 2),
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(code_for(err.0, 2, 2), ResponseError::ProducerFenced.code());
    assert_eq!(
        c.end("t", pid, 0, true, 3).unwrap_err().0,
        ResponseError::ProducerFenced
    );
    // Another producer id for this transactional id.
    assert_eq!(
        c.add_offsets("t", pid + 7, 1, "g", 3).unwrap_err().0,
        ResponseError::InvalidProducerIdMapping
    );
    // KIP-360: a client that knows its id and epoch bumps it; a stale one is fenced.
    assert_eq!(
        ready(c.init_producer("t", 60_000, (pid, 1), &alloc, 4)),
        (pid, 2)
    );
    assert_eq!(
        c.init_producer("t", 60_000, (pid, 0), &alloc, 5)
            .err()
            .unwrap()
            .0,
        ResponseError::ProducerFenced
    );
    // Timeouts beyond transaction.max.timeout.ms are refused.
    assert_eq!(
        c.init_producer("u", 900_001, (-1, -1), &alloc, 6)
            .err()
            .unwrap()
            .0,
        ResponseError::InvalidTransactionTimeout
    );
}

#[test]
fn operations_out_of_order_get_kafkas_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator(dir.path());
    let alloc = counter();
    assert_eq!(
        c.end("nobody", 1, 0, true, 1).unwrap_err().0,
        ResponseError::InvalidProducerIdMapping
    );
    let (pid, e) = ready(c.init_producer("t", 60_000, (-1, -1), &alloc, 1));
    // Commit with nothing added: INVALID_TXN_STATE; abort of nothing is fine.
    assert_eq!(
        c.end("t", pid, e, true, 2).unwrap_err().0,
        ResponseError::InvalidTxnState
    );
    assert!(c.end("t", pid, e, false, 2).unwrap().is_none());
    // Offsets outside a transaction.
    let offset = PendingOffset {
        group: "g".into(),
        topic: "a".into(),
        partition: 0,
        offset: 5,
        leader_epoch: -1,
        metadata: String::new(),
    };
    assert_eq!(
        c.txn_offset_commit("t", pid, e, vec![offset.clone()], 3)
            .unwrap_err()
            .0,
        ResponseError::InvalidTxnState
    );
    // Unknown partitions: none added.
    let codes = c
        .add_partitions(
            "t",
            pid,
            e,
            &[("a".into(), 0), ("zz".into(), 0)],
            &|t, _| t == "a",
            4,
        )
        .unwrap();
    assert_eq!(
        codes,
        vec![
            ResponseError::OperationNotAttempted.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
    assert_eq!(c.snapshot()["t"].state, TxnState::Empty);
    // The normal order, then a retried commit is answered OK, a late abort is not.
    c.add_partitions("t", pid, e, &[("a".into(), 0)], ANY, 5)
        .unwrap();
    c.txn_offset_commit("t", pid, e, vec![offset], 6).unwrap();
    assert!(c.has_pending_offset("g", "a", 0));
    let ending = c.end("t", pid, e, true, 7).unwrap().unwrap();
    assert_eq!(ending.partitions, vec![("a".to_string(), 0)]);
    assert_eq!(ending.offsets.len(), 1);
    // While the markers are written, the producer must wait.
    assert_eq!(
        c.add_partitions("t", pid, e, &[("a".into(), 0)], ANY, 8)
            .unwrap_err()
            .0,
        ResponseError::ConcurrentTransactions
    );
    assert!(c.complete(&ending, 9).unwrap());
    assert!(!c.has_pending_offset("g", "a", 0));
    assert!(c.end("t", pid, e, true, 10).unwrap().is_none());
    assert_eq!(
        c.end("t", pid, e, false, 10).unwrap_err().0,
        ResponseError::InvalidTxnState
    );
}

#[test]
fn produce_is_checked_against_the_ongoing_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator(dir.path());
    let alloc = counter();
    let (pid, e) = ready(c.init_producer("t", 60_000, (-1, -1), &alloc, 1));
    assert_eq!(
        c.check_produce(pid, e, "a", 0).unwrap_err().0,
        ResponseError::InvalidTxnState
    );
    c.add_partitions("t", pid, e, &[("a".into(), 0)], ANY, 2)
        .unwrap();
    c.check_produce(pid, e, "a", 0).unwrap();
    assert_eq!(
        c.check_produce(pid, e, "a", 1).unwrap_err().0,
        ResponseError::InvalidTxnState
    );
    assert_eq!(
        c.check_produce(pid + 1, 0, "a", 0).unwrap_err().0,
        ResponseError::InvalidProducerIdMapping
    );
    // A new producer with the same id: the open transaction is aborted with a bumped epoch.
    let step = c.init_producer("t", 60_000, (-1, -1), &alloc, 3).unwrap();
    let InitStep::Abort(ending) = step else {
        panic!("expected an abort")
    };
    assert_eq!((ending.epoch, ending.commit), (e + 1, false));
    assert_eq!(
        c.check_produce(pid, e, "a", 0).unwrap_err().0,
        ResponseError::InvalidProducerEpoch
    );
    c.complete(&ending, 4).unwrap();
    assert_eq!(
        ready(c.init_producer("t", 60_000, (-1, -1), &alloc, 5)),
        (pid, e + 2)
    );
}

#[test]
fn transactional_ids_and_partitions_per_transaction_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = TxnConfig {
        max_transactional_ids: 2,
        max_partitions_per_txn: 3,
        ..TxnConfig::default()
    };
    let c = TxnCoordinator::open(dir.path(), config, true, Arc::default()).unwrap();
    let alloc = counter();
    let (pid, e) = ready(c.init_producer("a", 60_000, (-1, -1), &alloc, 1));
    ready(c.init_producer("b", 60_000, (-1, -1), &alloc, 1));
    assert_eq!(
        c.init_producer("c", 60_000, (-1, -1), &alloc, 1)
            .err()
            .unwrap()
            .0,
        ResponseError::PolicyViolation
    );
    // An existing id is still served.
    ready(c.init_producer("a", 60_000, (pid, e), &alloc, 2));
    let e = e + 1;
    let parts: Vec<(String, i32)> = (0..3).map(|p| ("t".to_string(), p)).collect();
    c.add_partitions("a", pid, e, &parts, ANY, 3).unwrap();
    let refused = c
        .add_partitions("a", pid, e, &[("t".into(), 9)], ANY, 4)
        .unwrap_err();
    assert_eq!(refused.0, ResponseError::PolicyViolation);
    // Nothing of the refused request stayed.
    assert_eq!(c.snapshot()["a"].partitions.len(), 3);
}

#[test]
fn timeouts_abort_and_the_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let alloc = counter();
    let (pid, e) = {
        let c = coordinator(dir.path());
        let (pid, e) = ready(c.init_producer("slow", 1_000, (-1, -1), &alloc, 0));
        c.add_partitions("slow", pid, e, &[("a".into(), 0)], ANY, 10)
            .unwrap();
        let (p2, e2) = ready(c.init_producer("fast", 60_000, (-1, -1), &alloc, 0));
        c.add_partitions("fast", p2, e2, &[("b".into(), 1)], ANY, 10)
            .unwrap();
        assert!(c.expire(500).is_empty());
        let expired = c.expire(1_011);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].transactional_id, "slow");
        assert_eq!(expired[0].epoch, e + 1);
        (pid, e)
    };
    // Reopened with "slow" in PrepareAbort and "fast" Ongoing: both end in an abort.
    let c = coordinator(dir.path());
    let mut endings = c.recover(2_000).unwrap();
    endings.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    assert_eq!(endings.len(), 2);
    assert!(endings.iter().all(|e| !e.commit));
    assert_eq!(endings[0].partitions, vec![("b".to_string(), 1)]);
    for ending in &endings {
        assert!(c.complete(ending, 2_001).unwrap());
    }
    // The producer fenced by the timeout may still abort (a retry with its old epoch).
    assert!(c.end("slow", pid, e, false, 2_002).unwrap().is_none());
    assert_eq!(
        c.end("slow", pid, e, true, 2_002).unwrap_err().0,
        ResponseError::ProducerFenced
    );
    let states: Vec<_> = c.snapshot().values().map(|m| m.state).collect();
    assert_eq!(
        states,
        vec![TxnState::CompleteAbort, TxnState::CompleteAbort]
    );
}
