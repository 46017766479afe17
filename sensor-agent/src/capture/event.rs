//! Typed capture events: what the kernel said, validated, before any enrichment.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use sensor_common::{ConnOpen, family, origin, role};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Read by the traced process.
    Ingress,
    /// Written by the traced process.
    Egress,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The traced process serves: it reads requests and writes responses.
    Server,
    /// The traced process is the client: it writes requests and reads responses.
    Client,
}

impl Role {
    /// The direction that carries requests for a process in this role.
    #[must_use]
    pub fn request_direction(self) -> Direction {
        match self {
            Role::Server => Direction::Ingress,
            Role::Client => Direction::Egress,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Accept,
    Connect,
    /// Predates the sensor; recognised from its first HTTP bytes.
    Inferred,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptureEvent {
    Open(RawOpen),
    Data(RawChunk),
    Close(RawClose),
    ProcExit { tgid: u32, ts_ns: u64 },
    ProcExec { tgid: u32, ts_ns: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawOpen {
    pub conn_id: u64,
    pub tgid: u32,
    pub fd: i32,
    pub ts_ns: u64,
    pub role: Role,
    pub origin: Origin,
    pub listen_fd: Option<i32>,
    /// The peer as the accept/connect call named it, when it did.
    pub remote: Option<SocketAddr>,
    pub unix: bool,
    pub comm: String,
}

/// Bytes `[offset, offset + len)` of one direction of a connection; `payload` holds the first
/// `payload.len() <= len` of them, the rest were not captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawChunk {
    pub conn_id: u64,
    pub tgid: u32,
    pub fd: i32,
    pub ts_ns: u64,
    pub direction: Direction,
    /// Plaintext captured at the TLS library.
    pub tls: bool,
    /// The syscall or library call that moved the bytes (`sensor_common::source`).
    pub source: u8,
    pub offset: u64,
    pub len: u64,
    pub payload: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawClose {
    pub conn_id: u64,
    pub tgid: u32,
    pub ts_ns: u64,
    pub ingress_bytes: u64,
    pub egress_bytes: u64,
}

impl From<&ConnOpen> for RawOpen {
    fn from(o: &ConnOpen) -> Self {
        let ip = match o.family {
            family::INET => Some(IpAddr::V4(Ipv4Addr::new(
                o.remote_addr[0],
                o.remote_addr[1],
                o.remote_addr[2],
                o.remote_addr[3],
            ))),
            family::INET6 => Some(IpAddr::V6(Ipv6Addr::from(o.remote_addr)).to_canonical()),
            _ => None,
        };
        let comm_len = o.comm.iter().position(|&b| b == 0).unwrap_or(o.comm.len());
        RawOpen {
            conn_id: o.conn_id,
            tgid: o.tgid,
            fd: o.fd,
            ts_ns: o.ts_ns,
            // The kernel only writes SERVER or CLIENT; anything else would be a layout bug, and
            // treating it as a server keeps the connection visible rather than dropping it.
            role: if o.role == role::CLIENT { Role::Client } else { Role::Server },
            origin: match o.origin {
                origin::ACCEPT => Origin::Accept,
                origin::CONNECT => Origin::Connect,
                _ => Origin::Inferred,
            },
            listen_fd: (o.listen_fd >= 0).then_some(o.listen_fd),
            remote: ip.map(|ip| SocketAddr::new(ip, o.remote_port)),
            unix: o.family == family::UNIX,
            comm: String::from_utf8_lossy(&o.comm[..comm_len]).into_owned(),
        }
    }
}
