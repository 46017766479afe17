//! Finding the TLS code on this host and probing it: every OpenSSL/BoringSSL `libssl`, GnuTLS
//! `libgnutls` and NSS `libnspr4` mapped by a process (and the system's own), and executables that
//! carry one of them statically and export its API (node), and Go programs (their built-in
//! `crypto/tls`, see [`super::go_tls`]). Each library *file* is probed once (by device and inode) for all processes; paths go
//! through `/proc/PID/root` so libraries inside containers are found. Libraries only seen inside
//! a container are detached when the last process that mapped them exits.
//!
//! Nothing here is fatal: a stripped library, a process gone before it could be read, a probe
//! the kernel refuses are each logged once and counted.
use std::{
    collections::{HashMap, HashSet},
    fs,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{Ebpf, programs::UProbe};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use super::{
    elf_read::ElfRead,
    go_tls,
    loader::LoadError,
    procinfo, rustls_symbols,
    uprobe_link::{AttachPath, UprobeLink, UprobeLinker},
    visibility,
};

/// `(symbol, entry program)`; every symbol also gets the shared return program. The kernel side
/// only needs `(session, buffer, length) -> bytes or negative`, which GnuTLS's record functions
/// and NSPR's I/O functions share with OpenSSL's plain ones (their `ssize_t`/`PRInt32` results
/// fit the `int` the return probe reads for any single call).
const SYMBOLS: [(&str, &str); 10] = [
    ("SSL_read", "ssl_read_enter"),
    ("SSL_read_ex", "ssl_read_ex_enter"),
    ("SSL_write", "ssl_write_enter"),
    ("SSL_write_ex", "ssl_write_ex_enter"),
    ("gnutls_record_recv", "ssl_read_enter"),
    ("gnutls_record_send", "ssl_write_enter"),
    // NSS's TLS is an NSPR I/O layer: the application's PR_* call on the SSL descriptor carries
    // plaintext; the layer below reaches the socket through method tables, not these symbols.
    ("PR_Read", "ssl_read_enter"),
    ("PR_Recv", "ssl_read_enter"),
    ("PR_Write", "ssl_write_enter"),
    ("PR_Send", "ssl_write_enter"),
];
const RETURN_PROGRAM: &str = "ssl_return";

/// Where distributions keep shared libraries: probed at start so that a client started later
/// is covered from its first call.
const SYSTEM_LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/ssl/lib",
];

/// Where the host keeps programs: large executables there are checked at start for a built-in
/// TLS library (node), so that a short-lived client does not race the probe on its first exec.
const SYSTEM_BIN_DIRS: &[&str] =
    &["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin", "/sbin"];
/// A TLS library alone is a few MiB: smaller executables cannot carry one and are not opened.
const MIN_STATIC_TLS_EXECUTABLE: u64 = 4 << 20;

/// Programs smaller than this carry no TLS stack worth reporting as blind (and are not read).
const MIN_BLIND_EXECUTABLE: u64 = 1 << 20;

/// After an exec, libraries appear as the dynamic loader (or a later dlopen) maps them.
const RESCAN_DELAYS: [Duration; 3] =
    [Duration::from_millis(50), Duration::from_millis(500), Duration::from_secs(3)];
const FULL_RESCAN: Duration = Duration::from_secs(30);
/// Processes a periodic rescan reads per tick: spread over ticks, a host with thousands of
/// processes never holds up the capture loop (which shares the thread) for long.
const RESCAN_PER_TICK: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
}

struct Library {
    /// The path as the process that mapped it sees it (for reports).
    path: String,
    symbols: Vec<&'static str>,
    /// `(program, link)` pairs to detach.
    links: Links,
    users: HashSet<u32>,
    /// Found on the host's own filesystem: kept for future processes even with no users.
    pinned: bool,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct TlsStats {
    pub libraries_attached: u64,
    pub libraries_detached: u64,
    pub libraries_without_symbols: u64,
    pub attach_failures: u64,
    pub processes_gone: u64,
    /// Programs seen whose TLS cannot be probed (Go, rustls, static OpenSSL, Java).
    pub blind_executables: u64,
}

pub struct TlsAttacher {
    libs: HashMap<FileId, Library>,
    /// Files checked and found not probeable (no symbols, or the kernel refused): never retried.
    rejected: HashSet<FileId>,
    /// JVM libraries already reported as blind.
    blind_files: HashSet<FileId>,
    blind_checker: std::sync::mpsc::SyncSender<BlindCheck>,
    /// Programs the checker thread found blind.
    blind_programs: std::sync::Arc<std::sync::atomic::AtomicU64>,
    rescans: Vec<(Instant, u32, usize)>,
    last_full_scan: Instant,
    /// Processes the current periodic rescan has yet to read.
    rescan_queue: Vec<u32>,
    linker: UprobeLinker,
    pub stats: TlsStats,
}

/// Loads the TLS programs into the kernel (verifier) without attaching them anywhere.
pub fn load_programs(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let mut names: Vec<&'static str> = SYMBOLS
        .iter()
        .map(|(_, p)| *p)
        .chain([RETURN_PROGRAM])
        .chain(go_tls::FUNCTIONS.iter().map(|(_, p)| *p))
        .chain([go_tls::RETURN_PROGRAM])
        .chain(rustls_symbols::FUNCTIONS.iter().map(|f| f.entry_program))
        .chain([rustls_symbols::RETURN_PROGRAM])
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        uprobe(ebpf, name)?.load().map_err(|source| LoadError::Program { name, source })?;
    }
    Ok(())
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut UProbe, LoadError> {
    ebpf.program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoadError::Program { name, source })
}

impl TlsAttacher {
    #[must_use]
    pub fn new() -> Self {
        let (blind_checker, blind_programs) = spawn_blind_checker();
        // The agent's own binary (it links rustls for its Kubernetes and OTLP clients): its
        // probes would fire in every agent on the host and be filtered out only in the kernel.
        let own = fs::metadata("/proc/self/exe").map(|m| FileId { dev: m.dev(), ino: m.ino() });
        TlsAttacher {
            libs: HashMap::new(),
            rejected: own.into_iter().collect(),
            blind_files: HashSet::new(),
            blind_checker,
            blind_programs,
            rescans: Vec::new(),
            last_full_scan: Instant::now(),
            rescan_queue: Vec::new(),
            linker: UprobeLinker::new(),
            stats: TlsStats::default(),
        }
    }

    /// Probes the system's TLS libraries, large system executables with a TLS library built
    /// in, and everything running processes map.
    pub fn scan_host(&mut self, ebpf: &mut Ebpf) {
        for dir in SYSTEM_LIB_DIRS {
            let Ok(entries) = fs::read_dir(dir) else { continue };
            for entry in entries.filter_map(Result::ok) {
                // `libssl.so` is usually a symlink to `libssl.so.3`: report the real file.
                let path = fs::canonicalize(entry.path()).unwrap_or_else(|_| entry.path());
                if is_tls_library(&path) {
                    self.consider(ebpf, &path, &path.to_string_lossy(), None, true);
                }
            }
        }
        for dir in SYSTEM_BIN_DIRS {
            let Ok(entries) = fs::read_dir(dir) else { continue };
            for entry in entries.filter_map(Result::ok) {
                let Ok(path) = fs::canonicalize(entry.path()) else { continue };
                let big_file =
                    fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() >= MIN_STATIC_TLS_EXECUTABLE);
                if big_file && !is_go_program(&path) {
                    self.consider(ebpf, &path, &path.to_string_lossy(), None, true);
                }
            }
        }
        self.scan_all_processes(ebpf);
        self.last_full_scan = Instant::now();
    }

    /// How uprobes are attached in this run (the PMU until the kernel refuses it).
    #[must_use]
    pub fn attach_path(&self) -> AttachPath {
        self.linker.path()
    }

    /// Libraries currently probed, for the log.
    #[must_use]
    pub fn describe(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.libs.values().map(|l| format!("{} [{}]", l.path, l.symbols.join(","))).collect();
        v.sort();
        v
    }

    /// A process just replaced its image. Its executable is checked at once, before the program
    /// gets far enough to call TLS (node needs tens of milliseconds), its libraries a little
    /// later, as the dynamic loader and any `dlopen` map them.
    pub fn on_exec(&mut self, ebpf: &mut Ebpf, tgid: u32) {
        if !self.scan_process(ebpf, tgid) {
            self.stats.processes_gone += 1;
            return;
        }
        self.rescans.push((Instant::now() + RESCAN_DELAYS[0], tgid, 1));
    }

    pub fn on_exit(&mut self, ebpf: &mut Ebpf, tgid: u32) {
        self.rescans.retain(|(_, pid, _)| *pid != tgid);
        let mut orphaned = Vec::new();
        for (id, lib) in &mut self.libs {
            if lib.users.remove(&tgid) && lib.users.is_empty() && !lib.pinned {
                orphaned.push(*id);
            }
        }
        for id in orphaned {
            if let Some(lib) = self.libs.remove(&id) {
                detach(ebpf, lib.links);
                self.stats.libraries_detached += 1;
                log::info!("TLS probes detached from {} (no process maps it any more)", lib.path);
            }
        }
    }

    /// Runs due rescans of new processes, and a periodic full rescan for late `dlopen`s.
    pub fn tick(&mut self, ebpf: &mut Ebpf) {
        self.stats.blind_executables =
            self.blind_programs.load(std::sync::atomic::Ordering::Relaxed) + self.blind_files.len() as u64;
        let now = Instant::now();
        let due: Vec<(Instant, u32, usize)> =
            self.rescans.iter().copied().filter(|(at, _, _)| *at <= now).collect();
        self.rescans.retain(|(at, _, _)| *at > now);
        for (_, pid, attempt) in due {
            if !self.scan_process(ebpf, pid) {
                self.stats.processes_gone += 1;
                continue;
            }
            if let Some(delay) = RESCAN_DELAYS.get(attempt) {
                self.rescans.push((now + *delay, pid, attempt + 1));
            }
        }
        if self.rescan_queue.is_empty() && now.duration_since(self.last_full_scan) > FULL_RESCAN {
            self.rescan_queue = other_processes();
            self.last_full_scan = now;
        }
        let batch = self.rescan_queue.len().min(RESCAN_PER_TICK);
        for pid in self.rescan_queue.drain(..batch).collect::<Vec<_>>() {
            self.scan_process(ebpf, pid);
        }
    }

    fn scan_all_processes(&mut self, ebpf: &mut Ebpf) {
        for pid in other_processes() {
            self.scan_process(ebpf, pid);
        }
    }

    /// Checks one process's executable and mapped libraries; false if the process is gone.
    fn scan_process(&mut self, ebpf: &mut Ebpf, pid: u32) -> bool {
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return false;
        };
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let mut seen = HashSet::new();
        let mut probed = false;
        for path in maps.lines().filter_map(|l| l.split_whitespace().nth(5)).filter(|p| p.starts_with('/')) {
            if !seen.insert(path) {
                continue;
            }
            if path.ends_with("/libjvm.so") {
                self.note_jvm(&root.join(path.trim_start_matches('/')), pid);
            }
            let library = is_tls_library(Path::new(path));
            let executable =
                !library && fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == Path::new(path));
            if library || executable {
                let host_path = root.join(path.trim_start_matches('/'));
                probed |= self.consider(ebpf, &host_path, path, Some(pid), false);
            }
        }
        if !probed {
            self.note_blind_program(pid, &root);
        }
        true
    }

    /// A program with no probed TLS: handed to the blind-spot checker thread, which says once,
    /// by executable, if it holds TCP sockets and carries a TLS stack the sensor cannot read.
    /// Reading a program's data sections takes a while: never on the capture loop.
    fn note_blind_program(&mut self, pid: u32, root: &Path) {
        let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) else { return };
        let Ok(file) = fs::File::open(root.join(exe.strip_prefix("/").unwrap_or(&exe))) else { return };
        let Ok(meta) = file.metadata() else { return };
        let id = FileId { dev: meta.dev(), ino: meta.ino() };
        if meta.len() < MIN_BLIND_EXECUTABLE || self.blind_files.contains(&id) {
            return;
        }
        // A full queue drops the request: the next rescan asks again.
        let _ = self.blind_checker.try_send(BlindCheck { pid, exe, file, id });
    }

    /// A JVM's TLS (JSSE) is Java code: nothing native to probe. Said once per JVM installation.
    fn note_jvm(&mut self, libjvm: &Path, pid: u32) {
        let Ok(meta) = fs::metadata(libjvm) else { return };
        if self.blind_files.insert(FileId { dev: meta.dev(), ino: meta.ino() }) {
            log::warn!(
                "pid {pid} runs a JVM ({}): Java's TLS (JSSE) has no native function to probe; its TLS traffic \
                 is not visible (see `apisense status`)",
                libjvm.display()
            );
        }
    }

    /// Probes the file at `host_path` unless it already is (or cannot be).
    ///
    /// The file is opened once and everything after goes through that descriptor: a process that
    /// exits meanwhile takes its `/proc/PID/root` path with it, but not an open file.
    fn consider(
        &mut self,
        ebpf: &mut Ebpf,
        host_path: &Path,
        shown: &str,
        pid: Option<u32>,
        pinned: bool,
    ) -> bool {
        let Ok(file) = fs::File::open(host_path) else { return false };
        let Ok(meta) = file.metadata() else { return false };
        let id = FileId { dev: meta.dev(), ino: meta.ino() };
        if let Some(lib) = self.libs.get_mut(&id) {
            lib.users.extend(pid);
            return true;
        }
        if self.rejected.contains(&id) {
            return false;
        }
        let plan = match plan(&file) {
            Ok(Found::Probes(plan)) => plan,
            Ok(Found::Blind { library, error, reason }) => {
                self.rejected.insert(id);
                if pid.is_some() {
                    self.stats.blind_executables += 1;
                    log::warn!(
                        "{shown}: {library} cannot be probed: {error} ({reason}); its TLS traffic is not visible"
                    );
                }
                return false;
            }
            Ok(Found::Nothing) => {
                self.rejected.insert(id);
                if is_tls_library(Path::new(shown)) {
                    self.stats.libraries_without_symbols += 1;
                    log::warn!(
                        "{shown}: none of the TLS read/write symbols (stripped?); its TLS traffic is not visible"
                    );
                }
                return false;
            }
            Err(e) => {
                self.rejected.insert(id);
                log::debug!("{shown}: not an ELF file we can read: {e}");
                return false;
            }
        };
        // Host files are pinned: a process started later maps the same inode.
        let pinned = pinned || fs::metadata(shown).is_ok_and(|m| m.dev() == id.dev && m.ino() == id.ino);
        let Plan { symbols, attachments } = plan;
        match attach(ebpf, &mut self.linker, &file, &attachments) {
            Ok(links) => {
                self.stats.libraries_attached += 1;
                log::info!("TLS probes attached to {shown} ({})", symbols.join(", "));
                let users = pid.into_iter().collect();
                self.libs.insert(id, Library { path: shown.to_owned(), symbols, links, users, pinned });
                true
            }
            Err((links, e)) => {
                self.stats.attach_failures += 1;
                self.rejected.insert(id);
                log::warn!(
                    "{shown}: TLS probes could not be attached, its TLS traffic is not visible: {e:#}"
                );
                detach(ebpf, links);
                false
            }
        }
    }
}

/// Every process on the host but the agent.
fn other_processes() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let own = std::process::id();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own)
        .collect()
}

/// A program to check for a TLS stack we cannot read.
struct BlindCheck {
    pid: u32,
    exe: PathBuf,
    file: fs::File,
    id: FileId,
}

/// The blind-spot checker: one low-priority thread, a bounded queue, each executable checked
/// once it holds a TCP socket.
fn spawn_blind_checker()
-> (std::sync::mpsc::SyncSender<BlindCheck>, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<BlindCheck>(64);
    let found = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&found);
    let spawned = std::thread::Builder::new().name("blind-spots".into()).spawn(move || {
        // Lowest CPU priority for this thread only (Linux applies nice values per thread): the
        // check must never compete with the host's work or the capture loop.
        // SAFETY: no pointers; affects the calling thread.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
        let mut checked: HashSet<FileId> = HashSet::new();
        for BlindCheck { pid, exe, file, id } in rx {
            // Checked again at later rescans until the process holds a TCP socket.
            if checked.contains(&id) || !procinfo::has_tcp_socket(pid) {
                continue;
            }
            checked.insert(id);
            if let Some(blind) = visibility::classify_file(&file) {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                log::warn!(
                    "{} (pid {pid}): {}: {}; its TLS traffic is not visible (see `apisense status`)",
                    exe.display(),
                    blind.library,
                    blind.reason
                );
            }
        }
    });
    if let Err(e) = spawned {
        log::warn!("blind-spot checks off: {e}");
    }
    (tx, found)
}

impl Default for TlsAttacher {
    fn default() -> Self {
        Self::new()
    }
}

type Links = Vec<(&'static str, UprobeLink)>;

/// What to attach to one file: `(program, file offset)` pairs, and the functions they cover
/// (for the log).
struct Plan {
    symbols: Vec<&'static str>,
    attachments: Vec<(&'static str, u64)>,
}

/// What a file offers to probe.
enum Found {
    Probes(Plan),
    /// A program with a TLS stack (Go's, rustls) whose functions could not be located.
    Blind {
        library: &'static str,
        error: String,
        reason: &'static str,
    },
    Nothing,
}

/// Exported TLS library functions (entry and uretprobe at each), else rustls's plaintext
/// functions (the same), else a Go program's `crypto/tls` (entry, and a plain uprobe at each RET).
fn plan(file: &fs::File) -> anyhow::Result<Found> {
    let read = ElfRead::new(file)?;
    let elf = object::File::parse(&read)?;
    let points = exported_points(&elf);
    if !points.is_empty() {
        let attachments = points
            .iter()
            .filter_map(|p| SYMBOLS.iter().find(|(s, _)| *s == p.symbol).map(|(_, prog)| (*prog, p.offset)))
            .flat_map(|(prog, offset)| [(prog, offset), (RETURN_PROGRAM, offset)])
            .collect();
        return Ok(Found::Probes(Plan { symbols: points.iter().map(|p| p.symbol).collect(), attachments }));
    }
    match rustls_symbols::probe_points(&elf) {
        None => {}
        Some(Err(e)) => {
            return Ok(Found::Blind { library: "rustls", error: e.to_string(), reason: e.reason() });
        }
        Some(Ok(points)) => {
            return Ok(Found::Probes(Plan {
                symbols: points.iter().map(|p| p.function.name).collect(),
                attachments: points
                    .iter()
                    .flat_map(|p| {
                        std::iter::once((p.function.entry_program, p.offset))
                            .chain(p.function.returns.then_some((rustls_symbols::RETURN_PROGRAM, p.offset)))
                    })
                    .collect(),
            }));
        }
    }
    Ok(match go_tls::probe_points(&elf) {
        None => Found::Nothing,
        Some(Err(e)) => Found::Blind { library: "Go crypto/tls", error: e.to_string(), reason: e.reason() },
        Some(Ok(functions)) => Found::Probes(Plan {
            symbols: functions.iter().map(|f| f.name).collect(),
            attachments: functions
                .iter()
                .flat_map(|f| {
                    std::iter::once((f.entry_program, f.entry))
                        .chain(f.returns.iter().map(|r| (go_tls::RETURN_PROGRAM, *r)))
                })
                .collect(),
        }),
    })
}

/// Attaches each `(program, offset)` to the open `file`; on failure returns what was attached
/// so far. The kernel resolves `/proc/self/fd/N` to the file itself and keeps its inode, so the
/// probes outlive both the descriptor and the path the file was found under.
fn attach(
    ebpf: &mut Ebpf,
    linker: &mut UprobeLinker,
    file: &fs::File,
    attachments: &[(&'static str, u64)],
) -> Result<Links, (Links, anyhow::Error)> {
    let target = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let mut links = Vec::new();
    for &(name, offset) in attachments {
        let result = uprobe(ebpf, name)
            .map_err(anyhow::Error::from)
            .and_then(|p| linker.attach(p, &target, offset).map_err(anyhow::Error::from));
        match result {
            Ok(link) => links.push((name, link)),
            Err(e) => return Err((links, e.context(format!("{name} at offset {offset:#x}")))),
        }
    }
    Ok(links)
}

fn detach(ebpf: &mut Ebpf, links: Links) {
    for (program, link) in links {
        UprobeLinker::detach(uprobe(ebpf, program).ok(), link);
    }
}

/// Go programs in the system directories are not probed at start, only when they run: each
/// costs about twenty probes (every RET of two functions), and the kernel removes uprobes one at
/// a time, each after an RCU grace period under a global mutex (~90 ms on our test hosts), so a
/// host with a dozen Go tools (docker, kubectl, terraform) would make the agent's stop take tens
/// of seconds. The price: a Go client's TLS in the first milliseconds of its first run.
fn is_go_program(path: &Path) -> bool {
    let Ok(file) = fs::File::open(path) else { return false };
    let Ok(read) = ElfRead::new(&file) else { return false };
    object::File::parse(&read).is_ok_and(|elf| go_tls::is_go(&elf))
}

/// TLS libraries apisense probes, by the name of their shared object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsLibrary {
    /// `libssl.so.*` (`OpenSSL` 1.1/3.x), `libssl-<hash>.so` (bundled by Python wheels),
    /// `libboringssl.so`.
    OpenSsl,
    /// `libgnutls.so.*` (wget, gnutls-cli, libcurl-gnutls users).
    GnuTls,
    /// `libnspr4.so` (NSS users: Firefox, Thunderbird, NSS tools).
    Nspr,
}

impl TlsLibrary {
    #[must_use]
    pub fn from_file_name(name: &str) -> Option<TlsLibrary> {
        if !name.contains(".so") {
            return None;
        }
        // NSS's own libssl3.so exports no SSL_read: its plaintext goes through NSPR.
        if name.starts_with("libssl3.so") {
            None
        } else if name.starts_with("libssl.so")
            || name.starts_with("libssl-")
            || name.starts_with("libboringssl")
        {
            Some(TlsLibrary::OpenSsl)
        } else if name.starts_with("libgnutls.so") {
            Some(TlsLibrary::GnuTls)
        } else if name.starts_with("libnspr4.so") {
            Some(TlsLibrary::Nspr)
        } else {
            None
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TlsLibrary::OpenSsl => "OpenSSL",
            TlsLibrary::GnuTls => "GnuTLS",
            TlsLibrary::Nspr => "NSS",
        }
    }
}

fn is_tls_library(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).and_then(TlsLibrary::from_file_name).is_some()
}

/// Where a probe goes: a symbol and its offset in the file (what the kernel's uprobe wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbePoint {
    symbol: &'static str,
    offset: u64,
}

/// The SSL functions the file defines in its dynamic symbol table (what a process can call, and
/// what survives `strip`), with their file offsets.
///
/// The file is mapped, not read: a static node binary is ~100 MB with 75,000 exported names, and
/// reading them one by one took half a second, long enough for a short-lived client to finish
/// its TLS before the probes were in. The map touches only the pages the symbol tables live in
/// and leaves the agent's heap alone.
pub(crate) fn probe_points(file: &fs::File) -> anyhow::Result<Vec<ProbePoint>> {
    let read = ElfRead::new(file)?;
    let elf = object::File::parse(&read)?;
    Ok(exported_points(&elf))
}

/// The SSL functions `elf` exports, sorted by name.
fn exported_points<'d, R: object::ReadRef<'d>>(elf: &object::File<'d, R>) -> Vec<ProbePoint> {
    let mut found: Vec<ProbePoint> = Vec::new();
    for sym in elf.dynamic_symbols() {
        if sym.is_undefined() || !sym.is_definition() {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let Some((symbol, _)) = SYMBOLS.iter().find(|(s, _)| *s == name) else { continue };
        if found.iter().any(|p| p.symbol == *symbol) {
            continue;
        }
        let Some(offset) = file_offset(elf, &sym) else {
            log::debug!("{name} at {:#x} is not in a section backed by the file", sym.address());
            continue;
        };
        found.push(ProbePoint { symbol, offset });
    }
    found.sort_unstable_by_key(|p| p.symbol);
    found
}

/// A symbol's virtual address translated to its offset in the file, through its section.
pub(crate) fn file_offset<'d, R: object::ReadRef<'d>>(
    elf: &object::File<'d, R>,
    sym: &object::Symbol<'d, '_, R>,
) -> Option<u64> {
    let section = elf.section_by_index(sym.section_index()?).ok()?;
    let (start, size) = section.file_range()?;
    let within = sym.address().checked_sub(section.address())?;
    (within < size).then(|| start.checked_add(within)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_library_names() {
        assert!(is_tls_library(Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3")));
        assert!(is_tls_library(Path::new("/lib/libssl.so.1.1")));
        assert!(!is_tls_library(Path::new("/usr/lib/libssl.a")));
        assert!(!is_tls_library(Path::new("/usr/lib/libcrypto.so.3")));
        assert!(is_tls_library(Path::new("/usr/lib/x86_64-linux-gnu/libgnutls.so.30")));
        assert!(is_tls_library(Path::new("/usr/lib/x86_64-linux-gnu/libnspr4.so")));
        assert!(!is_tls_library(Path::new("/usr/lib/x86_64-linux-gnu/libssl3.so")), "NSS's, no SSL_read");
        assert!(!is_tls_library(Path::new("/usr/lib/x86_64-linux-gnu/libgnutls-openssl.so.27")));
    }

    #[test]
    fn reads_exported_symbols_of_a_real_libssl() {
        let Some(lib) = ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3"]
            .iter()
            .find(|p| Path::new(p).exists())
        else {
            crate::capture::missing_tool("libssl.so.3");
            return;
        };
        let points = probe_points(&fs::File::open(lib).unwrap()).unwrap();
        let symbols: Vec<&str> = points.iter().map(|p| p.symbol).collect();
        assert_eq!(symbols, ["SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex"]);
        // Each offset lands inside the file, and the four functions are distinct.
        let len = fs::metadata(lib).unwrap().len();
        assert!(points.iter().all(|p| p.offset > 0 && p.offset < len));
        let mut offsets: Vec<u64> = points.iter().map(|p| p.offset).collect();
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len(), 4);
    }

    #[test]
    fn reads_gnutls_and_nspr_entry_points() {
        for (lib, expect) in [
            ("/usr/lib/x86_64-linux-gnu/libgnutls.so.30", &["gnutls_record_recv", "gnutls_record_send"][..]),
            ("/usr/lib/x86_64-linux-gnu/libnspr4.so", &["PR_Read", "PR_Recv", "PR_Send", "PR_Write"][..]),
        ] {
            let Ok(file) = fs::File::open(lib) else {
                crate::capture::missing_tool(lib);
                continue;
            };
            let symbols: Vec<&str> = probe_points(&file).unwrap().iter().map(|p| p.symbol).collect();
            assert_eq!(symbols, expect, "{lib}");
        }
    }

    #[test]
    fn files_without_symbols_or_not_elf() {
        assert!(probe_points(&fs::File::open("/proc/self/exe").unwrap()).unwrap().is_empty());
        let dir = std::env::temp_dir().join(format!("apisense-tls-{}", std::process::id()));
        fs::write(&dir, b"not an elf file").unwrap();
        assert!(probe_points(&fs::File::open(&dir).unwrap()).is_err());
        let _ = fs::remove_file(&dir);
    }
}
