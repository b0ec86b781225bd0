//! Hostile payloads the broker tests send.

use std::io::Write;

/// The records of a gzip-compressed batch (one record, no key, a value of `inflated_mib` MiB of
/// zeros): about 1 KB per inflated MiB on the wire — the decompression bomb of issue 12 (407 KB
/// that inflate to a 400 MiB record at `inflated_mib = 400`).
pub fn gzip_bomb_records(inflated_mib: usize) -> Vec<u8> {
    let zig = |n: i64| {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
        out
    };
    let value = i64::try_from(inflated_mib << 20).expect("size");
    // attributes, timestamp delta, offset delta, key length -1 (null), value length
    let mut head = vec![0u8];
    head.extend(zig(0));
    head.extend(zig(0));
    head.extend(zig(-1));
    head.extend(zig(value));
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&zig(head.len() as i64 + value + 1))
        .expect("gzip");
    e.write_all(&head).expect("gzip");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated_mib {
        e.write_all(&zeros).expect("gzip");
    }
    // no headers
    e.write_all(&[0]).expect("gzip");
    e.finish().expect("gzip")
}
