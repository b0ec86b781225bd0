//! Bench records: a JSON object padded to an exact size, like the sensor readings the
//! pipeline is meant for, so compression ratios are realistic rather than all-zeros.

use std::io::Write;

use crate::BenchError;

/// Recompute the timestamp text every this many records: formatting it per record would
/// cost more than the rest of the record.
const TIMESTAMP_EVERY: u64 = 1024;

/// Makes `{"id":N,"value":V,"timestamp":"…","pad":"xxx…"}` of exactly `size` bytes.
pub(crate) struct PayloadGen {
    size: usize,
    buf: Vec<u8>,
    timestamp: String,
}

impl PayloadGen {
    /// Fails if `size` cannot hold the JSON for ids up to `max_id`.
    pub(crate) fn new(size: usize, max_id: u64) -> Result<PayloadGen, BenchError> {
        let timestamp = rfc3339_now();
        let min = base_len(max_id, "99.9", &timestamp) + 2;
        if size < min {
            return Err(BenchError::InvalidArgument(format!(
                "--size {size} is too small for the JSON bench record (at least {min} bytes for ids up to {max_id})"
            )));
        }
        Ok(PayloadGen {
            size,
            buf: Vec::with_capacity(size),
            timestamp,
        })
    }

    /// The record with this id.
    pub(crate) fn record(&mut self, id: u64) -> &[u8] {
        if id.is_multiple_of(TIMESTAMP_EVERY) {
            self.timestamp = rfc3339_now();
        }
        // A deterministic pseudo-reading in 0.0..=99.9.
        let value = (id.wrapping_mul(7919) % 1000) as f64 / 10.0;
        self.buf.clear();
        // Writing to a Vec cannot fail.
        let _ = write!(
            self.buf,
            "{{\"id\":{id},\"value\":{value:.1},\"timestamp\":\"{}\",\"pad\":\"",
            self.timestamp
        );
        let pad = self.size.saturating_sub(self.buf.len() + 2);
        self.buf.resize(self.buf.len() + pad, b'x');
        self.buf.extend_from_slice(b"\"}");
        &self.buf
    }
}

/// Length of the record without padding and without the closing `"}`.
fn base_len(id: u64, value: &str, timestamp: &str) -> usize {
    format!("{{\"id\":{id},\"value\":{value},\"timestamp\":\"{timestamp}\",\"pad\":\"").len()
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn rfc3339_now() -> String {
    rivulet_time::rfc3339_ms(rivulet_time::now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_exact_size_and_are_json() {
        for size in [100usize, 80, 1000] {
            let mut g = PayloadGen::new(size, 5_000_000).expect("size fits");
            for id in [0u64, 1, 123, 4_999_999] {
                let r = g.record(id).to_vec();
                assert_eq!(r.len(), size);
                let v: serde_json::Value = serde_json::from_slice(&r).expect("valid JSON");
                assert_eq!(v["id"], id);
            }
        }
        assert!(PayloadGen::new(20, 10).is_err());
    }
}
