//! `cargo xtask fuzz`: every cargo-fuzz target for a bounded time, the HTTP target seeded with
//! the llhttp corpus in ../shared/testdata/http (messages cut into segments the way the target
//! reads its input).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::setup;

pub const TARGETS: &[&str] =
    &["http_stream", "h2_stream", "stream_pipeline", "ring_record", "recording", "cgroup", "gopclntab"];

pub fn run(seconds: u32, only: Option<&str>) -> anyhow::Result<()> {
    ensure_cargo_fuzz()?;
    let root = setup::workspace_root()?;
    seed_http(&root).context("seeding the HTTP corpus")?;
    for target in TARGETS.iter().filter(|t| only.is_none_or(|o| o == **t)) {
        let corpus = root.join("fuzz/corpus").join(target);
        fs::create_dir_all(&corpus)?;
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let status = Command::new("cargo")
            .current_dir(&root)
            .args(["+nightly", "fuzz", "run", "--fuzz-dir", "fuzz", target])
            .arg(&corpus)
            .args(["--", &format!("-max_total_time={seconds}"), "-rss_limit_mb=2048", "-timeout=10"])
            // The fuzz targets drive userspace parsers only: no need to build the eBPF object.
            .env("AYA_BUILD_SKIP", "1")
            .status()
            .with_context(|| format!("running cargo fuzz for {target}"))?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed ({status}); the crashing input is under fuzz/artifacts/{target}"
            );
        }
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let present =
        Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz");
    let status = Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]).status()?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}

/// Writes every `http` code block of the llhttp markdown corpus as an `http_stream` input.
fn seed_http(root: &Path) -> anyhow::Result<()> {
    let Some(corpus) = root.parent().map(|p| p.join("shared/testdata/http/llhttp")) else {
        return Ok(());
    };
    if !corpus.is_dir() {
        eprintln!("xtask: {} not found; fuzzing without seeds", corpus.display());
        return Ok(());
    }
    let out = root.join("fuzz/corpus/http_stream");
    fs::create_dir_all(&out)?;
    let mut n = 0;
    for (side, dir) in [(0u8, "request"), (1u8, "response")] {
        let mut files: Vec<PathBuf> =
            fs::read_dir(corpus.join(dir))?.filter_map(|e| Some(e.ok()?.path())).collect();
        files.sort();
        for file in files {
            let text = fs::read_to_string(&file)?;
            for block in http_blocks(&text) {
                fs::write(out.join(format!("llhttp-{n:04}")), encode_for_target(&unescape(&block), side))?;
                n += 1;
            }
        }
    }
    eprintln!("xtask: {n} seed inputs for http_stream");
    Ok(())
}

fn http_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```http") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The corpus writes CRLF as a plain line break and escapes control characters.
fn unescape(block: &str) -> Vec<u8> {
    let crlf = block.replace('\n', "\r\n");
    let bytes = crlf.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let mapped = match bytes[i + 1] {
                b'r' => Some(b'\r'),
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'f' => Some(0x0c),
                _ => None,
            };
            if let Some(b) = mapped {
                out.push(b);
                i += 2;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// `http_stream` input: a control byte (side in bit 0, length - 1 in bits 2..) before each piece.
fn encode_for_target(message: &[u8], side: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 1);
    for piece in message.chunks(48) {
        out.push(((piece.len() as u8 - 1) << 2) | side);
        out.extend_from_slice(piece);
    }
    out
}
