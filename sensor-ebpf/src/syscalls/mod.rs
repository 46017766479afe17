//! Syscall tracepoints. Enter handlers remember arguments per thread in `PENDING`; exit handlers
//! act on the result, when the kernel has filled in buffers and return values.
use aya_ebpf::programs::TracePointContext;

use crate::maps::{PENDING, Pending};

pub mod conn;
pub mod io;

/// Syscall argument `n` of a `syscalls:sys_enter_*` tracepoint (fields start at byte 16).
#[inline(always)]
pub fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    // SAFETY: offsets within the tracepoint's fixed argument block.
    unsafe { ctx.read_at::<u64>(16 + n * 8) }.unwrap_or(0)
}

/// Return value of a `syscalls:sys_exit_*` tracepoint.
#[inline(always)]
pub fn ret(ctx: &TracePointContext) -> i64 {
    // SAFETY: `ret` is the field at offset 16 of every sys_exit tracepoint.
    unsafe { ctx.read_at::<i64>(16) }.unwrap_or(-1)
}

#[inline(always)]
pub fn remember(pid_tgid: u64, pending: &Pending) {
    if PENDING.insert(&pid_tgid, pending, 0).is_err() {
        crate::maps::count(sensor_common::counter::PENDING_MAP_FULL, 1);
    }
}

/// The enter-time record of this thread's syscall, if it was of kind `op`.
#[inline(always)]
pub fn take(pid_tgid: u64, op: u8) -> Option<Pending> {
    // SAFETY: the value is copied out before the entry is removed.
    let pending = unsafe { PENDING.get(&pid_tgid) }.copied();
    let _ = PENDING.remove(&pid_tgid);
    pending.filter(|p| p.op == op)
}
