//! Every map the programs share. Sizes of the ring buffer and the connection map are overridden by
//! the agent at load time.
use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use sensor_common::{ConnState, DataEvent, counter};

/// Events to the agent: data, connection open/close, process exit.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Tracked connections keyed by `conn_key(tgid, fd)`. LRU so connections of processes that died
/// without the agent noticing cannot fill it.
#[map]
pub static CONNS: LruHashMap<u64, ConnState> = LruHashMap::with_max_entries(65_536, 0);

/// Syscalls in flight (enter seen, exit not yet), keyed by `pid_tgid`.
#[map]
pub static PENDING: LruHashMap<u64, Pending> = LruHashMap::with_max_entries(16_384, 0);

/// Per-CPU record assembly area: too large for the 512-byte BPF stack.
#[map]
pub static SCRATCH: PerCpuArray<DataEvent> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU loss and truncation counters, indexed by `sensor_common::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Per-CPU sequence for connection ids.
#[map]
pub static CONN_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// What a syscall's exit needs from its enter.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pending {
    pub fd: i32,
    pub op: u8,
    pub direction: u8,
    pub source: u8,
    pub vectored: u8,
    /// Data buffer, iovec array, or sockaddr pointer, depending on `op`/`vectored`.
    pub ptr: u64,
    /// Buffer length or iovec count.
    pub count: u64,
}

pub mod op {
    pub const ACCEPT: u8 = 1;
    pub const CONNECT: u8 = 2;
    pub const IO: u8 = 3;
}

/// Removes and returns the value under `key`: per-call state an entry probe hands to its return.
#[inline(always)]
pub fn take_entry<K, V: Copy>(map: &LruHashMap<K, V>, key: &K) -> Option<V> {
    // SAFETY: copied out before removal.
    let value = unsafe { map.get(key) }.copied()?;
    let _ = map.remove(key);
    Some(value)
}

#[inline(always)]
pub fn count(index: u32, value: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while the program runs.
        unsafe { *slot += value };
    }
}

/// A connection id unique for the life of the loaded programs: CPU number in the top bits, a
/// per-CPU sequence below, so no cross-CPU atomics are needed.
#[inline(always)]
pub fn next_conn_id() -> u64 {
    // SAFETY: helper without preconditions.
    let cpu = u64::from(unsafe { aya_ebpf::helpers::bpf_get_smp_processor_id() });
    let Some(seq) = CONN_SEQ.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot, see `count`.
    unsafe {
        *seq += 1;
        (cpu << 48) | (*seq & 0xffff_ffff_ffff)
    }
}
