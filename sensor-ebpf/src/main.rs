//! apisense kernel programs: syscall tracepoints that follow socket connections and copy the bytes
//! of those that carry HTTP into a ring buffer, and a process-exit hook.
//!
//! Kernel side does the minimum: identify connections, number their bytes, copy bounded chunks,
//! count every loss. Parsing happens in the agent.
#![no_std]
#![no_main]

mod classify;
mod emit;
mod filter;
mod go_tls;
mod maps;
mod process;
mod rustls;
mod syscalls;
mod tls;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects programs that could reach a panic, so this is never executed.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
