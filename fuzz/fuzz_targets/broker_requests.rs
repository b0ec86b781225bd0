//! Feeds arbitrary bytes to a running broker as one request frame, through the whole handler
//! path (not only the decoder), with a small data directory and small limits. Checks that the
//! request is answered or its connection closed within a bound (70 s: a long-poll may wait up
//! to the broker's 60 s cap), and that a fresh client is then answered within a second.
//! `crates/rivulet-broker/tests/fuzz_handlers.rs` is the proptest version that runs in the
//! normal test suite. Run with `cargo +nightly fuzz run broker_requests` from the repository
//! root.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Running {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    _handle: rivulet_broker::BrokerHandle,
}

/// ApiVersions v0, correlation id 0x7fff0001, null client id: sent behind every input.
const MARKER: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0x7f, 0xff, 0, 1, 0xff, 0xff];

fn broker() -> &'static Running {
    static BROKER: OnceLock<Running> = OnceLock::new();
    BROKER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let (addr, handle) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let c = rivulet_broker::BrokerConfig::new(dir.path(), "127.0.0.1", addr.port())
                .with_small_limits();
            let handle = rivulet_broker::start(c, vec![listener]).await.expect("start");
            (addr, handle)
        });
        Running {
            rt,
            addr,
            _dir: dir,
            _handle: handle,
        }
    })
}

/// Reads frames until the marker's answer (true) or the end of the connection (true too:
/// closing is an answer); only a timeout outside fails.
async fn answered_or_closed(s: &mut TcpStream) {
    loop {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(len).min(64 << 20) as usize;
        let mut body = vec![0u8; len];
        if s.read_exact(&mut body).await.is_err() {
            return;
        }
        if body.get(..4) == Some(&MARKER[8..12]) {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let b = broker();
    b.rt.block_on(async {
        let mut s = TcpStream::connect(b.addr).await.expect("connect");
        let mut frame = (data.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(data);
        frame.extend_from_slice(&MARKER);
        let done = tokio::time::timeout(Duration::from_secs(70), async {
            if s.write_all(&frame).await.is_ok() {
                answered_or_closed(&mut s).await;
            }
        })
        .await;
        assert!(done.is_ok(), "request neither answered nor closed in time");
        let lively = tokio::time::timeout(Duration::from_secs(1), async {
            let mut c = TcpStream::connect(b.addr).await.expect("connect");
            c.write_all(&MARKER).await.expect("write");
            let mut len = [0u8; 4];
            c.read_exact(&mut len).await.expect("answer");
        })
        .await;
        assert!(lively.is_ok(), "a fresh client was not answered within a second");
    });
});
