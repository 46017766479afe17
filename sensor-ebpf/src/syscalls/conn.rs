//! accept/accept4/connect open connections, close ends them. Each connection gets a fresh id, so a
//! reused fd number never continues an old connection.
use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use sensor_common::{ConnClose, ConnOpen, ConnState, conn_key, counter, family, kind, origin, proto, role};

use super::{SysArgs, remember, take, tracepoint_ret};
use crate::{
    emit, filter,
    maps::{CONNS, Pending, count, next_conn_id, op},
};

const EINPROGRESS: i64 = 115;

#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    enter_accept(&SysArgs::of_tracepoint(&ctx))
}

#[tracepoint]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    enter_accept(&SysArgs::of_tracepoint(&ctx))
}

#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    exit_accept(tracepoint_ret(&ctx))
}

#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    exit_accept(tracepoint_ret(&ctx))
}

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    enter_connect(&SysArgs::of_tracepoint(&ctx))
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    exit_connect(tracepoint_ret(&ctx))
}

#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    enter_close(&SysArgs::of_tracepoint(&ctx))
}

#[inline(always)]
pub fn enter_connect(args: &SysArgs) -> u32 {
    let Some((pid_tgid, _)) = filter::traced() else {
        return 0;
    };
    let pending = Pending {
        fd: args.get(0) as i32,
        op: op::CONNECT,
        direction: 0,
        source: 0,
        vectored: 0,
        ptr: args.get(1),
        count: 0,
    };
    remember(pid_tgid, &pending);
    0
}

#[inline(always)]
pub fn exit_connect(rc: i64) -> u32 {
    let Some((pid_tgid, tgid)) = filter::traced() else {
        return 0;
    };
    let Some(pending) = take(pid_tgid, op::CONNECT) else {
        return 0;
    };
    // Non-blocking connects return EINPROGRESS and complete later: the connection is real.
    if rc != 0 && rc != -EINPROGRESS {
        return 0;
    }
    let mut open = new_open(tgid, pending.fd, role::CLIENT, origin::CONNECT, -1);
    read_sockaddr(pending.ptr, &mut open);
    track(&mut open);
    0
}

#[inline(always)]
pub fn enter_close(args: &SysArgs) -> u32 {
    let Some((_, tgid)) = filter::traced() else {
        return 0;
    };
    let fd = args.get(0) as i32;
    let key = conn_key(tgid, fd);
    // SAFETY: the value is copied out before the entry is removed.
    let Some(state) = (unsafe { CONNS.get(&key) }).copied() else {
        return 0;
    };
    let _ = CONNS.remove(&key);
    let event = ConnClose {
        kind: kind::CONN_CLOSE,
        tgid,
        conn_id: state.conn_id,
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        fd,
        _pad: 0,
        ingress_bytes: state.offsets[0],
        egress_bytes: state.offsets[1],
    };
    emit::record(&event);
    0
}

#[inline(always)]
pub fn enter_accept(args: &SysArgs) -> u32 {
    let Some((pid_tgid, _)) = filter::traced() else {
        return 0;
    };
    let pending = Pending {
        fd: args.get(0) as i32,
        op: op::ACCEPT,
        direction: 0,
        source: 0,
        vectored: 0,
        ptr: args.get(1),
        count: 0,
    };
    remember(pid_tgid, &pending);
    0
}

#[inline(always)]
pub fn exit_accept(fd: i64) -> u32 {
    let Some((pid_tgid, tgid)) = filter::traced() else {
        return 0;
    };
    let Some(pending) = take(pid_tgid, op::ACCEPT) else {
        return 0;
    };
    if fd < 0 {
        return 0;
    }
    let mut open = new_open(tgid, fd as i32, role::SERVER, origin::ACCEPT, pending.fd);
    read_sockaddr(pending.ptr, &mut open);
    track(&mut open);
    0
}

#[inline(always)]
pub fn new_open(tgid: u32, fd: i32, role: u8, origin: u8, listen_fd: i32) -> ConnOpen {
    ConnOpen {
        kind: kind::CONN_OPEN,
        tgid,
        conn_id: 0,
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        fd,
        listen_fd,
        role,
        origin,
        family: family::UNSPEC,
        remote_port: 0,
        _pad: 0,
        remote_addr: [0; 16],
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    }
}

/// Starts tracking `open` (assigning its id) and tells the agent. Returns the map slot.
#[inline(always)]
pub fn track(open: &mut ConnOpen) -> Option<*mut ConnState> {
    let key = conn_key(open.tgid, open.fd);
    open.conn_id = next_conn_id();
    let state = ConnState {
        conn_id: open.conn_id,
        offsets: [0, 0],
        tls_offsets: [0, 0],
        role: open.role,
        proto: proto::UNKNOWN,
        muted: 0,
        _pad: [0; 5],
    };
    if CONNS.insert(&key, &state, 0).is_err() {
        count(counter::CONN_MAP_FULL, 1);
        return None;
    }
    emit::record(open);
    CONNS.get_ptr_mut(&key)
}

/// Fills the remote address from a user `sockaddr` (the accept peer or the connect target).
#[inline(always)]
fn read_sockaddr(ptr: u64, open: &mut ConnOpen) {
    if ptr == 0 {
        return;
    }
    // SAFETY: user memory read through the checked helper; failure leaves the address unknown.
    let Ok(head) = (unsafe { bpf_probe_read_user::<[u8; 8]>(ptr as *const [u8; 8]) }) else {
        return;
    };
    let fam = u16::from_ne_bytes([head[0], head[1]]);
    open.family = fam;
    if fam == family::INET {
        open.remote_port = u16::from_be_bytes([head[2], head[3]]);
        open.remote_addr[0] = head[4];
        open.remote_addr[1] = head[5];
        open.remote_addr[2] = head[6];
        open.remote_addr[3] = head[7];
    } else if fam == family::INET6 {
        open.remote_port = u16::from_be_bytes([head[2], head[3]]);
        // sockaddr_in6: port at 2, flowinfo at 4, address at 8..24.
        // SAFETY: as above.
        if let Ok(addr) = unsafe { bpf_probe_read_user::<[u8; 16]>((ptr + 8) as *const [u8; 16]) } {
            open.remote_addr = addr;
        }
    }
}
