//! What /proc says about a traced process and its sockets: executable path, and local/remote
//! addresses of a socket fd (the kernel programs only see the peer named in accept/connect).
//!
//! Lookups are best effort: a process may be gone by the time we look. They are cached per
//! process so a busy server costs one /proc read per executable, not per request.
use std::{
    collections::HashMap,
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
};

/// Process facts cached per tgid (dropped at process exit).
#[derive(Default)]
pub struct ProcCache {
    exes: HashMap<u32, Option<String>>,
    identities: HashMap<u32, (String, Option<String>)>,
    listeners: HashMap<(u32, i32), Option<SocketAddr>>,
}

impl ProcCache {
    pub fn exe(&mut self, tgid: u32) -> Option<String> {
        self.exes
            .entry(tgid)
            .or_insert_with(|| {
                fs::read_link(format!("/proc/{tgid}/exe")).ok().map(|p| p.to_string_lossy().into_owned())
            })
            .clone()
    }

    /// The address a listening socket is bound to (the local side of connections it accepted).
    pub fn listener(&mut self, tgid: u32, fd: i32) -> Option<SocketAddr> {
        *self.listeners.entry((tgid, fd)).or_insert_with(|| socket_addrs(tgid, fd).map(|(local, _)| local))
    }

    /// `(service name, container id)` of a process.
    pub fn identity(&mut self, tgid: u32, comm: &str) -> (String, Option<String>) {
        self.identities
            .entry(tgid)
            .or_insert_with(|| {
                let cmdline = fs::read(format!("/proc/{tgid}/cmdline")).unwrap_or_default();
                let cgroup = fs::read_to_string(format!("/proc/{tgid}/cgroup")).unwrap_or_default();
                (service_name(&cmdline, comm), super::container::identify(&cgroup).map(|c| c.id))
            })
            .clone()
    }

    pub fn forget(&mut self, tgid: u32) {
        self.identities.remove(&tgid);
        self.exes.remove(&tgid);
        self.listeners.retain(|(t, _), _| *t != tgid);
    }
}

/// `(local, remote)` of socket `fd` in process `tgid`.
///
/// First by asking the socket itself: a duplicate of the process's descriptor
/// (`pidfd_getfd`, Linux 5.6+, needs ptrace rights: `CAP_SYS_PTRACE`) answers
/// `getsockname`/`getpeername` in microseconds. Else from /proc/PID/net/tcp{,6}, which lists
/// the process's network namespace but costs milliseconds per read on a large host: the
/// kernel walks every bucket of its connection hash table to print it, and this runs for
/// every new connection.
#[must_use]
pub fn socket_addrs(tgid: u32, fd: i32) -> Option<(SocketAddr, SocketAddr)> {
    socket_addrs_via_pidfd(tgid, fd).or_else(|| socket_addrs_via_proc(tgid, fd))
}

/// The addresses from a duplicate of the process's descriptor. The duplicate is closed at
/// once; the socket itself stays the process's (only if the process closed its own descriptor
/// in those microseconds does the close happen on ours instead).
fn socket_addrs_via_pidfd(tgid: u32, fd: i32) -> Option<(SocketAddr, SocketAddr)> {
    use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};
    let pid = Pid::from_raw(i32::try_from(tgid).ok()?)?;
    let pidfd = pidfd_open(pid, PidfdFlags::empty()).ok()?;
    let dup = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()).ok()?;
    // Only TCP/IP sockets have these addresses (a Unix socket answers an error).
    let socket = std::net::TcpStream::from(dup);
    Some((socket.local_addr().ok()?, socket.peer_addr().ok()?))
}

fn socket_addrs_via_proc(tgid: u32, fd: i32) -> Option<(SocketAddr, SocketAddr)> {
    let inode = socket_inode(tgid, fd)?;
    // The kernel generates these tables page by page while sockets come and go, and a row can
    // be skipped when the table changes between pages: a miss is retried before it is believed.
    (0..3).find_map(|_| {
        ["tcp", "tcp6"].iter().find_map(|table| {
            let text = fs::read_to_string(format!("/proc/{tgid}/net/{table}")).ok()?;
            find_inode(&text, inode)
        })
    })
}

fn socket_inode(tgid: u32, fd: i32) -> Option<u64> {
    let link: PathBuf = fs::read_link(format!("/proc/{tgid}/fd/{fd}")).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The process's command name, as the kernel's `comm` (for connections whose open was missed).
#[must_use]
pub fn comm(tgid: u32) -> Option<String> {
    Some(fs::read_to_string(format!("/proc/{tgid}/comm")).ok()?.trim_end().to_owned())
}

/// A readable service name: the program, or for interpreters the script or module they run
/// (`python3 -m billing.api` -> `billing.api`, `node /srv/app/server.js` -> `server`).
#[must_use]
pub fn service_name(cmdline: &[u8], comm: &str) -> String {
    const INTERPRETERS: &[&str] =
        &["python", "node", "nodejs", "ruby", "perl", "php", "java", "bun", "deno", "dotnet"];
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
    let Some(program) = args.first().map(|p| base(p)) else {
        return comm.to_owned();
    };
    let interpreter = INTERPRETERS.iter().any(|i| program.starts_with(i));
    if interpreter {
        let mut rest = args.iter().skip(1);
        while let Some(arg) = rest.next() {
            // Inline code (`python -c`, `node -e`) names nothing: the interpreter is the service.
            if matches!(arg.as_str(), "-c" | "-e" | "--eval" | "-p" | "--print") {
                break;
            }
            if arg == "-m" || arg == "-jar" {
                if let Some(module) = rest.next() {
                    return base(module).trim_end_matches(".jar").to_owned();
                }
            } else if !arg.starts_with('-') {
                let script = base(arg);
                return script.rsplit_once('.').map_or(script.clone(), |(stem, _)| stem.to_owned());
            }
        }
    }
    program
}

/// Whether fd is (still) a socket; `None` when the process or fd is gone.
#[must_use]
pub fn is_socket(tgid: u32, fd: i32) -> Option<bool> {
    let link = fs::read_link(format!("/proc/{tgid}/fd/{fd}")).ok()?;
    Some(link.to_string_lossy().starts_with("socket:["))
}

/// A row of /proc/net/tcp or tcp6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRow {
    pub inode: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The kernel's `TCP_LISTEN` state (0x0A).
    pub listening: bool,
}

/// Every parseable row of a /proc/net/tcp or tcp6 table.
pub fn tcp_rows(table: &str) -> impl Iterator<Item = TcpRow> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        Some(TcpRow {
            inode: cols.get(9)?.parse().ok()?,
            local: parse_addr(cols.get(1)?)?,
            remote: parse_addr(cols.get(2)?)?,
            listening: *cols.get(3)? == "0A",
        })
    })
}

/// Socket inodes a process holds open (`socket:[N]` links in /proc/PID/fd).
#[must_use]
pub fn socket_inodes(tgid: u32) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{tgid}/fd")) else { return Vec::new() };
    entries
        .filter_map(|e| {
            let link = fs::read_link(e.ok()?.path()).ok()?;
            link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Whether the process holds a TCP socket (not only Unix or other sockets).
#[must_use]
pub fn has_tcp_socket(tgid: u32) -> bool {
    let inodes: std::collections::HashSet<u64> = socket_inodes(tgid).into_iter().collect();
    !inodes.is_empty()
        && ["tcp", "tcp6"].iter().any(|t| {
            fs::read_to_string(format!("/proc/{tgid}/net/{t}"))
                .is_ok_and(|text| tcp_rows(&text).any(|r| inodes.contains(&r.inode)))
        })
}

/// Finds the row for `inode` in a /proc/net/tcp or tcp6 table.
fn find_inode(table: &str, inode: u64) -> Option<(SocketAddr, SocketAddr)> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(9)?.parse::<u64>().ok()? != inode {
            return None;
        }
        Some((parse_addr(cols.get(1)?)?, parse_addr(cols.get(2)?)?))
    })
}

/// Parses `0100007F:1F90` (IPv4) or the 32-hex-digit IPv6 form; the address words are in host
/// byte order (little-endian here), the port in plain hex.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.to_le_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes)).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0050 00000000000000000000000001000000:A2C4 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 0 10 -1
   1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000100007F:A2C5 01 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 20 4 0 10 -1
";

    #[test]
    fn lists_rows_with_their_state() {
        let rows: Vec<TcpRow> = tcp_rows(TCP).chain(tcp_rows(TCP6)).collect();
        assert_eq!(rows.len(), 4);
        assert!(rows[0].listening && !rows[1].listening);
        assert_eq!(rows[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(rows[3].inode, 778);
        assert_eq!(tcp_rows("header only\n").count(), 0);
    }

    #[test]
    fn finds_ipv4_rows_by_inode() {
        let (local, remote) = find_inode(TCP, 5151).unwrap();
        assert_eq!(local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(remote, "127.0.0.1:54321".parse().unwrap());
        assert!(find_inode(TCP, 1).is_none());
    }

    #[test]
    fn finds_ipv6_and_mapped_rows() {
        let (local, remote) = find_inode(TCP6, 777).unwrap();
        assert_eq!(local, "[::1]:80".parse().unwrap());
        assert_eq!(remote.port(), 0xA2C4);
        let (local, _) = find_inode(TCP6, 778).unwrap();
        assert_eq!(local, "127.0.0.1:80".parse().unwrap());
    }

    #[test]
    fn garbage_rows_are_skipped() {
        assert!(find_inode("header\nnot a row\n1: zz:zz yy:yy 01 0 0 0 0 0 0 12\n", 12).is_none());
        assert!(parse_addr("0100007F").is_none());
        assert!(parse_addr("XYZ:0050").is_none());
    }

    #[test]
    fn service_names_from_command_lines() {
        let cmd = |parts: &[&str]| parts.join("\0").into_bytes();
        assert_eq!(service_name(&cmd(&["/usr/sbin/nginx", "-g", "daemon off;"]), "nginx"), "nginx");
        assert_eq!(
            service_name(&cmd(&["python3", "-m", "billing.api", "--port", "8"]), "python3"),
            "billing.api"
        );
        assert_eq!(
            service_name(&cmd(&["/usr/bin/node", "--inspect", "/srv/app/server.js"]), "node"),
            "server"
        );
        assert_eq!(service_name(&cmd(&["java", "-Xmx1g", "-jar", "/opt/ledger.jar"]), "java"), "ledger");
        assert_eq!(service_name(&[], "kworker"), "kworker");
        assert_eq!(service_name(&cmd(&["python3", "-c", "import os\nprint(1)"]), "python3"), "python3");
        assert_eq!(service_name(&cmd(&["node", "-e", "require('x')"]), "node"), "node");
    }

    #[test]
    fn reads_own_process() {
        assert!(ProcCache::default().exe(std::process::id()).is_some());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (local, remote) = socket_addrs(std::process::id(), client.as_raw_fd()).unwrap();
        assert_eq!(remote, addr);
        assert_eq!(local, client.local_addr().unwrap());
        // Both ways agree (the /proc tables are the fallback without ptrace rights).
        let via_proc = socket_addrs_via_proc(std::process::id(), client.as_raw_fd()).unwrap();
        assert_eq!(via_proc, (local, remote));
        assert_eq!(is_socket(std::process::id(), client.as_raw_fd()), Some(true));
    }
}
