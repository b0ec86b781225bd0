//! Feeds arbitrary bytes to produce validation: batch headers and CRCs, then every record,
//! compressed batches decompressed (what every produce payload goes through).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rivulet_log::validate_batches(data);
    let _ = rivulet_log::check_records(data, &rivulet_log::LogConfig::default());
});
