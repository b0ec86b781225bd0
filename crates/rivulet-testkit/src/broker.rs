//! The broker in this process: started on a listener bound to `127.0.0.1:0`, its data in a
//! temporary directory, restartable on the same port and data.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rivulet_broker::{BrokerConfig, BrokerHandle};
use tokio::net::TcpListener;

use crate::wait::WAIT;

type Configure = Arc<dyn Fn(&mut BrokerConfig) + Send + Sync>;

/// A broker running in this process, with its data in a temp dir that lives as long as this.
pub struct TestBroker {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// `None` after [`TestBroker::shutdown`].
    pub handle: Option<BrokerHandle>,
    configure: Configure,
}

/// The config every test starts from: a small initial rebalance delay, so group tests run
/// quickly.
pub fn base_config(dir: &Path, port: u16) -> BrokerConfig {
    let mut cfg = BrokerConfig::new(dir, "127.0.0.1", port);
    cfg.group.initial_rebalance_delay = Duration::from_millis(100);
    cfg
}

impl TestBroker {
    /// Starts a broker with [`base_config`].
    pub async fn start() -> TestBroker {
        TestBroker::start_with(|_| {}).await
    }

    /// Starts a broker whose auto-created topics have `partitions` partitions.
    pub async fn with_partitions(partitions: i32) -> TestBroker {
        TestBroker::start_with(move |c| c.default_partitions = partitions).await
    }

    /// Starts a broker, letting `configure` adjust [`base_config`] (applied again on restarts).
    pub async fn start_with(
        configure: impl Fn(&mut BrokerConfig) + Send + Sync + 'static,
    ) -> TestBroker {
        init_test_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let configure: Configure = Arc::new(configure);
        let mut cfg = base_config(dir.path(), port);
        configure(&mut cfg);
        let handle = tokio::time::timeout(WAIT, rivulet_broker::start(cfg, vec![listener]))
            .await
            .expect("broker start timed out")
            .expect("broker start failed");
        TestBroker {
            dir,
            port,
            handle: Some(handle),
            configure,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Graceful shutdown (clean-shutdown marker written), bounded.
    pub async fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(WAIT, h.shutdown())
                .await
                .expect("broker shutdown timed out")
                .expect("broker shutdown failed");
        }
    }

    /// Shuts down (if running) and starts again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        // The port was just released; binding it again may need a moment.
        let deadline = Instant::now() + WAIT;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot re-bind port {}: {e}",
                        self.port
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let mut cfg = base_config(self.dir.path(), self.port);
        (self.configure)(&mut cfg);
        let handle = tokio::time::timeout(WAIT, rivulet_broker::start(cfg, vec![listener]))
            .await
            .expect("broker restart timed out")
            .expect("broker restart failed");
        self.handle = Some(handle);
    }
}

/// Prints the broker's tracing events to stderr when `RIVULET_TEST_LOG` is set (a minimal
/// subscriber, so the kit needs no subscriber crate). Useful when a test fails.
pub fn init_test_tracing() {
    use std::fmt::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Printer(AtomicU64);
    struct Fields(String);
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, " {value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }
    impl tracing::Subscriber for Printer {
        fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
            *m.level() <= tracing::Level::DEBUG
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(self.0.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, e: &tracing::Event<'_>) {
            let mut f = Fields(String::new());
            e.record(&mut f);
            eprintln!(
                "[broker {} {}]{}",
                e.metadata().level(),
                e.metadata().target(),
                f.0
            );
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    if std::env::var_os("RIVULET_TEST_LOG").is_some() {
        let _ = tracing::subscriber::set_global_default(Printer(AtomicU64::new(0)));
    }
}
