//! Decoding of kernel ring-buffer records: total on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sensor_agent::capture::decode::decode(data);
});
