//! Writing records to the ring buffer; every refusal is counted.
//!
//! Wakeups: waking the agent for every record costs a context switch per syscall on a busy host.
//! Records are written without a wakeup until enough data waits; the agent also drains on a
//! short timer, so quiet traffic is late by at most that period.
use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use sensor_common::counter;

use crate::maps::{EVENTS, count};

/// Waiting bytes from which a record wakes the agent.
const WAKEUP_BYTES: u64 = 256 * 1024;

#[inline(always)]
fn wakeup() -> u64 {
    if EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) >= WAKEUP_BYTES {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Outputs a fixed-size record (`ConnOpen`, `ConnClose`, `ProcExit`).
#[inline(always)]
pub fn record<T>(event: &T) {
    if EVENTS.output::<T>(event, wakeup()).is_err() {
        count(counter::RINGBUF_DROPPED, 1);
    }
}

/// Outputs the first `len` bytes at `data` (a data record in the scratch area).
#[inline(always)]
pub fn bytes(data: &[u8], payload: u64) -> bool {
    if EVENTS.output::<[u8]>(data, wakeup()).is_err() {
        count(counter::RINGBUF_DROPPED, 1);
        count(counter::RINGBUF_DROPPED_BYTES, payload);
        return false;
    }
    true
}
