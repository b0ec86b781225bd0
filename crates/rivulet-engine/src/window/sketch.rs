//! `approx_percentile`: a deterministic merging t-digest (Dunning & Ertl).
//!
//! Values are buffered and folded into at most ~`COMPRESSION` weighted centroids whenever the
//! buffer fills, using the k₁ (arcsine) scale function, which keeps centroids small near the tails
//! and bounds the rank error everywhere (typically well under 0.5% at δ = 200). The sketch is
//! mergeable (session windows merge) and fully deterministic: no randomness, buffer flushes
//! depend only on the number of values added, and sorting uses a total order — so the same rows
//! in the same order always give bit-identical results, whatever the batch boundaries, which
//! exactly-once replay requires. NaN inputs are ignored like NULLs.

use super::codec::{Dec, Enc};
use crate::error::Result;

/// δ: the centroid budget; larger is more accurate and bigger.
const COMPRESSION: f64 = 200.0;
/// Values buffered before a compression pass.
const BUFFER: usize = 512;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TDigest {
    /// (mean, weight), sorted by mean.
    centroids: Vec<(f64, f64)>,
    buffer: Vec<f64>,
    /// Total weight (centroids + buffer).
    count: u64,
    min: f64,
    max: f64,
}

fn k_scale(q: f64) -> f64 {
    COMPRESSION / (2.0 * std::f64::consts::PI) * (2.0 * q - 1.0).asin()
}

fn k_inverse(k: f64) -> f64 {
    let k = k.clamp(-COMPRESSION / 4.0, COMPRESSION / 4.0);
    ((k * 2.0 * std::f64::consts::PI / COMPRESSION).sin() + 1.0) / 2.0
}

impl TDigest {
    pub fn add(&mut self, x: f64) {
        if x.is_nan() {
            return;
        }
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        self.buffer.push(x);
        if self.buffer.len() >= BUFFER {
            self.compress(&[]);
        }
    }

    pub fn merge(&mut self, other: &TDigest) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count += other.count;
        self.buffer.extend_from_slice(&other.buffer);
        self.compress(&other.centroids);
    }

    /// Folds the buffer (and `extra` centroids) into the centroid list.
    fn compress(&mut self, extra: &[(f64, f64)]) {
        if self.buffer.is_empty() && extra.is_empty() {
            return;
        }
        let mut items: Vec<(f64, f64)> =
            Vec::with_capacity(self.centroids.len() + extra.len() + self.buffer.len());
        items.extend_from_slice(&self.centroids);
        items.extend_from_slice(extra);
        items.extend(self.buffer.drain(..).map(|x| (x, 1.0)));
        // Total order on (mean, weight): the result does not depend on the input permutation of
        // equal items, so merges are deterministic.
        items.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let total: f64 = items.iter().map(|c| c.1).sum();
        let mut out: Vec<(f64, f64)> = Vec::with_capacity(self.centroids.len().max(16));
        let mut iter = items.into_iter();
        let Some(mut cur) = iter.next() else {
            self.centroids = out;
            return;
        };
        let mut weight_before = 0.0;
        let mut q_limit = k_inverse(k_scale(0.0) + 1.0);
        for next in iter {
            let q = (weight_before + cur.1 + next.1) / total;
            if q <= q_limit {
                let w = cur.1 + next.1;
                cur.0 += (next.0 - cur.0) * next.1 / w;
                cur.1 = w;
            } else {
                weight_before += cur.1;
                out.push(cur);
                cur = next;
                q_limit = k_inverse(k_scale(weight_before / total) + 1.0);
            }
        }
        out.push(cur);
        self.centroids = out;
    }

    /// The estimated `q`-quantile (q in [0, 1]), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let mut flushed;
        let digest = if self.buffer.is_empty() {
            self
        } else {
            flushed = self.clone();
            flushed.compress(&[]);
            &flushed
        };
        Some(digest.quantile_of_centroids(q.clamp(0.0, 1.0)))
    }

    fn quantile_of_centroids(&self, q: f64) -> f64 {
        let c = &self.centroids;
        let total = self.count as f64;
        let n = c.len();
        if n == 1 {
            return c[0].0;
        }
        let index = q * total;
        if index < 1.0 {
            return self.min;
        }
        // Between the minimum and the first centroid's centre.
        if c[0].1 > 1.0 && index < c[0].1 / 2.0 {
            return self.min + (index - 1.0) / (c[0].1 / 2.0 - 1.0) * (c[0].0 - self.min);
        }
        if index > total - 1.0 {
            return self.max;
        }
        let last = c[n - 1];
        if last.1 > 1.0 && total - index <= last.1 / 2.0 {
            return self.max - (total - index - 1.0) / (last.1 / 2.0 - 1.0) * (self.max - last.0);
        }
        // Interpolate between the centres of the two centroids around `index`.
        let mut weight_so_far = c[0].1 / 2.0;
        for i in 0..n - 1 {
            let (m0, w0) = c[i];
            let (m1, w1) = c[i + 1];
            let dw = (w0 + w1) / 2.0;
            if weight_so_far + dw > index {
                // Singletons are exact points: don't smear them.
                let mut left_unit = 0.0;
                if w0 == 1.0 {
                    if index - weight_so_far < 0.5 {
                        return m0;
                    }
                    left_unit = 0.5;
                }
                let mut right_unit = 0.0;
                if w1 == 1.0 {
                    if weight_so_far + dw - index <= 0.5 {
                        return m1;
                    }
                    right_unit = 0.5;
                }
                let z1 = index - weight_so_far - left_unit;
                let z2 = weight_so_far + dw - index - right_unit;
                if z1 + z2 <= 0.0 {
                    return (m0 + m1) / 2.0;
                }
                let v = (m0 * z2 + m1 * z1) / (z1 + z2);
                return v.clamp(m0.min(m1), m0.max(m1));
            }
            weight_so_far += dw;
        }
        last.0
    }

    pub fn memory_bytes(&self) -> usize {
        self.centroids.capacity() * 16 + self.buffer.capacity() * 8
    }

    pub fn encode(&self, e: &mut Enc) {
        e.u64(self.count);
        e.f64(self.min);
        e.f64(self.max);
        e.len(self.centroids.len());
        for &(m, w) in &self.centroids {
            e.f64(m);
            e.f64(w);
        }
        e.len(self.buffer.len());
        for &x in &self.buffer {
            e.f64(x);
        }
    }

    pub fn decode(d: &mut Dec<'_>) -> Result<Self> {
        let count = d.u64()?;
        let min = d.f64()?;
        let max = d.f64()?;
        let n = d.len(16)?;
        let mut centroids = Vec::with_capacity(n);
        for _ in 0..n {
            centroids.push((d.f64()?, d.f64()?));
        }
        let n = d.len(8)?;
        let mut buffer = Vec::with_capacity(n.max(if n > 0 { BUFFER } else { 0 }));
        for _ in 0..n {
            buffer.push(d.f64()?);
        }
        Ok(Self {
            centroids,
            buffer,
            count,
            min,
            max,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Fraction of `sorted` strictly below / at most `v`: the estimate's rank interval.
    fn rank_error(sorted: &[f64], v: f64, q: f64) -> f64 {
        let n = sorted.len() as f64;
        let lo = sorted.partition_point(|x| *x < v) as f64 / n;
        let hi = sorted.partition_point(|x| *x <= v) as f64 / n;
        if q < lo {
            lo - q
        } else if q > hi {
            q - hi
        } else {
            0.0
        }
    }

    const QS: [f64; 11] = [
        0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0,
    ];

    #[test]
    fn rank_error_within_one_percent() {
        let mut rng = StdRng::seed_from_u64(7);
        for dist in 0..3 {
            let values: Vec<f64> = (0..200_000)
                .map(|_| match dist {
                    0 => rng.gen::<f64>(),
                    // Heavy right tail.
                    1 => (-rng.gen::<f64>().ln()).powi(3),
                    // Many duplicates.
                    _ => f64::from(rng.gen_range(0..50)),
                })
                .collect();
            let mut d = TDigest::default();
            values.iter().for_each(|&v| d.add(v));
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in QS {
                let est = d.quantile(q).unwrap();
                let err = rank_error(&sorted, est, q);
                assert!(
                    err <= 0.01,
                    "dist {dist} q {q}: estimate {est} rank error {err}"
                );
            }
            assert_eq!(d.quantile(0.0), Some(sorted[0]));
            assert_eq!(d.quantile(1.0), Some(sorted[sorted.len() - 1]));
            assert!(d.centroids.len() <= COMPRESSION as usize);
        }
    }

    #[test]
    fn merged_digests_stay_accurate_and_deterministic() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut values: Vec<f64> = (0..100_000).map(f64::from).collect();
        values.shuffle(&mut rng);
        let build = |chunk: usize| {
            let parts: Vec<TDigest> = values
                .chunks(chunk)
                .map(|c| {
                    let mut d = TDigest::default();
                    c.iter().for_each(|&v| d.add(v));
                    d
                })
                .collect();
            let mut all = TDigest::default();
            parts.iter().for_each(|p| all.merge(p));
            all
        };
        let a = build(3_000);
        let b = build(3_000);
        assert_eq!(a, b);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in QS {
            let est = a.quantile(q).unwrap();
            assert!(rank_error(&sorted, est, q) <= 0.01, "q {q}: {est}");
        }
    }

    #[test]
    fn small_and_special_inputs() {
        let mut d = TDigest::default();
        assert_eq!(d.quantile(0.5), None);
        d.add(f64::NAN);
        assert_eq!(d.quantile(0.5), None);
        d.add(3.0);
        assert_eq!(d.quantile(0.5), Some(3.0));
        d.add(1.0);
        d.add(2.0);
        assert_eq!(d.quantile(0.5), Some(2.0));
        assert_eq!(d.quantile(0.0), Some(1.0));
        assert_eq!(d.quantile(1.0), Some(3.0));
        let mut e = Enc::default();
        d.encode(&mut e);
        let back = TDigest::decode(&mut Dec::new(&e.buf)).unwrap();
        assert_eq!(back, d);
    }
}
