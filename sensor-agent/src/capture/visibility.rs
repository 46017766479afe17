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
    container,
    elf_read::ElfRead,
    go_tls, procinfo, rustls_symbols,
    tls_libs::{TlsLibrary, probe_points},
};

/// What the sensor makes of one process's TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TlsVisibility {
    /// Its TLS library is probed: HTTPS is reported in plaintext.
    Decrypted {
        library: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        file: String,
    },
    /// It has TLS the sensor cannot read.
    NotDecrypted {
        library: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        reason: &'static str,
    },
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
    let read = ElfRead::new(file).ok()?;
    let Ok(elf) = object::File::parse(&read) else { return None };
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
            object::ReadRef::read_bytes_at(&read, start, len as u64).ok()
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
    versions: HashMap<(u64, u64, VersionedStack), Option<String>>,
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
        let tls = self.tls_of(pid, exe.as_deref());
        let tls = self.with_version(tls, pid, exe.as_deref());
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        Some(ProcessVisibility {
            pid,
            process: procinfo::comm(pid).unwrap_or_default(),
            container_id: container::identify(&cgroup).map(|c| c.id),
            listening,
            connections,
            tls,
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
                return TlsVisibility::Decrypted {
                    library: library.as_str(),
                    version: None,
                    file: (*path).to_owned(),
                };
            }
            stripped = Some(library);
        }
        if let Some(exe) = exe {
            let host_path = root.join(exe.trim_start_matches('/'));
            if self.has_probe_points(&host_path) {
                return TlsVisibility::Decrypted {
                    library: "OpenSSL (built in)",
                    version: None,
                    file: exe.to_owned(),
                };
            }
            match self.compiled_tls(&host_path) {
                Some((library, Ok(()))) => {
                    return TlsVisibility::Decrypted { library, version: None, file: exe.to_owned() };
                }
                Some((library, Err(reason))) => {
                    return TlsVisibility::NotDecrypted { library, version: None, reason };
                }
                None => {}
            }
            if let Some(blind) = self.executable(&host_path) {
                return TlsVisibility::NotDecrypted {
                    library: blind.library,
                    version: None,
                    reason: blind.reason,
                };
            }
        }
        if paths.iter().any(|p| p.ends_with("/libjvm.so")) {
            return TlsVisibility::NotDecrypted {
                library: "Java JSSE",
                version: None,
                reason: "Java's TLS runs as JVM code, with no native function to probe",
            };
        }
        if let Some(library) = stripped {
            return TlsVisibility::NotDecrypted {
                library: library.as_str(),
                version: None,
                reason: "its library has no symbols for the read/write functions (stripped)",
            };
        }
        TlsVisibility::NoTlsLibrary
    }

    /// `tls` with the version of its library, read from the file that carries it: OpenSSL's
    /// from `libcrypto` beside a `libssl` (which holds no version string) or from the program
    /// it is built into, GnuTLS's from its library, Go's and rustls's from the program.
    fn with_version(&mut self, mut tls: TlsVisibility, pid: u32, exe: Option<&str>) -> TlsVisibility {
        let (library, version, file) = match &mut tls {
            TlsVisibility::Decrypted { library, version, file } => (*library, version, Some(file.as_str())),
            TlsVisibility::NotDecrypted { library, version, .. } => (*library, version, None),
            TlsVisibility::NoTlsLibrary => return tls,
        };
        let Some(stack) = VersionedStack::of(library) else { return tls };
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let carrier = match (stack, file) {
            (VersionedStack::OpenSsl, Some(f)) if is_libssl(f) => libcrypto_beside(pid, f),
            (VersionedStack::OpenSsl | VersionedStack::GnuTls, Some(f)) => Some(f.to_owned()),
            _ => exe.map(str::to_owned),
        };
        let Some(carrier) = carrier else { return tls };
        let path = root.join(carrier.trim_start_matches('/'));
        let Ok(f) = fs::File::open(&path) else { return tls };
        let Ok(meta) = f.metadata() else { return tls };
        version.clone_from(
            self.versions
                .entry((meta.dev(), meta.ino(), stack))
                .or_insert_with(|| version_in_file(stack, &f)),
        );
        tls
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
            let read = ElfRead::new(&file).ok()?;
            let elf = object::File::parse(&read).ok()?;
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

/// TLS stacks whose version the inventory reads from their files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum VersionedStack {
    OpenSsl,
    GnuTls,
    Go,
    Rustls,
}

impl VersionedStack {
    fn of(library: &str) -> Option<VersionedStack> {
        if library.starts_with("OpenSSL") {
            Some(VersionedStack::OpenSsl)
        } else if library == "GnuTLS" {
            Some(VersionedStack::GnuTls)
        } else if library == GO_TLS {
            Some(VersionedStack::Go)
        } else if library == RUSTLS {
            Some(VersionedStack::Rustls)
        } else {
            None
        }
    }

    /// The pattern of its version string; group 1 is the version.
    fn pattern(self) -> &'static str {
        match self {
            // `OpenSSL 3.0.19 27 Jan 2026` (OpenSSL_version's text), also in BoringSSL-free builds.
            VersionedStack::OpenSsl => r"OpenSSL (\d+\.\d+\.\d+[a-z]?)",
            VersionedStack::GnuTls => r"GnuTLS (\d+\.\d+\.\d+)",
            // The toolchain version at the start of `.go.buildinfo`.
            VersionedStack::Go => r"go(1\.\d+(?:\.\d+)?)",
            // Crate paths in panic locations: `/rustls-0.23.46/src/...`.
            VersionedStack::Rustls => r"/rustls-(\d+\.\d+\.\d+)/",
        }
    }
}

fn is_libssl(file: &str) -> bool {
    Path::new(file).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libssl"))
}

/// The `libcrypto` the process maps from the directory of its `libssl`.
fn libcrypto_beside(pid: u32, libssl: &str) -> Option<String> {
    let dir = Path::new(libssl).parent()?;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find_map(|p| {
        let path = Path::new(p);
        let crypto = path.file_name()?.to_str()?.starts_with("libcrypto");
        (crypto && path.parent() == Some(dir)).then(|| p.to_owned())
    })
}

/// The version(s) of `stack` in the file's read-only data (its build info for Go); several
/// distinct ones (two rustls versions linked in) are joined.
fn version_in_file(stack: VersionedStack, file: &fs::File) -> Option<String> {
    use object::{Object as _, ObjectSection as _};
    let read = ElfRead::new(file).ok()?;
    let elf = object::File::parse(&read).ok()?;
    let sections: &[&str] = if stack == VersionedStack::Go { &[".go.buildinfo"] } else { &[".rodata"] };
    let parts: Vec<&[u8]> = elf
        .sections()
        .filter(|s| s.name().is_ok_and(|n| sections.contains(&n)))
        .filter_map(|s| s.data().ok())
        .collect();
    versions_in(stack, &parts)
}

fn versions_in(stack: VersionedStack, parts: &[&[u8]]) -> Option<String> {
    let re = regex::bytes::Regex::new(stack.pattern()).ok()?;
    let mut found: Vec<String> = Vec::new();
    for part in parts {
        for c in re.captures_iter(part).take(64) {
            let v = String::from_utf8_lossy(&c[1]).into_owned();
            if !found.contains(&v) {
                found.push(v);
            }
        }
        // Go's build info names the toolchain first; later matches are module versions.
        if stack == VersionedStack::Go && !found.is_empty() {
            break;
        }
    }
    if stack == VersionedStack::Go {
        found.truncate(1);
    }
    (!found.is_empty()).then(|| found.join(", "))
}

fn shown_version(version: Option<&str>) -> String {
    version.map(|v| format!(" {v}")).unwrap_or_default()
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
            TlsVisibility::Decrypted { library, version, file } => {
                ("decrypted", format!("{library}{} ({file})", shown_version(version.as_deref())))
            }
            TlsVisibility::NotDecrypted { library, version, reason } => {
                ("NOT DECRYPTED", format!("{library}{}: {reason}", shown_version(version.as_deref())))
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
        match fs::File::open("/usr/bin/node") {
            Ok(node) => {
                assert_eq!(classify_file(&node).map(|b| b.library), Some("OpenSSL/BoringSSL (static)"));
            }
            Err(_) => crate::capture::missing_tool("/usr/bin/node"),
        }
        assert_eq!(classify_file(&fs::File::open("/bin/ls").unwrap()), None);
        assert_eq!(classify_file(&fs::File::open("/proc/self/status").unwrap()), None);
    }

    #[test]
    fn reads_versions_from_library_bytes() {
        let v = |stack, bytes: &[u8]| versions_in(stack, &[bytes]);
        assert_eq!(v(VersionedStack::OpenSsl, b"..OpenSSL 3.0.19 27 Jan 2026.."), Some("3.0.19".into()));
        assert_eq!(v(VersionedStack::OpenSsl, b"OpenSSL 1.1.1w  11 Sep 2023"), Some("1.1.1w".into()));
        assert_eq!(v(VersionedStack::GnuTls, b"Enabled GnuTLS 3.7.9 logging..."), Some("3.7.9".into()));
        assert_eq!(
            v(VersionedStack::Rustls, b"/src/rustls-0.23.46/src/conn.rs../tokio-rustls-0.26.6/src/lib.rs"),
            Some("0.23.46".into())
        );
        assert_eq!(
            v(
                VersionedStack::Rustls,
                b"/rustls-0.21.12/src/a.rs /rustls-0.23.46/src/b.rs /rustls-0.21.12/x/"
            ),
            Some("0.21.12, 0.23.46".into())
        );
        assert_eq!(
            v(VersionedStack::Go, b"\xff Go buildinf:\x08\x02..\x08go1.19.8\x00go1.20"),
            Some("1.19.8".into())
        );
        assert_eq!(v(VersionedStack::OpenSsl, b"no version here"), None);
        // A real system library, when there is one.
        if let Ok(f) = fs::File::open("/usr/lib/x86_64-linux-gnu/libcrypto.so.3") {
            assert!(version_in_file(VersionedStack::OpenSsl, &f).is_some_and(|v| v.starts_with('3')));
        }
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
