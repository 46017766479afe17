//! Process lifetime: connections of an exiting process vanish without `close(2)`.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use sensor_common::{ProcExec, ProcExit, kind};

use crate::{emit, filter};

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let Some((pid_tgid, tgid)) = filter::traced() else {
        return 0;
    };
    // Only the thread-group leader's exit ends the process's connections.
    if pid_tgid as u32 != tgid {
        return 0;
    }
    let event = ProcExit {
        kind: kind::PROC_EXIT,
        tgid,
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
    };
    emit::record(&event);
    0
}

/// A new program image: the agent checks it (and, shortly after, its libraries) for TLS code.
#[tracepoint]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    let Some((_, tgid)) = filter::traced() else {
        return 0;
    };
    let event = ProcExec {
        kind: kind::PROC_EXEC,
        tgid,
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
    };
    emit::record(&event);
    0
}
