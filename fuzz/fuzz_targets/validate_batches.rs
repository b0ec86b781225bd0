//! Feeds arbitrary bytes to record batch validation (what every produce payload goes through).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rivulet_log::validate_batches(data);
});
