//! One raw tracepoint on `sys_enter` and one on `sys_exit` for every syscall the sensor follows,
//! dispatching on the syscall number to the handlers the per-call tracepoints use.
//!
//! Why: a `syscalls:sys_*` tracepoint with a BPF program goes through the perf event path (a
//! record built and filled per call) before the program runs; a raw tracepoint calls the program
//! with the tracepoint's own arguments, so a syscall the sensor does not follow costs one
//! compare. The price is that the arguments come from the saved user registers, whose layout and
//! syscall numbers are per architecture: x86-64 here, and the agent attaches these only there.
use aya_ebpf::{
    EbpfContext,
    helpers::bpf_probe_read_kernel,
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use sensor_common::{direction, source};

use super::{
    SysArgs, conn,
    io::{self, Args},
};

// x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const READ: i64 = 0;
const WRITE: i64 = 1;
const CLOSE: i64 = 3;
const READV: i64 = 19;
const WRITEV: i64 = 20;
const CONNECT: i64 = 42;
const ACCEPT: i64 = 43;
const SENDTO: i64 = 44;
const RECVFROM: i64 = 45;
const SENDMSG: i64 = 46;
const RECVMSG: i64 = 47;
const ACCEPT4: i64 = 288;

/// `struct pt_regs` on x86-64, from `r10` (byte 56) to `cs` (byte 136): syscall arguments travel
/// in di, si, dx, r10, r8, r9.
#[repr(C)]
#[derive(Clone, Copy)]
struct Regs {
    r10: u64,
    r9: u64,
    r8: u64,
    ax: u64,
    cx: u64,
    dx: u64,
    si: u64,
    di: u64,
    orig_ax: u64,
    ip: u64,
    cs: u64,
}

const REGS_FROM: u64 = 56;
const ORIG_AX: u64 = 120;
/// `__USER_CS`: a 64-bit syscall. A 32-bit process (`__USER32_CS`) numbers its syscalls
/// differently, and the per-call tracepoints ignore its calls too.
const USER_CS: u64 = 0x33;

#[inline(always)]
fn follows(id: i64) -> bool {
    matches!(
        id,
        READ | WRITE
            | CLOSE
            | READV
            | WRITEV
            | CONNECT
            | ACCEPT
            | SENDTO
            | RECVFROM
            | SENDMSG
            | RECVMSG
            | ACCEPT4
    )
}

/// `struct pt_regs` on x86-64 from its start to `cs`, for the BTF-typed hooks, which read the
/// fields in place (the verifier checks each load against the kernel's own type).
#[repr(C)]
struct PtRegs {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    bp: u64,
    bx: u64,
    r11: u64,
    /// From byte 56 ([`REGS_FROM`]) on.
    regs: Regs,
}

const _: () = assert!(core::mem::offset_of!(PtRegs, regs) == REGS_FROM as usize);
const _: () = assert!(REGS_FROM as usize + core::mem::offset_of!(Regs, orig_ax) == ORIG_AX as usize);

/// The BTF-typed form of `sys_enter` (tp_btf): the saved registers are read with plain loads
/// instead of a helper call per syscall. Preferred where the kernel has BTF (it always does for
/// this sensor); the raw form below is the fallback.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_btf(ctx: BtfTracePointContext) -> i32 {
    let id: i64 = ctx.arg(1);
    if !follows(id) {
        return 0;
    }
    let regs: *const PtRegs = ctx.arg(0);
    // SAFETY: `regs` is the kernel's `struct pt_regs *` argument of the tracepoint; the verifier
    // checks every load against its BTF type.
    let r = unsafe {
        let r = &(*regs).regs;
        Regs { di: r.di, si: r.si, dx: r.dx, r10: r.r10, cs: r.cs, ..ZERO }
    };
    enter(id, &r) as i32
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_btf(ctx: BtfTracePointContext) -> i32 {
    let regs: *const PtRegs = ctx.arg(0);
    // SAFETY: as in `sys_enter_btf`.
    let id = unsafe { (*regs).regs.orig_ax } as i64;
    let rc: i64 = ctx.arg(1);
    exit(&ctx, id, rc) as i32
}

const ZERO: Regs = Regs { r10: 0, r9: 0, r8: 0, ax: 0, cx: 0, dx: 0, si: 0, di: 0, orig_ax: 0, ip: 0, cs: 0 };

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> u32 {
    let id: i64 = ctx.arg(1);
    if !follows(id) {
        return 0;
    }
    let regs: u64 = ctx.arg(0);
    // SAFETY: kernel memory read through the checked helper.
    let Ok(r) = (unsafe { bpf_probe_read_kernel::<Regs>((regs + REGS_FROM) as *const Regs) }) else {
        return 0;
    };
    enter(id, &r)
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> u32 {
    let regs: u64 = ctx.arg(0);
    // SAFETY: kernel memory read through the checked helper.
    let Ok(id) = (unsafe { bpf_probe_read_kernel::<i64>((regs + ORIG_AX) as *const i64) }) else {
        return 0;
    };
    exit(&ctx, id, ctx.arg(1))
}

#[inline(always)]
fn enter(id: i64, r: &Regs) -> u32 {
    if r.cs != USER_CS {
        return 0;
    }
    let args = SysArgs([r.di, r.si, r.dx, r.r10]);
    match id {
        READ => io::enter(&args, direction::INGRESS, source::READ, Args::Buffer),
        WRITE => io::enter(&args, direction::EGRESS, source::WRITE, Args::Buffer),
        READV => io::enter(&args, direction::INGRESS, source::READV, Args::Iovec),
        WRITEV => io::enter(&args, direction::EGRESS, source::WRITEV, Args::Iovec),
        RECVFROM => io::enter(&args, direction::INGRESS, source::RECVFROM, Args::Received),
        SENDTO => io::enter(&args, direction::EGRESS, source::SENDTO, Args::Buffer),
        RECVMSG => io::enter(&args, direction::INGRESS, source::RECVMSG, Args::ReceivedMsg),
        SENDMSG => io::enter(&args, direction::EGRESS, source::SENDMSG, Args::Msghdr),
        ACCEPT | ACCEPT4 => conn::enter_accept(&args),
        CONNECT => conn::enter_connect(&args),
        CLOSE => conn::enter_close(&args),
        _ => 0,
    }
}

/// An exit acts only on what its enter remembered, and enters skip 32-bit calls: no `cs` check
/// needed here.
#[inline(always)]
fn exit<C: EbpfContext>(ctx: &C, id: i64, rc: i64) -> u32 {
    match id {
        READ | WRITE | READV | WRITEV | RECVFROM | SENDTO | RECVMSG | SENDMSG => io::exit(ctx, rc),
        ACCEPT | ACCEPT4 => conn::exit_accept(rc),
        CONNECT => conn::exit_connect(rc),
        _ => 0,
    }
}
