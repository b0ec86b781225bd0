//! Broker limits and modes not covered elsewhere: the connection cap, and the relaxed
//! (interval) fsync policy.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::raw::{call, closed_by_peer, connect};
use common::*;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use rdkafka::producer::FutureRecord;
use rivulet_broker::FsyncPolicy;

fn two_connections(c: &mut rivulet_broker::BrokerConfig) {
    c.max_connections = 2;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_the_rest_keep_working() {
    let broker = TestBroker::start_with(two_connections).await;
    let addr = broker.bootstrap();
    let mut a = connect(&addr).await;
    let mut b = connect(&addr).await;
    // Both admitted connections are served.
    for (i, s) in [&mut a, &mut b].into_iter().enumerate() {
        let r: ApiVersionsResponse = call(
            s,
            ApiKey::ApiVersions,
            3,
            i as i32,
            &ApiVersionsRequest::default(),
        )
        .await;
        assert_eq!(r.error_code, 0);
    }
    // The third is closed by the broker straight away.
    let mut c = connect(&addr).await;
    assert!(
        closed_by_peer(&mut c).await,
        "third connection should be refused"
    );
    let stats = &broker.handle.as_ref().unwrap().broker().stats;
    assert!(
        stats
            .connections_rejected
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // Closing one frees a slot for a new connection.
    drop(a);
    let mut served = false;
    for attempt in 0..50 {
        let mut d = connect(&addr).await;
        let f = common::raw::frame(
            ApiKey::ApiVersions,
            3,
            attempt,
            &ApiVersionsRequest::default(),
        );
        use tokio::io::AsyncWriteExt;
        if d.write_all(&f).await.is_ok()
            && tokio::time::timeout(Duration::from_secs(2), common::raw::read_frame(&mut d))
                .await
                .is_ok_and(|r| r.is_ok())
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "a slot should free up after a connection closes");
    let r: ApiVersionsResponse = call(
        &mut b,
        ApiKey::ApiVersions,
        3,
        99,
        &ApiVersionsRequest::default(),
    )
    .await;
    assert_eq!(r.error_code, 0, "admitted connection still served");
}

fn interval_fsync(c: &mut rivulet_broker::BrokerConfig) {
    c.fsync = FsyncPolicy::Interval(Duration::from_millis(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interval_fsync_mode_round_trips_and_survives_clean_restart() {
    let mut broker = TestBroker::start_with(interval_fsync).await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "relaxed", 1, &[]).await;
    let producer = producer(&bootstrap);
    for i in 0..200 {
        let payload = format!("v{i}");
        producer
            .send(
                FutureRecord::to("relaxed").key("k").payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }
    let msgs = read_all(&bootstrap, "relaxed", 0).await;
    assert_eq!(msgs.len(), 200);
    assert_dense(&msgs, 0, "relaxed");
    broker.restart().await;
    let msgs = read_all(&broker.bootstrap(), "relaxed", 0).await;
    assert_eq!(msgs.len(), 200, "a clean shutdown flushes everything");
    assert_eq!(payload_str(&msgs[199]).as_deref(), Some("v199"));
}
