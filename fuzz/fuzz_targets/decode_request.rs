//! Feeds arbitrary bytes through the broker's request path: framing, then decoding.
//! Run with `cargo +nightly fuzz run decode_request` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rivulet_broker::codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(len)) = codec::frame_length(data, 1 << 20) {
        let _ = codec::decode_request(bytes::Bytes::copy_from_slice(&data[4..4 + len]));
    }
    let _ = codec::decode_request(bytes::Bytes::copy_from_slice(data));
});
