//! Where to probe a Go program's `crypto/tls`: the entry and every RET of `(*Conn).Read` and
//! `(*Conn).Write` (the kernel side, `sensor-ebpf/src/go_tls.rs`, says why RETs and not a
//! uretprobe).
//!
//! **In:** an executable's bytes (mapped). **Out:** file offsets for the uprobes, or why there
//! are none. A Go program is one with a `.go.buildinfo` section that starts with Go's magic;
//! functions come from `.symtab` when the program has one, else from `.gopclntab`, which
//! survives stripping. Only amd64 programs of Go 1.18+ (register ABI, known table layout) are
//! probed.
use iced_x86::{Decoder, DecoderOptions, Mnemonic};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use thiserror::Error;

use super::gopclntab::{PclntabError, Table};

/// `(function, entry program)`; every RET gets [`RETURN_PROGRAM`].
pub const FUNCTIONS: [(&str, &str); 2] =
    [("crypto/tls.(*Conn).Read", "go_tls_read_enter"), ("crypto/tls.(*Conn).Write", "go_tls_write_enter")];
pub const RETURN_PROGRAM: &str = "go_tls_return";

/// What the kernel programs read from Go's structures, set as their globals at load time:
/// `tls.Conn.conn` (an interface: itab, then data) and `netFD.pfd.Sysfd` (after `fdMutex`).
/// Unchanged from Go 1.18 through 1.23.
pub const GO_TLS_CONN_DATA: u64 = 8;
pub const GO_NETFD_SYSFD: u64 = 16;

const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";
/// A Read or Write bigger than this is not Go's (and would make the decode walk long).
const MAX_FUNCTION: u64 = 1 << 20;

/// One function to probe: file offsets of its entry and of each RET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFunction {
    pub name: &'static str,
    pub entry_program: &'static str,
    pub entry: u64,
    pub returns: Vec<u64>,
}

/// A Go program with `crypto/tls` that cannot be probed, and why.
#[derive(Debug, Error)]
pub enum GoTlsError {
    #[error("not an x86-64 program (only the amd64 register ABI is probed)")]
    Architecture,
    #[error("no function table (.gopclntab) and no symbol table")]
    NoTable,
    #[error("its function table cannot be read")]
    Table(#[from] PclntabError),
    #[error("{0} not found (inlined away, or an unusual build)")]
    Missing(&'static str),
    #[error("{0} lies outside the file's code")]
    Outside(&'static str),
    #[error("{0} has no RET instruction to probe")]
    NoReturn(&'static str),
}

impl GoTlsError {
    /// A fixed sentence for the blind-spot inventory.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            GoTlsError::Architecture => "only x86-64 Go programs are probed",
            GoTlsError::NoTable => "the program has neither a symbol table nor Go's function table",
            GoTlsError::Table(PclntabError::TooOld) => {
                "built with Go 1.17 or older (stack calling convention or unsupported table); Go 1.18+ is probed"
            }
            GoTlsError::Table(_) => "Go's function table (.gopclntab) could not be read",
            GoTlsError::Missing(_) => {
                "crypto/tls.(*Conn).Read/Write not found in the program (inlined away or an unusual build)"
            }
            GoTlsError::Outside(_) | GoTlsError::NoReturn(_) => {
                "crypto/tls.(*Conn).Read/Write could not be disassembled"
            }
        }
    }
}

/// Whether `elf` is a Go program: Go's linker writes `.go.buildinfo`, starting with its magic.
#[must_use]
pub fn is_go<'d, R: object::ReadRef<'d>>(elf: &object::File<'d, R>) -> bool {
    elf.section_by_name(".go.buildinfo")
        .and_then(|s| s.data().ok())
        .is_some_and(|d| d.starts_with(BUILDINFO_MAGIC))
}

/// Probe points of a Go program's TLS; `None` when `elf` is not a Go program using `crypto/tls`.
#[must_use]
pub fn probe_points<'d, R: object::ReadRef<'d>>(
    elf: &object::File<'d, R>,
) -> Option<Result<Vec<GoFunction>, GoTlsError>> {
    if !is_go(elf) {
        return None;
    }
    let ranges = match function_ranges(elf) {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    if elf.architecture() != object::Architecture::X86_64 {
        return Some(Err(GoTlsError::Architecture));
    }
    Some(
        FUNCTIONS
            .iter()
            .zip(ranges)
            .map(|(&(name, entry_program), range)| {
                let (start, end) = range.ok_or(GoTlsError::Missing(name))?;
                locate(elf, name, entry_program, start, end)
            })
            .collect(),
    )
}

/// `[start, end)` of each of [`FUNCTIONS`]; `None` when the program has no `crypto/tls` at all.
type Ranges = [Option<(u64, u64)>; 2];

fn function_ranges<'d, R: object::ReadRef<'d>>(
    elf: &object::File<'d, R>,
) -> Result<Option<Ranges>, GoTlsError> {
    let mut found: Ranges = [None; 2];
    let mut tls_package = false;
    let mut from_symbols = false;
    for sym in elf.symbols() {
        let Ok(name) = sym.name() else { continue };
        from_symbols = true;
        tls_package |= name.starts_with("crypto/tls.");
        if let Some(i) = FUNCTIONS.iter().position(|(f, _)| *f == name)
            && sym.size() > 0
        {
            found[i] = Some((sym.address(), sym.address() + sym.size()));
        }
    }
    if found.iter().all(Option::is_some) {
        return Ok(Some(found));
    }
    // Stripped (or symbols without sizes): Go's own table.
    let pclntab = elf.section_by_name(".gopclntab").and_then(|s| s.data().ok());
    let Some(pclntab) = pclntab else {
        return if from_symbols { Ok(tls_package.then_some(found)) } else { Err(GoTlsError::NoTable) };
    };
    let table = Table::parse(pclntab)?;
    for f in table.functions() {
        tls_package |= f.name.starts_with(b"crypto/tls.");
        if let Some(i) = FUNCTIONS.iter().position(|(n, _)| n.as_bytes() == f.name) {
            found[i] = Some((f.start, f.end));
        }
    }
    Ok(tls_package.then_some(found))
}

/// File offsets of the function at `[start, end)`: its entry and each RET.
fn locate<'d, R: object::ReadRef<'d>>(
    elf: &object::File<'d, R>,
    name: &'static str,
    entry_program: &'static str,
    start: u64,
    end: u64,
) -> Result<GoFunction, GoTlsError> {
    let outside = || GoTlsError::Outside(name);
    if end <= start || end - start > MAX_FUNCTION {
        return Err(outside());
    }
    let section = elf
        .sections()
        .find(|s| s.address() <= start && end <= s.address().saturating_add(s.size()))
        .ok_or_else(outside)?;
    let (file_start, _) = section.file_range().ok_or_else(outside)?;
    let data = section.data().map_err(|_| outside())?;
    let from = usize::try_from(start - section.address()).map_err(|_| outside())?;
    let to = usize::try_from(end - section.address()).map_err(|_| outside())?;
    let code = data.get(from..to).ok_or_else(outside)?;
    let returns: Vec<u64> =
        rets(code, start).into_iter().map(|at| at - section.address() + file_start).collect();
    if returns.is_empty() {
        return Err(GoTlsError::NoReturn(name));
    }
    Ok(GoFunction { name, entry_program, entry: start - section.address() + file_start, returns })
}

/// Addresses of the RET instructions in `code` (loaded at `address`), decoding linearly: Go
/// puts no data in its functions, only INT3 padding after them.
#[must_use]
pub fn rets(code: &[u8], address: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut found = Vec::new();
    while decoder.can_decode() {
        let insn = decoder.decode();
        if insn.mnemonic() == Mnemonic::Ret {
            found.push(insn.ip());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::{path::Path, process::Command};

    use super::*;

    #[test]
    fn finds_rets_and_skips_bytes_that_only_contain_c3() {
        // mov eax, 0xc3; ret; int3; ret imm16; nop
        let code = [0xb8, 0xc3, 0, 0, 0, 0xc3, 0xcc, 0xc2, 0x08, 0x00, 0x90];
        assert_eq!(rets(&code, 0x1000), [0x1005, 0x1007]);
        assert!(rets(&[], 0).is_empty());
    }

    /// Builds a small Go HTTPS client in `dir` (normal and stripped); `None` without `go`.
    fn build_go_client(dir: &Path) -> Option<[std::path::PathBuf; 2]> {
        if Command::new("go").arg("version").output().is_err() {
            crate::capture::missing_tool("go (golang-go)");
            return None;
        }
        std::fs::write(dir.join("go.mod"), "module probe\ngo 1.18\n").unwrap();
        std::fs::write(
            dir.join("main.go"),
            "package main\nimport (\"crypto/tls\"; \"os\")\nfunc main() {\n\
             c, err := tls.Dial(\"tcp\", os.Args[1], &tls.Config{InsecureSkipVerify: true})\n\
             if err != nil { os.Exit(1) }\nc.Write([]byte(\"x\")); b := make([]byte, 9); c.Read(b)\n}\n",
        )
        .unwrap();
        let mut out = Vec::new();
        for (name, flags) in [("plain", ""), ("stripped", "-s -w")] {
            let bin = dir.join(name);
            let status = Command::new("go")
                .current_dir(dir)
                .args(["build", "-o"])
                .arg(&bin)
                .arg(format!("-ldflags={flags}"))
                .env("GOPATH", dir.join("gopath"))
                .env("GOCACHE", dir.join("gocache"))
                .env("GOFLAGS", "-mod=mod")
                .status()
                .unwrap();
            assert!(status.success(), "go build {name}");
            out.push(bin);
        }
        out.try_into().ok()
    }

    #[test]
    fn probes_a_real_go_program_with_and_without_symbols() {
        let dir = tempfile_dir();
        let Some(bins) = build_go_client(&dir) else { return };
        let mut seen = Vec::new();
        for bin in &bins {
            let bytes = std::fs::read(bin).unwrap();
            let elf = object::File::parse(&*bytes).unwrap();
            assert!(is_go(&elf));
            let funcs = probe_points(&elf).expect("a Go program with crypto/tls").unwrap();
            assert_eq!(funcs.len(), 2);
            for f in &funcs {
                // The entry is the function's first byte and each return point is a RET.
                assert!(f.entry > 0 && (f.entry as usize) < bytes.len(), "{f:?}");
                assert!(!f.returns.is_empty(), "{f:?}");
                for r in &f.returns {
                    assert!(*r > f.entry, "{f:?}");
                    assert!(matches!(bytes[*r as usize], 0xc3 | 0xc2), "{f:?}");
                }
            }
            seen.push(funcs);
        }
        // .symtab and .gopclntab agree.
        assert_eq!(seen[0], seen[1]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn other_programs_are_not_go() {
        let bytes = std::fs::read("/proc/self/exe").unwrap();
        let elf = object::File::parse(&*bytes).unwrap();
        assert!(probe_points(&elf).is_none());
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("apisense-gotls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
