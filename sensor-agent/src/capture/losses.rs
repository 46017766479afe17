//! Kernel-side loss counters: the ring buffer's refusals are only visible in the kernel, so the
//! programs count them per CPU and the agent sums them here.
use aya::maps::{MapData, PerCpuArray};
use sensor_common::counter;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelCounters {
    pub ringbuf_dropped: u64,
    pub ringbuf_dropped_bytes: u64,
    pub conn_map_full: u64,
    pub pending_map_full: u64,
    pub read_failed_bytes: u64,
    pub truncated_bytes: u64,
    pub tls_unknown_fd: u64,
    pub tls_unknown_fd_bytes: u64,
}

/// Sums every CPU's counters. A counter that cannot be read reads as zero (and is logged once per
/// call): losing a metric must not stop capture.
#[must_use]
pub fn read(map: &PerCpuArray<MapData, u64>) -> KernelCounters {
    let sum = |index: u32| -> u64 {
        match map.get(&index, 0) {
            Ok(values) => values.iter().copied().fold(0u64, u64::wrapping_add),
            Err(e) => {
                log::debug!("reading kernel counter {index}: {e}");
                0
            }
        }
    };
    KernelCounters {
        ringbuf_dropped: sum(counter::RINGBUF_DROPPED),
        ringbuf_dropped_bytes: sum(counter::RINGBUF_DROPPED_BYTES),
        conn_map_full: sum(counter::CONN_MAP_FULL),
        pending_map_full: sum(counter::PENDING_MAP_FULL),
        read_failed_bytes: sum(counter::READ_FAILED_BYTES),
        truncated_bytes: sum(counter::TRUNCATED_BYTES),
        tls_unknown_fd: sum(counter::TLS_UNKNOWN_FD),
        tls_unknown_fd_bytes: sum(counter::TLS_UNKNOWN_FD_BYTES),
    }
}
