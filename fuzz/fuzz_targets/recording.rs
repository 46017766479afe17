//! Reading recordings: any file gives events then a clean end or a named error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sensor_agent::capture::recording::{MAGIC, Reader};

fuzz_target!(|data: &[u8]| {
    // Most inputs should get past the header: prepend a valid one half of the time.
    let mut input = Vec::with_capacity(data.len() + 32);
    if data.first().is_some_and(|b| b & 1 == 0) {
        input.extend_from_slice(MAGIC);
        input.extend_from_slice(&[0; 16]);
        input.extend_from_slice(&data[1..]);
    } else {
        input.extend_from_slice(data);
    }
    let Ok(mut reader) = Reader::new(&input[..]) else { return };
    for _ in 0..100_000 {
        match reader.next_event() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
