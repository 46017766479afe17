//! Filters applied before any work: the agent's own process is never traced.
use aya_ebpf::Global;

/// The agent's tgid, set at load time.
#[unsafe(no_mangle)]
static AGENT_TGID: Global<u32> = Global::new(0);

/// Returns `(pid_tgid, tgid)` when the current task should be traced.
#[inline(always)]
pub fn traced() -> Option<(u64, u32)> {
    let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == AGENT_TGID.load() {
        return None;
    }
    Some((pid_tgid, tgid))
}
