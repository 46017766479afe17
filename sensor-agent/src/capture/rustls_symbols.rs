//! Where to probe a Rust program's rustls: its plaintext `Reader` and `Writer` functions, found
//! by demangled symbol name (the kernel side, `sensor-ebpf/src/rustls.rs`, says how each call
//! is read and tied to its socket).
//!
//! **In:** an executable's (or shared object's) symbol table. **Out:** file offsets of the
//! functions, or why a program that carries rustls cannot be probed. rustls 0.21 to 0.23 name
//! them `rustls::conn::Reader`/`Writer` or `rustls::conn::connection::Reader`/`Writer`; any
//! `rustls::…::Reader` matches, so a module move in a later release does not hide them.
//!
//! A release build keeps these symbols unless it strips them (`strip = true`), and keeps the
//! functions out of line unless whole-program LTO inlines them into their callers: both cases
//! are reported, never guessed around.
use memchr::memmem;
use object::{Object as _, ObjectSymbol as _, SymbolKind};
use thiserror::Error;

/// What a probed function is, to the kernel side.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    /// For the log: what was found.
    pub name: &'static str,
    pub entry_program: &'static str,
    /// Whether the shared return program goes on it too.
    pub returns: bool,
    matches: fn(&str) -> bool,
}

pub const RETURN_PROGRAM: &str = "rustls_return";

/// The functions, by demangled name (without hash). Reads are `Reader::read` (rustls's own
/// `Stream`), or `into_first_chunk` then `consume` (tokio-rustls); writes go through
/// `Writer::write` or `write_vectored` (hyper's vectored writes).
pub const FUNCTIONS: [Function; 5] = [
    Function {
        name: "rustls Reader::read",
        entry_program: "rustls_read_enter",
        returns: true,
        matches: |n| trait_method(n, "Reader", "std::io::Read>::read"),
    },
    Function {
        name: "rustls Reader::into_first_chunk",
        entry_program: "rustls_first_chunk_enter",
        returns: true,
        matches: |n| inherent_method(n, "Reader::into_first_chunk"),
    },
    Function {
        name: "rustls Reader::consume",
        entry_program: "rustls_consume_enter",
        returns: false,
        matches: |n| trait_method(n, "Reader", "std::io::BufRead>::consume"),
    },
    Function {
        name: "rustls Writer::write",
        entry_program: "rustls_write_enter",
        returns: true,
        matches: |n| trait_method(n, "Writer", "std::io::Write>::write"),
    },
    Function {
        name: "rustls Writer::write_vectored",
        entry_program: "rustls_write_vectored_enter",
        returns: true,
        matches: |n| trait_method(n, "Writer", "std::io::Write>::write_vectored"),
    },
];

/// `<rustls::…::{ty} as {method}`, e.g. `<rustls::conn::connection::Reader as std::io::Read>::read`.
fn trait_method(name: &str, ty: &str, method: &str) -> bool {
    let Some(rest) = name.strip_prefix("<rustls::") else { return false };
    let Some((path, tail)) = rest.split_once(" as ") else { return false };
    (path == ty || path.ends_with(&format!("::{ty}"))) && tail == method
}

/// `rustls::…::{method}` as legacy mangling writes an inherent method, or
/// `<rustls::…::{type}>::{name}` as v0 does.
fn inherent_method(name: &str, method: &str) -> bool {
    let plain = name
        .strip_prefix('<')
        .and_then(|n| n.split_once(">::"))
        .map_or_else(|| name.to_owned(), |(ty, rest)| format!("{ty}::{rest}"));
    plain.starts_with("rustls::") && plain.ends_with(&format!("::{method}")) && !plain.contains(" as ")
}

/// One function to probe: where, and with what.
#[derive(Debug, Clone, Copy)]
pub struct ProbePoint {
    pub function: &'static Function,
    pub offset: u64,
}

/// A program that carries rustls whose plaintext functions cannot be probed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RustlsError {
    #[error("no plaintext read function of rustls in the symbol table")]
    NoRead,
    #[error("no plaintext write function of rustls in the symbol table")]
    NoWrite,
}

impl RustlsError {
    /// A fixed sentence for the blind-spot inventory.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        "rustls is linked in but its plaintext Reader/Writer functions are not in the symbol table \
         (inlined into their callers, as whole-program LTO does)"
    }
}

/// Probe points of the rustls in `elf`; `None` when its symbol table names no rustls at all
/// (no rustls, or no symbol table: then [`super::visibility`] tells from its data).
#[must_use]
pub fn probe_points<'d, R: object::ReadRef<'d>>(
    elf: &object::File<'d, R>,
) -> Option<Result<Vec<ProbePoint>, RustlsError>> {
    let crate_name = memmem::Finder::new(b"rustls");
    let mut linked = false;
    let mut points: Vec<ProbePoint> = Vec::new();
    for sym in elf.symbols().chain(elf.dynamic_symbols()) {
        let Ok(raw) = sym.name_bytes() else { continue };
        if crate_name.find(raw).is_none() {
            continue;
        }
        let Ok(raw) = std::str::from_utf8(raw) else { continue };
        let Ok(demangled) = rustc_demangle::try_demangle(raw) else { continue };
        let name = format!("{demangled:#}");
        if !(name.starts_with("rustls::") || name.starts_with("<rustls::")) {
            continue;
        }
        linked = true;
        if sym.kind() != SymbolKind::Text || !sym.is_definition() {
            continue;
        }
        let Some(function) = FUNCTIONS.iter().find(|f| (f.matches)(&name)) else { continue };
        let Some(offset) = super::tls_libs::file_offset(elf, &sym) else { continue };
        // Two rustls versions in one program each get their probes; the same symbol seen in
        // both tables, once.
        if !points.iter().any(|p| p.offset == offset) {
            points.push(ProbePoint { function, offset });
        }
    }
    if !linked {
        return None;
    }
    let has = |names: &[&str]| points.iter().any(|p| names.contains(&p.function.entry_program));
    let read =
        has(&["rustls_read_enter"]) || has(&["rustls_first_chunk_enter"]) && has(&["rustls_consume_enter"]);
    if !read {
        return Some(Err(RustlsError::NoRead));
    }
    if !has(&["rustls_write_enter", "rustls_write_vectored_enter"]) {
        return Some(Err(RustlsError::NoWrite));
    }
    points.sort_unstable_by_key(|p| p.offset);
    Some(Ok(points))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn which(name: &str) -> Option<&'static str> {
        FUNCTIONS.iter().find(|f| (f.matches)(name)).map(|f| f.entry_program)
    }

    #[test]
    fn matches_the_names_of_every_rustls_layout() {
        // 0.23 (connection module), 0.21/0.22 (conn module).
        assert_eq!(
            which("<rustls::conn::connection::Reader as std::io::Read>::read"),
            Some("rustls_read_enter")
        );
        assert_eq!(which("<rustls::conn::Reader as std::io::Read>::read"), Some("rustls_read_enter"));
        assert_eq!(which("<rustls::conn::Writer as std::io::Write>::write"), Some("rustls_write_enter"));
        assert_eq!(
            which("<rustls::conn::connection::Writer as std::io::Write>::write_vectored"),
            Some("rustls_write_vectored_enter")
        );
        assert_eq!(
            which("<rustls::conn::connection::Reader as std::io::BufRead>::consume"),
            Some("rustls_consume_enter")
        );
        assert_eq!(
            which("rustls::conn::connection::Reader::into_first_chunk"),
            Some("rustls_first_chunk_enter")
        );
        // Look-alikes: other methods, other types, other crates.
        assert_eq!(which("<rustls::conn::connection::Writer as std::io::Write>::flush"), None);
        assert_eq!(which("<rustls::conn::connection::Reader as std::io::Read>::read_exact"), None);
        assert_eq!(which("<rustls::vecbuf::ChunkVecReader as std::io::Read>::read"), None);
        assert_eq!(which("<tokio_rustls::common::Reader as std::io::Read>::read"), None);
        assert_eq!(which("tokio_rustls::Reader::into_first_chunk"), None);
        assert_eq!(which("<rustls::conn::Reader as core::Foo>::into_first_chunk"), None);
        assert_eq!(which("<rustls_pki_types::pem::Reader as std::io::Read>::read"), None);
    }

    #[test]
    fn demangles_both_manglings() {
        // As rustc writes them (legacy, from a real build) and as `-C symbol-mangling-version=v0` does.
        for mangled in [
            "_ZN66_$LT$rustls..conn..connection..Reader$u20$as$u20$std..io..Read$GT$4read17h160f358899f40c5fE",
            "_ZN6rustls4conn10connection6Reader16into_first_chunk17h9ea3969ebe418a62E",
            "_RNvMNtNtCs1234_6rustls4conn10connectionNtB2_6Reader16into_first_chunk",
        ] {
            let name = format!("{:#}", rustc_demangle::demangle(mangled));
            assert!(which(&name).is_some(), "{mangled} -> {name}");
        }
    }

    #[test]
    fn a_program_without_rustls_is_not_one() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let elf = object::File::parse(&*exe).unwrap();
        // The test binary links rustls (kube's client) but, as a debug build, may or may not
        // keep these functions: whatever it finds must be consistent.
        if let Some(Ok(points)) = probe_points(&elf) {
            assert!(points.iter().all(|p| p.offset > 0));
        }
        let bash = std::fs::read("/bin/sh").unwrap();
        assert!(probe_points(&object::File::parse(&*bash).unwrap()).is_none());
    }
}
