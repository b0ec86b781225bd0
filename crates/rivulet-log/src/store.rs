//! The storage conformance suite, written once: every case is a generic function over a
//! [`conformance::Harness`] (how to open and reopen a partition's storage in a directory), and
//! `conformance_tests!` instantiates all of them as `#[test]`s for one harness. It runs against
//! [`PartitionLog`](crate::PartitionLog) with the default config and with tiny segments.

#[allow(clippy::unwrap_used)]
pub(crate) mod conformance {
    use std::path::Path;

    use kafka_protocol::records::Compression;

    use crate::error::LogError;
    use crate::partition::{AppendResult, PartitionLog};
    use crate::testutil::{batch, batch_full, headers};

    /// How to create and reopen the store under test in a directory.
    pub trait Harness {
        fn open(&self, dir: &Path) -> PartitionLog;
        /// Cleanly closes `store` and opens it again from `dir`.
        fn reopen(&self, store: PartitionLog, dir: &Path) -> PartitionLog;
    }

    fn appended(r: AppendResult) -> (i64, i64) {
        match r {
            AppendResult::Appended {
                base_offset,
                last_offset,
                ..
            } => (base_offset, last_offset),
            other => panic!("expected Appended, got {other:?}"),
        }
    }

    /// Reads everything from `from` to the log end, batch by batch, checking density.
    fn read_all(s: &PartitionLog, from: i64, max_bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offset = from;
        while offset < s.log_end_offset() {
            let bytes = s.read(offset, max_bytes, i64::MAX).unwrap();
            assert!(!bytes.is_empty(), "no data at {offset}");
            for h in headers(&bytes) {
                assert!(h.base_offset <= offset || h.base_offset == offset);
                assert!(h.last_offset() >= offset);
                offset = h.last_offset() + 1;
            }
            out.extend_from_slice(&bytes);
        }
        out
    }

    pub fn append_read_round_trip<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        assert_eq!((s.log_start_offset(), s.log_end_offset()), (0, 0));
        let b = batch(3, 1_000);
        assert_eq!(appended(s.append(&b, 5_000).unwrap()), (0, 2));
        assert_eq!(appended(s.append(&b, 5_000).unwrap()), (3, 5));
        assert_eq!(s.log_end_offset(), 6);
        let got = s.read(0, 1 << 20, i64::MAX).unwrap();
        let hs = headers(&got);
        assert_eq!(hs[0].base_offset, 0);
        // Same bytes as sent except base offset and leader epoch.
        assert_eq!(&got[16..b.len()], &b[16..]);
        assert_eq!(&got[12..16], &[0, 0, 0, 0]);
        let all = read_all(&s, 0, 1 << 20);
        assert_eq!(all.len(), 2 * b.len());
    }

    pub fn dense_offsets_across_many_appends<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        let mut next = 0;
        let mut total = 0;
        for i in 0..300 {
            let n = 1 + (i * 7) % 5;
            let (base, last) = appended(s.append(&batch(n, i as i64), 1).unwrap());
            assert_eq!(base, next);
            assert_eq!(last, base + n as i64 - 1);
            next = last + 1;
            total += n;
        }
        assert_eq!(s.log_end_offset(), total as i64);
        let bytes = read_all(&s, 0, 700);
        let hs = headers(&bytes);
        let mut expect = 0;
        for h in hs {
            assert_eq!(h.base_offset, expect);
            expect = h.last_offset() + 1;
        }
        assert_eq!(expect, total as i64);
        // Every single offset is readable and lands in the right batch.
        for o in 0..total as i64 {
            let got = s.read(o, 1, i64::MAX).unwrap();
            let hs = headers(&got);
            assert_eq!(hs.len(), 1);
            assert!(hs[0].base_offset <= o && o <= hs[0].last_offset());
        }
    }

    pub fn read_from_middle_returns_whole_batch<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        s.append(&batch(4, 0), 1).unwrap();
        let b = batch(10, 0);
        s.append(&b, 1).unwrap();
        let got = s.read(9, 1, i64::MAX).unwrap();
        assert_eq!(got.len(), b.len());
        let hs = headers(&got);
        assert_eq!((hs[0].base_offset, hs[0].last_offset()), (4, 13));
    }

    pub fn max_bytes_respected_first_batch_whole<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        let b = batch(2, 0);
        for _ in 0..10 {
            s.append(&b, 1).unwrap();
        }
        let got = s.read(0, 1, i64::MAX).unwrap();
        assert_eq!(got.len(), b.len());
        let got = s.read(2, b.len() * 3 + b.len() / 2, i64::MAX).unwrap();
        assert!(got.len() <= b.len() * 3);
        assert!(!got.is_empty());
        assert_eq!(got.len() % b.len(), 0);
        assert_eq!(headers(&got)[0].base_offset, 2);
    }

    pub fn upper_bound_respected<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        for _ in 0..5 {
            s.append(&batch(2, 0), 1).unwrap();
        }
        let got = s.read(0, 1 << 20, 5).unwrap();
        let hs = headers(&got);
        assert!(!hs.is_empty());
        assert!(hs.iter().all(|h| h.base_offset < 5));
        // Batches are whole, so the one starting at 4 is included; 6 is not.
        assert_eq!(hs.last().unwrap().base_offset, 4);
        assert!(s.read(5, 1 << 20, 5).unwrap().is_empty());
        assert!(s.read(6, 1 << 20, 5).unwrap().is_empty());
    }

    pub fn out_of_range<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        s.append(&batch(3, 0), 1).unwrap();
        assert!(matches!(
            s.read(-1, 100, i64::MAX),
            Err(LogError::OffsetOutOfRange { offset: -1, .. })
        ));
        assert!(matches!(
            s.read(4, 100, i64::MAX),
            Err(LogError::OffsetOutOfRange { offset: 4, .. })
        ));
        assert!(s.read(3, 100, i64::MAX).unwrap().is_empty());
    }

    pub fn corrupt_batch_rejected_nothing_stored<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        s.append(&batch(2, 0), 1).unwrap();
        let good = batch(3, 0);
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let mut payload = good.clone();
        payload.extend_from_slice(&bad);
        assert!(matches!(
            s.append(&payload, 1),
            Err(LogError::CorruptBatch { position, .. }) if position == good.len()
        ));
        // Trailing partial batch.
        let mut torn = good.clone();
        torn.extend_from_slice(&good[..30]);
        assert!(matches!(
            s.append(&torn, 1),
            Err(LogError::CorruptBatch { .. })
        ));
        assert!(matches!(s.append(&[], 1), Err(LogError::InvalidRecord(_))));
        assert_eq!(s.log_end_offset(), 2);
        assert_eq!(appended(s.append(&good, 1).unwrap()), (2, 4));
        assert_eq!(headers(&read_all(&s, 0, 1 << 20)).len(), 2);
    }

    pub fn oversize_rejected<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        let big = batch_full(&[1], 1_100_000, None, Compression::None);
        assert!(matches!(
            s.append(&big, 1),
            Err(LogError::MessageTooLarge { .. })
        ));
        assert_eq!(s.log_end_offset(), 0);
    }

    pub fn timestamp_lookup_exact<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        assert_eq!(s.offset_for_timestamp(0).unwrap(), None);
        // offsets 0..=2
        s.append(&batch_full(&[100, 110, 120], 8, None, Compression::None), 1)
            .unwrap();
        // offsets 3..=5, gzip, non-monotonic inside the batch
        s.append(&batch_full(&[140, 130, 150], 8, None, Compression::Gzip), 1)
            .unwrap();
        // offsets 6..=8, zstd
        s.append(&batch_full(&[160, 170, 300], 8, None, Compression::Zstd), 1)
            .unwrap();
        // offsets 9.., many small batches to span segments/index entries
        for i in 0..40 {
            s.append(
                &batch_full(&[400 + i * 10, 405 + i * 10], 8, None, Compression::None),
                1,
            )
            .unwrap();
        }
        let cases = [
            (0, Some((0, 100))),
            (100, Some((0, 100))),
            (101, Some((1, 110))),
            (120, Some((2, 120))),
            (121, Some((3, 140))),
            (131, Some((3, 140))),
            (145, Some((5, 150))),
            (151, Some((6, 160))),
            (171, Some((8, 300))),
            (301, Some((9, 400))),
            (404, Some((10, 405))),
            (406, Some((11, 410))),
            (795, Some((88, 795))),
            (796, None),
        ];
        for (ts, want) in cases {
            assert_eq!(s.offset_for_timestamp(ts).unwrap(), want, "ts {ts}");
        }
        let s = h.reopen(s, dir.path());
        for (ts, want) in cases {
            assert_eq!(
                s.offset_for_timestamp(ts).unwrap(),
                want,
                "after reopen, ts {ts}"
            );
        }
    }

    pub fn reopen_same_data<H: Harness>(h: &H) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = h.open(dir.path());
        for i in 0..50 {
            s.append(&batch(1 + i % 3, i as i64), 1).unwrap();
        }
        let before = read_all(&s, 0, 1 << 20);
        let end = s.log_end_offset();
        let mut s = h.reopen(s, dir.path());
        assert_eq!(s.log_end_offset(), end);
        assert_eq!(read_all(&s, 0, 1 << 20), before);
        assert_eq!(appended(s.append(&batch(2, 0), 1).unwrap()), (end, end + 1));
    }

    /// Instantiates every conformance case as a `#[test]` in module `$name`.
    macro_rules! conformance_tests {
        ($name:ident, $harness:expr) => {
            mod $name {
                use super::*;
                use $crate::store::conformance as c;
                #[test]
                fn append_read_round_trip() {
                    c::append_read_round_trip(&$harness);
                }
                #[test]
                fn dense_offsets_across_many_appends() {
                    c::dense_offsets_across_many_appends(&$harness);
                }
                #[test]
                fn read_from_middle_returns_whole_batch() {
                    c::read_from_middle_returns_whole_batch(&$harness);
                }
                #[test]
                fn max_bytes_respected_first_batch_whole() {
                    c::max_bytes_respected_first_batch_whole(&$harness);
                }
                #[test]
                fn upper_bound_respected() {
                    c::upper_bound_respected(&$harness);
                }
                #[test]
                fn out_of_range() {
                    c::out_of_range(&$harness);
                }
                #[test]
                fn corrupt_batch_rejected_nothing_stored() {
                    c::corrupt_batch_rejected_nothing_stored(&$harness);
                }
                #[test]
                fn oversize_rejected() {
                    c::oversize_rejected(&$harness);
                }
                #[test]
                fn timestamp_lookup_exact() {
                    c::timestamp_lookup_exact(&$harness);
                }
                #[test]
                fn reopen_same_data() {
                    c::reopen_same_data(&$harness);
                }
            }
        };
    }
    pub(crate) use conformance_tests;
}

#[allow(clippy::unwrap_used)]
mod partition_log_conformance {
    use std::path::Path;

    use super::conformance::{conformance_tests, Harness};
    use crate::config::LogConfig;
    use crate::partition::{PartitionLog, Recovery};

    struct LogHarness(LogConfig);

    impl Harness for LogHarness {
        fn open(&self, dir: &Path) -> PartitionLog {
            PartitionLog::open(dir, self.0.clone(), Recovery::Clean).unwrap()
        }
        fn reopen(&self, mut store: PartitionLog, dir: &Path) -> PartitionLog {
            store.close().unwrap();
            drop(store);
            self.open(dir)
        }
    }

    conformance_tests!(default_config, LogHarness(LogConfig::default()));
    conformance_tests!(tiny_segments, LogHarness(crate::testutil::tiny_config()));
}
