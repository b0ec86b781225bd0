//! JSON decoding on every core: a micro-batch's records are cut into chunks that one
//! [`Decoder`] per core turns into Arrow batches side by side, returned in input order.
//!
//! Decoding is most of a micro-batch's CPU time (parsing JSON per record; the window operators
//! then run on columns at tens of millions of rows per second), so it is the part worth
//! spreading. Order is kept: chunk `i` always comes back at position `i`, so results do not
//! depend on the number of cores (exactly-once replays re-decode the same records and must
//! produce the same rows).

use rivulet_engine::decode::{Decoded, Decoder, RawRecord};
use rivulet_engine::plan::Plan;

use crate::error::RuntimeError;
use crate::source::SourceRecord;
use crate::Result;

/// Records per decoded batch.
const CHUNK: usize = 8_192;
/// Most decoder threads used.
const MAX_THREADS: usize = 8;

/// One decoder per core (see the module docs).
pub(crate) struct DecodePool {
    decoders: Vec<Decoder>,
}

impl DecodePool {
    pub(crate) fn new(plan: &Plan) -> Result<DecodePool> {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS);
        let decoders = (0..n)
            .map(|_| Decoder::new(plan))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(DecodePool { decoders })
    }

    /// The input schema the decoders produce.
    pub(crate) fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.decoders[0].schema()
    }

    /// Decodes the records of one partition, in order, as one or more batches.
    pub(crate) fn decode(
        &mut self,
        records: &[SourceRecord],
        partition: i32,
    ) -> Result<Vec<Decoded>> {
        let chunks: Vec<&[SourceRecord]> = records.chunks(CHUNK).collect();
        let threads = self.decoders.len().min(chunks.len());
        if threads <= 1 {
            let mut raw = Vec::with_capacity(records.len().min(CHUNK));
            return Ok(chunks
                .iter()
                .map(|c| decode_chunk(&mut self.decoders[0], c, partition, &mut raw))
                .collect());
        }
        let mut slots: Vec<Option<Decoded>> = (0..chunks.len()).map(|_| None).collect();
        std::thread::scope(|s| -> Result<()> {
            let chunks = &chunks;
            let handles: Vec<_> = self.decoders[..threads]
                .iter_mut()
                .enumerate()
                .map(|(w, dec)| {
                    s.spawn(move || {
                        let mut raw = Vec::with_capacity(CHUNK);
                        chunks
                            .iter()
                            .enumerate()
                            .skip(w)
                            .step_by(threads)
                            .map(|(i, c)| (i, decode_chunk(dec, c, partition, &mut raw)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                let done = h
                    .join()
                    .map_err(|_| RuntimeError::Thread("a decoder thread panicked".into()))?;
                for (i, d) in done {
                    slots[i] = Some(d);
                }
            }
            Ok(())
        })?;
        slots
            .into_iter()
            .map(|d| d.ok_or_else(|| RuntimeError::Thread("a decoded chunk is missing".into())))
            .collect()
    }
}

fn decode_chunk<'a>(
    dec: &mut Decoder,
    records: &'a [SourceRecord],
    partition: i32,
    raw: &mut Vec<RawRecord<'a>>,
) -> Decoded {
    raw.clear();
    raw.extend(records.iter().map(|r| RawRecord {
        key: r.key.as_deref(),
        value: r.value.as_deref(),
        partition,
        offset: r.offset,
        timestamp_ms: r.timestamp_ms,
    }));
    dec.decode(raw)
}
