//! Replays the llhttp markdown test corpus (shared/testdata/http/llhttp).
//!
//! Every ```http block is decoded the way llhttp's own `test/md-test.ts`
//! does (drop the final newline, join `\`-continued lines, turn newlines into
//! CRLF, then expand `\r \n \t \f \xHH \ooo`) and fed whole, byte by byte and
//! randomly split; nothing may panic and all splits must agree. For blocks
//! llhttp parses without error in its default (strict) mode, the method and
//! URL of each request, or the status of each response, that its ```log
//! shows must come out of our parser in the same order.

use std::path::{Path, PathBuf};

use super::tests::{Ev, Outcome, run};

#[derive(Debug, Default)]
struct Block {
    file: String,
    title: String,
    kind: String,
    /// llhttp was told to treat the body as absent (as for HEAD); we cannot be.
    skip_body: bool,
    input: Vec<u8>,
    log: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Request { method: String, url: String },
    Response { status: u16 },
}

fn corpus_dir() -> Option<PathBuf> {
    let rel = Path::new("shared/testdata/http/llhttp");
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|a| a.join(rel))
        .chain(std::iter::once(Path::new("/work").join(rel)))
        .find(|p| p.is_dir())
}

fn parse_md(file: &str, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut title = String::new();
    let mut kind = String::new();
    let mut skip_body = false;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with('#') {
            title = line.trim_start_matches('#').trim().to_owned();
        } else if let Some(meta) = line.strip_prefix("<!-- meta=") {
            kind = meta
                .split("\"type\"")
                .nth(1)
                .and_then(|r| r.split('"').nth(1))
                .unwrap_or_default()
                .to_owned();
            skip_body = meta.contains("\"skipBody\": true");
        } else if line == "```http" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push(Block {
                file: file.to_owned(),
                title: title.clone(),
                kind: kind.clone(),
                skip_body,
                input: decode(&body.join("\n")),
                log: Vec::new(),
            });
        } else if line == "```log" {
            let log = lines.by_ref().take_while(|l| *l != "```").map(str::to_owned);
            if let Some(b) = blocks.last_mut().filter(|b| b.log.is_empty()) {
                b.log = log.collect();
            }
        }
    }
    blocks
}

/// The transformation of llhttp's md-test.ts, applied to one block.
fn decode(raw: &str) -> Vec<u8> {
    let joined = raw.replace("\\\r\n", "").replace("\\\n", "");
    let crlf = joined.replace("\r\n", "\n").replace('\n', "\r\n");
    let b = crlf.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, used) = match b[i + 1] {
            b'r' => (b'\r', 2),
            b'n' => (b'\n', 2),
            b't' => (b'\t', 2),
            b'f' => (0x0c, 2),
            b'x' => {
                let hex: String =
                    b[i + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).map(|&c| c as char).collect();
                match u32::from_str_radix(&hex, 16) {
                    Ok(v) => ((v & 0xff) as u8, 2 + hex.len()),
                    Err(_) => (b'\\', 1),
                }
            }
            b'0'..=b'7' => {
                let oct: String = b[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|c| (b'0'..=b'7').contains(c))
                    .map(|&c| c as char)
                    .collect();
                let v = u32::from_str_radix(&oct, 8).unwrap_or(0);
                ((v & 0xff) as u8, 1 + oct.len())
            }
            _ => (b'\\', 1),
        };
        out.push(byte);
        i += used;
    }
    out
}

fn span<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.split_once(&format!("span[{name}]=\""))?.1;
    rest.strip_suffix('"')
}

struct Expectations {
    /// Heads llhttp completed, in order (interim 1xx left out).
    heads: Vec<Expect>,
    /// Some message is not HTTP/1.0 or 1.1 (llhttp also speaks RTSP, ICE, HTTP/0.9).
    not_http1: bool,
    /// llhttp stopped with a real (non-pause) error after `heads`.
    error: bool,
    /// llhttp paused for CONNECT/Upgrade after `heads`.
    upgrade: bool,
}

fn expectations(b: &Block) -> Expectations {
    let mut heads = Vec::new();
    let (mut method, mut url) = (String::new(), String::new());
    let (mut protocol, mut version) = (String::new(), String::new());
    let (mut not_http1, mut error, mut upgrade) = (false, false, false);
    for line in &b.log {
        if let Some(p) = span(line, "protocol") {
            protocol.push_str(p);
        } else if let Some(v) = span(line, "version") {
            version.push_str(v);
        } else if let Some(m) = span(line, "method") {
            method.push_str(m);
        } else if let Some(u) = span(line, "url") {
            url.push_str(u);
        } else if line.contains(" headers complete ") {
            let http1 = protocol == "HTTP" && (version == "1.0" || version == "1.1");
            not_http1 |= !http1;
            protocol.clear();
            version.clear();
            if let Some(s) = line.split_once("status=") {
                let status = s.1.split(' ').next().and_then(|n| n.parse().ok());
                let status = status.unwrap_or(0);
                // Interim responses are consumed silently by design.
                if !(100..200).contains(&status) || status == 101 {
                    heads.push(Expect::Response { status });
                }
            } else {
                heads.push(Expect::Request {
                    method: std::mem::take(&mut method),
                    url: std::mem::take(&mut url),
                });
            }
        } else if line.contains(" error code=") {
            // 21 is a callback pause, 22/23 a CONNECT/Upgrade pause: not errors.
            let pause_upgrade = line.contains("code=22 ") || line.contains("code=23 ");
            upgrade |= pause_upgrade;
            error |= !pause_upgrade && !line.contains("code=21 ");
        }
    }
    Expectations { heads, not_http1, error, upgrade }
}

fn actual(b: &Block, o: &Outcome) -> Vec<Expect> {
    o.ex.iter()
        .filter_map(|e| {
            let req = e
                .request
                .as_ref()
                .map(|r| Expect::Request { method: r.method.clone(), url: r.target.clone() });
            let resp = e.response.as_ref().map(|r| Expect::Response { status: r.status });
            if b.kind.starts_with("request") { req } else { resp }
        })
        .collect()
}

#[test]
fn llhttp_corpus() {
    let Some(dir) = corpus_dir() else {
        panic!("llhttp corpus not found under shared/testdata/http/llhttp");
    };
    let mut blocks = Vec::new();
    for sub in ["request", "response"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .expect("corpus dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read md");
            let name = format!("{sub}/{}", f.file_name().unwrap_or_default().to_string_lossy());
            blocks.extend(parse_md(&name, &text));
        }
    }
    assert!(blocks.len() > 200, "only {} blocks found", blocks.len());

    let (mut checked, mut mismatches) = (0, Vec::new());
    for b in &blocks {
        let evs = if b.kind.starts_with("request") {
            [Ev::Req(1, &b.input), Ev::Close(2)]
        } else {
            [Ev::Resp(1, &b.input), Ev::Close(2)]
        };
        // `run` feeds whole, byte by byte and randomly split, and compares.
        let o = run(&evs);
        let e = expectations(b);
        let strict = b.kind == "request" || b.kind == "response";
        if !strict || b.skip_body || e.not_http1 || e.heads.is_empty() {
            continue;
        }
        checked += 1;
        let got = actual(b, &o);
        let want = e.heads;
        // Where llhttp stopped (error, or a switch of protocol) we may read
        // on, so only the heads it completed must match.
        let ok = if e.error || e.upgrade { got.starts_with(&want) } else { got == want };
        if !ok {
            mismatches.push(format!("{} / {}: want {want:?} got {got:?}", b.file, b.title));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {checked} blocks differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    eprintln!("llhttp corpus: {} blocks fed, {checked} compared", blocks.len());
    assert!(checked > 100, "only {checked} blocks checked");
}
