//! Writing records to the ring buffer; every refusal is counted.
use sensor_common::counter;

use crate::maps::{EVENTS, count};

/// Outputs a fixed-size record (`ConnOpen`, `ConnClose`, `ProcExit`).
#[inline(always)]
pub fn record<T>(event: &T) {
    if EVENTS.output::<T>(event, 0).is_err() {
        count(counter::RINGBUF_DROPPED, 1);
    }
}

/// Outputs the first `len` bytes at `data` (a data record in the scratch area).
#[inline(always)]
pub fn bytes(data: &[u8], payload: u64) -> bool {
    if EVENTS.output::<[u8]>(data, 0).is_err() {
        count(counter::RINGBUF_DROPPED, 1);
        count(counter::RINGBUF_DROPPED_BYTES, payload);
        return false;
    }
    true
}
