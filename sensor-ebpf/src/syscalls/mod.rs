//! Syscall hooks. Enter handlers remember arguments per thread in `PENDING`; exit handlers act on
//! the result, when the kernel has filled in buffers and return values.
//!
//! Two hook families deliver the same calls to the same handlers: one raw tracepoint on
//! `sys_enter` and one on `sys_exit` that dispatch on the syscall number (`raw`: the cheaper, used
//! where its register layout is known), and one `syscalls:sys_*` tracepoint per call (`conn`,
//! `io`: architecture-neutral, the fallback). Handlers see only [`SysArgs`] and the return value.
use aya_ebpf::programs::TracePointContext;

use crate::maps::{PENDING, Pending};

pub mod conn;
pub mod io;
pub mod raw;

/// The first four arguments of a syscall, however the hook read them.
#[derive(Clone, Copy)]
pub struct SysArgs(pub [u64; 4]);

impl SysArgs {
    /// Arguments of a `syscalls:sys_enter_*` tracepoint (fields start at byte 16).
    #[inline(always)]
    pub fn of_tracepoint(ctx: &TracePointContext) -> Self {
        // SAFETY: offsets within the tracepoint's fixed argument block; a tracepoint with fewer
        // arguments leaves the rest as bytes of its own record, which handlers never use.
        let at = |n: usize| unsafe { ctx.read_at::<u64>(16 + n * 8) }.unwrap_or(0);
        Self([at(0), at(1), at(2), at(3)])
    }

    #[inline(always)]
    pub fn get(&self, n: usize) -> u64 {
        if n < 4 { self.0[n] } else { 0 }
    }
}

/// Return value of a `syscalls:sys_exit_*` tracepoint.
#[inline(always)]
pub fn tracepoint_ret(ctx: &TracePointContext) -> i64 {
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
