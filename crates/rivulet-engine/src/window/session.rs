//! Session windows (Spark `session_window(t, gap)`, Flink `EventTimeSessionWindows.withGap`).
//!
//! Every event opens a window `[t, t + gap)`; per group key, windows that overlap are merged, so
//! a session is a run of events where each is less than `gap` after the previous one, and it
//! spans `[first event, last event + gap)`. Two events exactly `gap` apart are *separate*
//! sessions (half-open windows, as in Spark). An out-of-order event can extend a session to the
//! left, or bridge two sessions, which are then merged — state included, since every aggregate
//! is mergeable (count/sum/avg/min/max add up, stddev via Chan's formula, percentiles by merging
//! t-digests).
//!
//! Lateness: a session row is late when its event time is below the watermark
//! (`t < watermark`, Spark's input rule, same as [`crate::watermark::split_late`]). This keeps
//! emitted sessions final: a session is closed once `end ≤ watermark`, and an on-time event
//! (`t ≥ watermark ≥ end`) can no longer overlap it.
//!
//! In update mode a merge makes the merged-away sessions' earlier output rows stale (their
//! window_start no longer exists); sinks see only the surviving, merged session. Append mode,
//! which emits each session once when it is final, is the natural mode for sessions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Hasher, WindowAggregate};

/// Live sessions: per group id, sessions by start; plus all sessions by end for closing.
#[derive(Default)]
pub(crate) struct Sessions {
    pub by_group: HashMap<u32, BTreeMap<i64, u32>, Hasher>,
    /// (end, slot) of every open session.
    pub by_end: BTreeSet<(i64, u32)>,
    /// Scratch: sessions overlapping the current event.
    overlapping: Vec<(i64, u32)>,
}

impl Sessions {
    pub fn memory_bytes(&self) -> usize {
        // BTree nodes: roughly 1.5× the payload; hash entries ≈ 48 bytes.
        self.by_group.len() * 48
            + self.by_end.len() * 24
            + self.by_group.values().map(|m| m.len() * 18).sum::<usize>()
    }
}

impl WindowAggregate {
    /// The session slot (after any merges) that an on-time event of group `gid` at `t` joins.
    pub(super) fn session_slot(&mut self, gid: u32, t: i64, gap: i64) -> u32 {
        let hi = t.saturating_add(gap);
        let sessions = &mut self.sessions;
        let group = sessions.by_group.entry(gid).or_default();
        let mut overlapping = std::mem::take(&mut sessions.overlapping);
        overlapping.clear();
        // Sessions of a group are disjoint and sorted, so their ends increase with their starts:
        // walk back from the last session starting before `hi` while they still reach past `t`.
        for (&start, &slot) in group.range(..hi).rev() {
            if self.slots.end[slot as usize] > t {
                overlapping.push((start, slot));
            } else {
                break;
            }
        }
        let slot = match overlapping.last().copied() {
            None => {
                let slot = self.slots.alloc(&mut self.aggs, gid, t, hi);
                self.keys.acquire(gid);
                group.insert(t, slot);
                sessions.by_end.insert((hi, slot));
                slot
            }
            Some((dst_start, dst)) => {
                let d = dst as usize;
                let old_end = self.slots.end[d];
                let mut new_end = old_end.max(hi);
                // Fold every later overlapping session into the earliest one.
                for &(start, src) in &overlapping[..overlapping.len() - 1] {
                    let src_end = self.slots.end[src as usize];
                    new_end = new_end.max(src_end);
                    for agg in &mut self.aggs {
                        agg.merge(dst, src);
                    }
                    group.remove(&start);
                    sessions.by_end.remove(&(src_end, src));
                    self.slots.free(&mut self.aggs, src, &mut self.dirty_count);
                    // `dst` holds a reference to the same key, so this never forgets it.
                    self.keys.release(gid);
                }
                if t < dst_start {
                    group.remove(&dst_start);
                    group.insert(t, dst);
                    self.slots.start[d] = t;
                }
                if new_end != old_end {
                    sessions.by_end.remove(&(old_end, dst));
                    sessions.by_end.insert((new_end, dst));
                    self.slots.end[d] = new_end;
                }
                dst
            }
        };
        sessions.overlapping = overlapping;
        slot
    }

    /// Removes closed session `slot` from the lookup structures (its end is already out of
    /// `by_end`).
    pub(super) fn unlink_session(&mut self, slot: u32) {
        let s = slot as usize;
        let gid = self.slots.gid[s];
        if let Some(group) = self.sessions.by_group.get_mut(&gid) {
            group.remove(&self.slots.start[s]);
            if group.is_empty() {
                self.sessions.by_group.remove(&gid);
            }
        }
    }
}
