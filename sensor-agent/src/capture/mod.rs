//! Capture: load and attach the kernel programs, read their ring buffer, decode records, and
//! resolve each connection's process and addresses before anything downstream sees it.
//!
//! In: ring-buffer records. Out: [`Event`]s, in ring order, where a connection's `Open` always
//! precedes its data and only connections that carried bytes and pass the filter are announced.
//! Counts: decode errors, orphan data, filtered connections, kernel-side losses.
pub mod addr;
pub mod container;
pub mod decode;
pub mod elf_read;
pub mod enrich;
pub mod event;
pub mod go_tls;
pub mod gopclntab;
pub mod loader;
pub mod losses;
pub mod pods;
pub mod privileges;
pub mod procinfo;
pub mod recording;
pub mod rustls_symbols;
pub mod tls_libs;
pub mod uprobe_link;
pub mod visibility;

use std::{net::SocketAddr, sync::Arc};

pub use event::{Direction, Origin, RawChunk, Role};

/// A connection as every later stage sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnMeta {
    pub conn_id: u64,
    pub tgid: u32,
    pub fd: i32,
    pub role: Role,
    pub origin: Origin,
    pub comm: String,
    pub exe: Option<String>,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    pub opened_ns: u64,
    /// The bytes reported are TLS plaintext from the library probes.
    pub tls: bool,
    /// A service name for the process (its script or program), for telemetry resources.
    pub service: String,
    /// The container the process runs in, from its cgroup.
    pub container_id: Option<String>,
}

/// Output of the capture stage.
#[derive(Clone, Debug)]
pub enum Event {
    Open(Arc<ConnMeta>),
    Data(RawChunk),
    Close {
        conn_id: u64,
        ts_ns: u64,
    },
    /// Process lifecycle, for the TLS library attacher (not part of the data path).
    Exec {
        tgid: u32,
    },
    Exit {
        tgid: u32,
    },
}

/// A test that needs a tool the machine lacks: under `cargo xtask test` (which installs every
/// tool and sets `APISENSE_E2E`) that is a failure; under a plain `cargo test` a skip, said.
#[cfg(test)]
pub(crate) fn missing_tool(what: &str) {
    assert!(std::env::var_os("APISENSE_E2E").is_none(), "{what} is required under cargo xtask test");
    eprintln!("{what} not installed here: skipped");
}
