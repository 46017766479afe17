//! The blind-spot inventory: for every process with TCP sockets, whether the sensor decrypts its
//! TLS, with which library, or why not. A security team must know what the sensor cannot see as
//! much as what it sees.
//!
//! **In:** `/proc` (maps, exe, fd, net/tcp*, cgroup) and the executables and libraries
//! themselves. **Out:** one [`ProcessVisibility`] per process, for `apisense status` and the
//! agent's log. Reading is best effort: a process gone midway is skipped, a file that cannot be
//! read is reported as such.
use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aho_corasick::AhoCorasick;
use serde::Serialize;

use super::{
    container, go_tls, procinfo, rustls_symbols,
    tls_libs::{TlsLibrary, probe_points},
};

/// What the sensor makes of one process's TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TlsVisibility {
    /// Its TLS library is probed: HTTPS is reported in plaintext.
    Decrypted { library: &'static str, file: String },
    /// It has TLS the sensor cannot read.
    NotDecrypted { library: &'static str, reason: &'static str },
    /// No TLS library found: plaintext only (which the sensor sees), or TLS of a kind not
    /// recognised.
    NoTlsLibrary,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessVisibility {
    pub pid: u32,
    pub process: String,
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Ports it listens on.
    pub listening: Vec<u16>,
    /// Established (or other non-listening) TCP sockets.
    pub connections: usize,
    pub tls: TlsVisibility,
}

const GO_TLS: &str = "Go crypto/tls";
const RUSTLS: &str = "rustls";

/// A TLS stack compiled into a program, and whether its functions are probed (or why not).
type CompiledTls = (&'static str, Result<(), &'static str>);

/// A TLS implementation recognised inside an executable that exports nothing to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blind {
    pub library: &'static str,
    pub reason: &'static str,
}

/// Byte patterns of TLS stacks compiled into a program; one pass over the data finds them all.
/// Stored reversed and turned around at run time, so that apisense's own binary does not contain
/// them and report itself as a Go or rustls program.
const MARKERS_REVERSED: [&[u8]; 7] = [
    b":fnidliub oG \xff",
    b"etirW.)nnoC*(.slt/otpyrc",
    b".0-sltsur/",
    b"nnoc::sltsur",
    b".1 LSSnepO",
    b".3 LSSnepO",
    b"LSSgniroB",
];

fn marker_finder() -> Option<&'static AhoCorasick> {
    static FINDER: std::sync::OnceLock<Option<AhoCorasick>> = std::sync::OnceLock::new();
    FINDER
        .get_or_init(|| {
            AhoCorasick::new(MARKERS_REVERSED.iter().map(|m| m.iter().rev().copied().collect::<Vec<u8>>()))
                .ok()
        })
        .as_ref()
}

/// Sections where the markers live: read-only data (version strings, crate paths in panic
/// messages), Go's build info and function-name table. Reading only these keeps a check of a
/// 100 MB binary to a few MB.
const MARKER_SECTIONS: [&str; 5] = [".rodata", ".data.rel.ro", ".go.buildinfo", ".gopclntab", ".noptrdata"];
/// Bytes read per file at most, whatever its sections say.
const MAX_MARKER_BYTES: usize = 64 << 20;

/// What TLS stack an executable carries when it exports no probeable symbols, from the bytes of
/// its data sections (or the whole file when it has no section table).
#[must_use]
pub fn classify_file(file: &fs::File) -> Option<Blind> {
    use object::{Object as _, ObjectSection as _};
    // SAFETY: read-only private map of an executable in use (not rewritten in place).
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    let Ok(elf) = object::File::parse(&*map) else { return None };
    // rustls named in the symbol table: probed, or reported with the reason, by the attacher.
    if rustls_symbols::probe_points(&elf).is_some() {
        return None;
    }
    let mut budget = MAX_MARKER_BYTES;
    let parts: Vec<&[u8]> = elf
        .sections()
        .filter(|s| s.name().is_ok_and(|n| MARKER_SECTIONS.contains(&n)))
        .filter_map(|s| {
            let (start, size) = s.file_range()?;
            let len = usize::try_from(size).ok()?.min(budget);
            budget -= len;
            map.get(usize::try_from(start).ok()?..)?.get(..len)
        })
        .collect();
    classify_executable(&parts)
}

/// What TLS stack these bytes of an executable show, when it exports no probeable symbols.
#[must_use]
pub fn classify_executable(parts: &[&[u8]]) -> Option<Blind> {
    let finder = marker_finder()?;
    let mut found = [false; MARKERS_REVERSED.len()];
    for part in parts {
        for m in finder.find_overlapping_iter(*part) {
            found[m.pattern().as_usize()] = true;
        }
    }
    // Go programs are told from their ELF sections by `go_tls`, which also says whether their
    // TLS is probed. The Go markers only keep Go programs, whose runtime mentions OpenSSL, out
    // of the static-OpenSSL case below: a bare byte match also hits programs that merely name
    // Go's symbols (this agent does), so it reports nothing itself.
    let go = found[0];
    if go && found[1] {
        return None;
    }
    if found[2] || found[3] {
        // A program with rustls *symbols* is judged by them (`rustls_symbols`); this is one
        // without a symbol table.
        return Some(Blind {
            library: RUSTLS,
            reason: "rustls is compiled in and the program has no symbol table (stripped): its plaintext functions cannot be found",
        });
    }
    if !go && (found[4] || found[5] || found[6]) {
        return Some(Blind {
            library: "OpenSSL/BoringSSL (static)",
            reason: "linked into the program without exported symbols to probe",
        });
    }
    None
}

/// Reads and classifies files once each (by device and inode).
#[derive(Default)]
pub struct Scanner {
    probeable: HashMap<(u64, u64), bool>,
    executables: HashMap<(u64, u64), Option<Blind>>,
    /// Programs with a TLS stack compiled in: probeable, or why not.
    compiled: HashMap<(u64, u64), Option<CompiledTls>>,
}

impl Scanner {
    /// Every process with at least one TCP socket, by pid.
    pub fn scan(&mut self) -> Vec<ProcessVisibility> {
        let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
        let mut pids: Vec<u32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        pids.sort_unstable();
        let mut tables: HashMap<u64, Vec<procinfo::TcpRow>> = HashMap::new();
        pids.into_iter().filter_map(|pid| self.process(pid, &mut tables)).collect()
    }

    fn process(
        &mut self,
        pid: u32,
        tables: &mut HashMap<u64, Vec<procinfo::TcpRow>>,
    ) -> Option<ProcessVisibility> {
        let sockets: HashSet<u64> = procinfo::socket_inodes(pid).into_iter().collect();
        if sockets.is_empty() {
            return None;
        }
        // Processes in one network namespace share their TCP tables: read them once.
        let netns = fs::metadata(format!("/proc/{pid}/ns/net")).map_or(0, |m| m.ino());
        let rows = tables.entry(netns).or_insert_with(|| {
            ["tcp", "tcp6"]
                .iter()
                .filter_map(|t| fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
                .flat_map(|text| procinfo::tcp_rows(&text).collect::<Vec<_>>())
                .collect()
        });
        let mine: Vec<&procinfo::TcpRow> = rows.iter().filter(|r| sockets.contains(&r.inode)).collect();
        if mine.is_empty() {
            return None;
        }
        let mut listening: Vec<u16> = mine.iter().filter(|r| r.listening).map(|r| r.local.port()).collect();
        listening.sort_unstable();
        listening.dedup();
        let connections = mine.iter().filter(|r| !r.listening).count();
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| p.to_string_lossy().into_owned());
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        Some(ProcessVisibility {
            pid,
            process: procinfo::comm(pid).unwrap_or_default(),
            container_id: container::identify(&cgroup).map(|c| c.id),
            listening,
            connections,
            tls: self.tls_of(pid, exe.as_deref()),
            exe,
        })
    }

    fn tls_of(&mut self, pid: u32, exe: Option<&str>) -> TlsVisibility {
        let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let mut paths: Vec<&str> =
            maps.lines().filter_map(|l| l.split_whitespace().nth(5)).filter(|p| p.starts_with('/')).collect();
        paths.dedup();
        let mut stripped = None;
        for path in &paths {
            let Some(library) =
                Path::new(path).file_name().and_then(|n| n.to_str()).and_then(TlsLibrary::from_file_name)
            else {
                continue;
            };
            if self.has_probe_points(&root.join(path.trim_start_matches('/'))) {
                return TlsVisibility::Decrypted { library: library.as_str(), file: (*path).to_owned() };
            }
            stripped = Some(library);
        }
        if let Some(exe) = exe {
            let host_path = root.join(exe.trim_start_matches('/'));
            if self.has_probe_points(&host_path) {
                return TlsVisibility::Decrypted { library: "OpenSSL (built in)", file: exe.to_owned() };
            }
            match self.compiled_tls(&host_path) {
                Some((library, Ok(()))) => return TlsVisibility::Decrypted { library, file: exe.to_owned() },
                Some((library, Err(reason))) => return TlsVisibility::NotDecrypted { library, reason },
                None => {}
            }
            if let Some(blind) = self.executable(&host_path) {
                return TlsVisibility::NotDecrypted { library: blind.library, reason: blind.reason };
            }
        }
        if paths.iter().any(|p| p.ends_with("/libjvm.so")) {
            return TlsVisibility::NotDecrypted {
                library: "Java JSSE",
                reason: "Java's TLS runs as JVM code, with no native function to probe",
            };
        }
        if let Some(library) = stripped {
            return TlsVisibility::NotDecrypted {
                library: library.as_str(),
                reason: "its library has no symbols for the read/write functions (stripped)",
            };
        }
        TlsVisibility::NoTlsLibrary
    }

    fn has_probe_points(&mut self, path: &Path) -> bool {
        let Ok(file) = fs::File::open(path) else { return false };
        let Ok(meta) = file.metadata() else { return false };
        *self
            .probeable
            .entry((meta.dev(), meta.ino()))
            .or_insert_with(|| probe_points(&file).is_ok_and(|p| !p.is_empty()))
    }

    /// The TLS stack compiled into the program at `path` that its symbols (rustls) or sections
    /// (Go) reveal, and whether its functions were found.
    fn compiled_tls(&mut self, path: &Path) -> Option<CompiledTls> {
        let file = fs::File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        *self.compiled.entry((meta.dev(), meta.ino())).or_insert_with(|| {
            // SAFETY: read-only private map of an executable in use (not rewritten in place).
            let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
            let elf = object::File::parse(&*map).ok()?;
            if let Some(found) = rustls_symbols::probe_points(&elf) {
                return Some((RUSTLS, found.map(|_| ()).map_err(|e| e.reason())));
            }
            go_tls::probe_points(&elf).map(|r| (GO_TLS, r.map(|_| ()).map_err(|e| e.reason())))
        })
    }

    fn executable(&mut self, path: &Path) -> Option<Blind> {
        let file = fs::File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        *self.executables.entry((meta.dev(), meta.ino())).or_insert_with(|| classify_file(&file))
    }
}

/// Kernel TLS sessions on the host (`/proc/net/tls_stat`): their records are encrypted by the
/// kernel after the process's write, so the sensor sees neither plaintext nor a library call.
#[must_use]
pub fn ktls_sessions() -> Option<u64> {
    let text = fs::read_to_string("/proc/net/tls_stat").ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("TlsCurr"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum(),
    )
}

/// The inventory as an aligned table, blind processes first.
#[must_use]
pub fn render_table(processes: &[ProcessVisibility]) -> String {
    let mut rows: Vec<&ProcessVisibility> = processes.iter().collect();
    let rank = |v: &ProcessVisibility| match v.tls {
        TlsVisibility::NotDecrypted { .. } => 0,
        TlsVisibility::NoTlsLibrary => 1,
        TlsVisibility::Decrypted { .. } => 2,
    };
    rows.sort_by_key(|v| (rank(v), v.pid));
    let mut out =
        format!("{:<8} {:<16} {:<14} {:<5} {:<15} TLS\n", "PID", "PROCESS", "LISTENS", "CONNS", "STATUS");
    for v in rows {
        let ports = if v.listening.is_empty() {
            "-".to_owned()
        } else {
            v.listening.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
        };
        let (status, detail) = match &v.tls {
            TlsVisibility::Decrypted { library, file } => ("decrypted", format!("{library} ({file})")),
            TlsVisibility::NotDecrypted { library, reason } => {
                ("NOT DECRYPTED", format!("{library}: {reason}"))
            }
            TlsVisibility::NoTlsLibrary => {
                ("no TLS library", "plaintext is seen; unknown TLS is not".to_owned())
            }
        };
        let _ = writeln!(
            out,
            "{:<8} {:<16} {:<14} {:<5} {:<15} {detail}",
            v.pid, v.process, ports, v.connections, status
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_compiled_in_tls_stacks() {
        let one = |b: &[u8]| classify_executable(&[b]).map(|b| b.library);
        // Go programs are `go_tls`'s to classify (from their sections, not their bytes).
        let go =
            classify_executable(&[b"..\xff Go buildinf:..", b"runtime.main..crypto/tls.(*Conn).Write.."]);
        assert_eq!(go, None);
        // A Go program without TLS, whose runtime mentions OpenSSL in a string, is not blind.
        assert_eq!(one(b"\xff Go buildinf: net/http OpenSSL 3.0"), None);
        let rust = b"panicked at /root/.cargo/registry/src/index.crates.io/rustls-0.23.31/src/conn.rs";
        assert_eq!(one(rust), Some("rustls"));
        assert_eq!(one(b"..OpenSSL 3.0.15 3 Sep 2024.."), Some("OpenSSL/BoringSSL (static)"));
        assert_eq!(one(b"plain program"), None);
        // Section reading on real files (not this test binary: it holds the markers as literals).
        // node carries OpenSSL's version string in its read-only data; ls carries no TLS.
        if let Ok(node) = fs::File::open("/usr/bin/node") {
            assert_eq!(classify_file(&node).map(|b| b.library), Some("OpenSSL/BoringSSL (static)"));
        }
        assert_eq!(classify_file(&fs::File::open("/bin/ls").unwrap()), None);
        assert_eq!(classify_file(&fs::File::open("/proc/self/status").unwrap()), None);
    }

    #[test]
    fn this_test_process_is_listed_with_its_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let all = Scanner::default().scan();
        let me = all.iter().find(|v| v.pid == std::process::id()).expect("own process listed");
        assert!(me.listening.contains(&port), "{me:?}");
        assert!(render_table(&all).contains(&port.to_string()));
    }
}
