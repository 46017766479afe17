//! `cargo xtask bench [PART..]`: benchmarks that report, never gate. Each part prints a table
//! and rewrites its own section of BENCHMARKS.md (with the machine and the command).
//!
//! Parts:
//! - `detect`: sensitive-data detection (precision, recall, MB/s) against Presidio and
//!   detect-secrets, on a corpus built around `../shared/testdata/pii/vectors.jsonl`
//!   (`bench/*.py`, `sensor-agent/examples/detect_bench.rs`); the peers are installed from `PyPI`
//!   into a virtual environment (`$APISENSE_BENCH_VENV`, default `~/.cache/apisense/bench-venv`);
//! - `inventory`: shadow-endpoint labeling against the Open Banking specs of
//!   `../shared/testdata/openapi/obie`, per deployment shape (`sensor-agent/examples/inventory_bench/`);
//! - `pipeline`, `overhead`, `hooks`, `fidelity`, `memory`: the real agent (release build, with eBPF) on
//!   live loopback traffic (nginx, wrk, curl, python), driven by `bench/traffic_bench.py` (root).
//!   `--quick` (or `APISENSE_BENCH_QUICK=1`) shortens the runs, for trying the harness: their
//!   results are printed and BENCHMARKS.md is left alone.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::setup::workspace_root;

const PARTS: [&str; 8] =
    ["detect", "inventory", "pipeline", "overhead", "hooks", "fidelity", "memory", "peers"];

/// The parts that run the live agent (`bench/traffic_bench.py`).
const LIVE: [&str; 6] = ["pipeline", "overhead", "hooks", "fidelity", "memory", "peers"];

/// Peer versions measured (pinned so that reruns compare like with like).
const PEERS: [&str; 2] = ["presidio-analyzer==2.2.366", "detect-secrets==1.5.0"];

const DETECT_ABOUT: &str = "\
What is measured: precision and recall of sensitive-data detection per kind (payment cards, IBANs, \
AWS access key ids and secret access keys, JWTs), and single-core throughput, for apisense and two \
peers on the same documents.

- Corpus (`bench/detect_corpus.py`, fixed seed): every labeled vector of \
`../shared/testdata/pii/vectors.jsonl` (valid ones must be reported, invalid lookalikes must not) \
placed in a JSON body under a meaningful name (`iban`, `pan`, `access_token`...), in a JSON list of \
products under a neutral name (`value`, `data`...), in a form body (URL-encoded as a browser does), \
and in two free-text sentences; 40 JSON documents holding three values each; generated values of \
the kinds the vectors hold only once or ten times (Luhn-valid cards of every major scheme, AWS key \
pairs, HS256/RS256/ES256 JWTs, plus Luhn-invalid cards, AWS key ids of the wrong length and JWTs \
without `alg`: groups `synthetic-*`); and about 4 MB of generated API JSON with nothing sensitive \
(products, orders, events: ids, snowflake ids, UUIDs, timestamps, prices, SKUs, URLs, SHA-256 \
checksums, cursors) for false positives and throughput.
- apisense (`sensor-agent/examples/detect_bench.rs`, release build, one thread): `Detector::inspect` \
with each document as a POST body with its content type (what the sensor does), \
`Detector::scan_text` on the raw text, and `inspect` with `min_confidence: medium`. Findings carry \
masked samples, never values: a document's findings of a kind are matched by count, and where the \
sample shows enough (cards, IBANs, AWS key ids) it must be the mask of an expected value.
- Presidio 2.2.366: its default `AnalyzerEngine` loads the spaCy model `en_core_web_lg`, which \
spaCy downloads from GitHub, not reachable here (only PyPI, crates.io, Debian and npm are; the \
only copies of spaCy's English models on PyPI are third-party re-uploads, not used). Two \
configurations are measured instead: **pattern recognizers**: `CreditCardRecognizer` and \
`IbanRecognizer` called directly (`analyze(text, entities, nlp_artifacts=None)`), which is exactly \
the regex + checksum code that decides `CREDIT_CARD` and `IBAN_CODE` in the default engine, minus \
context-word score boosts and minus all NLP cost, so its fastest possible configuration and the \
baseline of the throughput aim; **AnalyzerEngine, blank spaCy**: the full engine with every \
default recognizer and entity, its spaCy NLP engine given `spacy.blank(\"en\")` (tokenizer only): \
the real pipeline without the NER model, so still faster than a default install. Every result is \
counted whatever its score (the engine's default threshold is 0). Presidio has no AWS or JWT \
recognizer: it is scored on card and iban only.
- detect-secrets 1.5.0: `scan_line` over every line with its default plugins and filters; scored on \
`AWS Access Key` (split into key id / secret by the value's `AKIA`/`ASIA` prefix) and `JSON Web \
Token` (a JWT reported without its signature counts when header and payload match); it has no card \
or IBAN detector.
- MB/s: corpus bytes / best wall time of a full pass, one process; apisense is best of 10, Presidio's \
pattern recognizers best of 3, the two slow peers one pass (about a minute each).";

const INVENTORY_ABOUT: &str = "\
What is measured: how well the inventory labels endpoints that no spec documents (`shadow`), on \
traffic generated from the four real UK Open Banking v4.0 specs of \
`../shared/testdata/openapi/obie` (`sensor-agent/examples/inventory_bench/`).

- Documented traffic: every operation of every spec, called with its server prefix (one call in \
three without it, as behind an ingress that strips it: a prefix may be absent) and several \
concrete paths (numeric ids, UUIDs, bank-style alphanumeric ids, percent-encoded ids), query \
strings, trailing or doubled slashes, and a status code the operation lists.
- Injected undocumented traffic (truth `shadow`): near misses (a typo in a literal segment, \
singular/plural swaps, changed case), extra trailing segments, documented paths under other \
prefixes (another version, another API's prefix, an extra `/api`), and invented \
resources (`/admin/...`, `/internal/...`, `/debug/...`); and, separately, an undocumented literal \
in the place of a path parameter (`/accounts/export`): every Open Banking path parameter is a \
plain string, so no spec-based matcher can tell that from an id; it is reported apart.
- Undocumented methods (truth `undocumented_method`): documented paths called with methods their \
path item does not list.
- Each exchange goes through `Inventory::observe` (fresh inventory, no store, default limits). \
Per exchange: precision and recall of the `shadow` label against the truth, and accuracy of the \
`documented` and `undocumented_method` labels. Per distinct endpoint (truth: method + the template \
the traffic was generated from): the label of the majority of its exchanges. Throughput: exchanges \
per second through `observe`, one thread, release build, best of 10 passes (the machine is shared: passes vary).
- Deployment shapes (issue 19): the same generator against the specs as published (relative \
servers), with their servers made absolute (`https://api.bank.example/...`) and called on that \
host, on a pod's `10.0.0.5:8080`, with the prefix always stripped, beside a NextGenPSD2-shaped \
spec whose first segments are parameters (`/{payment-service}/{payment-product}/...`), and bound \
to the pod by a config rule (`server_prefix: stripped`, where calls with the prefix are `shadow`). \
Per shape: `shadow` precision and recall, `documented` accuracy (label and exact route), \
`undocumented_method` recall; exchanges the spec cannot tell from documented ones left out.";

const PIPELINE_ABOUT: &str = "\
What is measured: the userspace pipeline alone (decode, reassembly, HTTP parsing and pairing, \
sensitive-data inspection, JSON Lines export), on recordings of real traffic made with the real \
agent (`bench/traffic_bench.py pipeline`).

- Recording: nginx on loopback (`daemon off; master_process off;`, `access_log off`, `sendfile off`, \
gzip on for JSON), `location /api/` returning a 66-byte JSON; a 0.3 MB JSON file holding a few \
card numbers (4111111111111111...) and IBANs (GB82WEST12345698765432...). `apisense record --port` \
captures (1) `wrk -t2 -c16` on `/api/` only (small exchanges), (2) a mix: `wrk -t1 -c4` on `/api/` \
plus curl fetching the large file with `--compressed` (gzip) and without, and POSTing a JSON body \
with a card and an IBAN. The agent stops on SIGINT.
- Replay: `apisense replay FILE --output /dev/null`, best wall time of 5; CPU time (user + system) \
and peak RSS of that run from `wait4` rusage. Events and exchanges come from the replay's \
`replayed: {...}` line. Per-core rates divide by CPU seconds (the replay is single-threaded).";

const HOOKS_ABOUT: &str = "\
What is measured: the kernel-side cost of the sensor's syscall hooks, per hook family \
(`bench/traffic_bench.py hooks`): the CPU time per syscall of a process making followed and \
unfollowed syscalls (`bench/syscall_cost.c`, built with cc), and the throughput of a saturated \
nginx (1 process, keep-alive, 66-byte JSON, `wrk -t1 -c16`) that the agent does not follow. The \
agent runs with `APISENSE_SYSCALL_HOOKS=tracepoints` (one `syscalls:sys_*` tracepoint per call), \
`=raw` (raw tracepoints on sys_enter/sys_exit) and unset (BTF raw tracepoints, the default on \
x86-64), `--output /dev/null --port UNUSED`; `off` is no agent.
";

const OVERHEAD_ABOUT: &str = "\
What is measured: what the running sensor costs a busy server, against no sensor and against the \
bare cost of its hooks (`bench/traffic_bench.py overhead`, issue 16).

- nginx on loopback, one process (`master_process off`), keep-alive, plaintext and TLS (`listen ... \
ssl`, self-signed RSA-2048 certificate from the openssl CLI). Bodies: `tiny`, `location /api/` \
returning a 66-byte JSON; `1-4 KB`, six static banking-style JSON files of 1.2 to 4 KB (accounts, \
payments, cards..., some holding card numbers such as 4111111111111111 and IBANs such as \
GB82WEST12345698765432), a wrk Lua script cycling over them and sending `Accept-Encoding: gzip` \
for three of the six (nginx `gzip on`, `gzip_min_length 512`).
- Loads: `wrk -t1 -c16` and `wrk -t2 -c64`, 10 s per run, `--latency`.
- Modes, alternating, the order rotated each round, 3 rounds, medians: `off` (no sensor); `floor` \
(bpftrace with empty programs on the per-call syscall tracepoints and the sched tracepoints \
listed in `sensor-agent/src/capture/loader.rs`, read from that source at run time, and for TLS \
uprobes and uretprobes on `SSL_read`, `SSL_write`, `SSL_read_ex`, `SSL_write_ex` in the libssl \
nginx links (ldd); wrk starts once bpftrace holds every probe. Debian's bpftrace 0.17 cannot \
attach raw tracepoints, and on x86-64 the agent hooks syscalls with BTF raw tracepoints, which \
cost less than this floor); `hooks` (the agent's own programs on all its hooks, following a port \
nothing uses: the kernel-side cost to a service it does not follow); `file` (`apisense run \
--output FILE --port PLAIN --port TLS`, default config: detection, inventory, analytics); \
`devnull` (the same with `--output /dev/null`); `baseline-file` when `APISENSE_BENCH_BASELINE` \
names another apisense binary (same arguments as `file`: a before/after in the same run). The \
agent is started and given 1 s before wrk.
- Agent CPU: utime + stime from `/proc/PID/stat` over the wrk run plus a 1 s drain, per \
server-side exchange (file: `\"role\":\"server\"` lines counted; devnull: half the `stopped:` \
summary's `exchanges_written`, as both sides are captured); RSS from `/proc/PID/status` (VmRSS at \
the end, VmHWM peak). Exchanges written are compared with twice the requests wrk completed \
(nginx's and wrk's sides are both on the ports followed), server lines with wrk's requests; every \
loss counter of the `stopped:` summary is reported.
- Profile: `perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p AGENT` over one extra \
`file` run (plaintext, tiny, `-t1 -c16`), not counted in the medians.
- Everything shares the same 2 cores: wrk, nginx and the agent compete, so the agent's CPU is taken \
from the server and the client directly.";

const FIDELITY_ABOUT: &str = "\
What is measured: whether every exchange is reported as load rises (`bench/traffic_bench.py fidelity`).

- nginx on loopback as in `overhead` (plaintext, 66-byte JSON, keep-alive). A fresh \
`apisense run --output FILE --port PORT` per level; `wrk -d5s` with rising thread/connection \
counts (1/1, 1/2, 1/4, 2/16, 2/64, 2/256); the agent is stopped (SIGINT) 2 s after wrk ends.
- Compared: requests wrk completed vs lines with `\"role\":\"server\"` in the agent's JSONL (nginx's \
side of each exchange; `\"role\":\"client\"` lines, wrk's side, are counted too), and the ring-buffer losses of the agent's `stopped: {...}` summary \
(`kernel.ringbuf_dropped`, `kernel.ringbuf_dropped_bytes`), plus any other nonzero counter named \
drop/lost/gap/overflow/evict.
- No paced (wrk2-style) generator is available: the rate is whatever wrk reaches at each \
connection count, with the sensor on.";

const MEMORY_ABOUT: &str = "\
What is measured: the agent's memory per tracked connection (`bench/traffic_bench.py memory`).

- nginx on loopback with `worker_connections 20000`; `apisense run --output FILE --port PORT`; a \
python asyncio client (`RLIMIT_NOFILE` raised with `resource.setrlimit`) opens 10,000 connections, \
sends one keep-alive GET on each, reads the response and holds the connection open.
- Agent VmRSS (`/proc/PID/status`) 2 s after it starts, then the highest of 100 ms samples over 5 s \
once all connections are held, and over 5 s after they closed; RSS per held connection = \
(held - before) / connections held. The nofile limit cannot be raised above the container's hard \
limit (20000, no `CAP_SYS_RESOURCE`), which is enough for 10,000 connections per process.";

const PEERS_ABOUT: &str = "\
What is measured: the CPU each tool spends decoding the same plaintext HTTP/1.1 traffic on \
loopback (`bench/traffic_bench.py peers`), apisense and tshark (Wireshark's CLI, Debian's package) \
running at the same time on the same port.

- nginx on loopback, `location /api/` returning a 66-byte JSON, keep-alive; `wrk -t1 -cN -d10s`.
- apisense: `apisense run --output FILE --port PORT` (both views: nginx's server side and wrk's \
client side, detection and inventory included); exchanges counted from nginx's side.
- tshark: `tshark -i lo -f 'tcp port PORT' -Y http.response -T fields -e http.response.code -e \
http.request.uri` (capture by dumpcap, its child, with a BPF filter; HTTP dissection; one line per \
response decoded).
- CPU: utime + stime from `/proc/PID/stat` (tshark plus dumpcap) from just before wrk starts until \
each tool's output stopped growing for 2 s; per exchange = CPU / exchanges the tool reported.";

/// Title and description of a live part.
fn live_about(part: &str) -> (&'static str, &'static str) {
    match part {
        "pipeline" => ("pipeline: userspace throughput on a real recording", PIPELINE_ABOUT),
        "overhead" => ("overhead: cost of the sensor to a busy nginx (plaintext and TLS)", OVERHEAD_ABOUT),
        "hooks" => ("hooks: what the syscall hooks cost, per hook family", HOOKS_ABOUT),
        "fidelity" => ("fidelity: exchanges reported vs requests served as load rises", FIDELITY_ABOUT),
        "peers" => ("peers: CPU per exchange, apisense vs tshark on the same traffic", PEERS_ABOUT),
        _ => ("memory: agent RSS per held keep-alive connection", MEMORY_ABOUT),
    }
}

pub fn run(parts: &[String], quick: bool) -> anyhow::Result<()> {
    let quick = quick || env::var_os("APISENSE_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let parts: Vec<&str> =
        if parts.is_empty() { PARTS.to_vec() } else { parts.iter().map(String::as_str).collect() };
    if let Some(bad) = parts.iter().find(|p| !PARTS.contains(p)) {
        bail!("unknown benchmark part {bad:?} (known: {})", PARTS.join(", "));
    }
    let root = workspace_root()?;
    if parts.iter().any(|p| !LIVE.contains(p)) {
        build_examples(&root)?;
    }
    let agent = if parts.iter().any(|p| LIVE.contains(p)) { Some(build_agent(&root)?) } else { None };
    let examples = target_dir(&root).join("release/examples");
    let machine = machine()?;
    for part in parts {
        let (title, about, body) = match (part, &agent) {
            ("detect", _) => (
                "detect: sensitive-data detection vs Presidio and detect-secrets",
                DETECT_ABOUT,
                detect(&root, &examples)?,
            ),
            ("inventory", _) => {
                ("inventory: shadow-endpoint labeling", INVENTORY_ABOUT, inventory(&root, &examples)?)
            }
            (live, Some(agent)) => {
                let (title, about) = live_about(live);
                (title, about, traffic(&root, agent, live, quick)?)
            }
            (other, None) => bail!("no agent built for {other:?}"),
        };
        println!("\n## {title}\n\n{body}");
        if quick {
            eprintln!("xtask: quick run: BENCHMARKS.md left alone (its figures are not for the record)");
            continue;
        }
        let section = format!(
            "## {title}\n\n{about}\n\nMachine: {machine}. Reproduce: `cargo xtask bench {part}`.\n\n{}\n",
            body.trim_end()
        );
        write_section(&root.join("BENCHMARKS.md"), part, &section)?;
        eprintln!("xtask: BENCHMARKS.md section {part:?} rewritten");
    }
    Ok(())
}

/// The examples are built with the caller's environment (target dir included), without eBPF.
fn build_examples(root: &Path) -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["build", "--release", "--package", "sensor-agent", "--examples"])
        .env("AYA_BUILD_SKIP", "1")
        .status()
        .context("running cargo build --examples")?;
    if !status.success() {
        bail!("building the benchmark examples failed ({status})");
    }
    Ok(())
}

/// The agent with its eBPF object, built with the caller's environment (target dir included).
fn build_agent(root: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["build", "--release", "--package", "sensor-agent"])
        // A binary built without its eBPF object could not run these parts.
        .env_remove("AYA_BUILD_SKIP")
        .status()
        .context("running cargo build --release --package sensor-agent")?;
    if !status.success() {
        bail!("building the agent failed ({status})");
    }
    let agent = target_dir(root).join("release/apisense");
    if !agent.exists() {
        bail!("{} missing after the build", agent.display());
    }
    Ok(agent)
}

fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// "2 cores (AMD EPYC), kernel 6.1.0, 2026-01-31".
fn machine() -> anyhow::Result<String> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown CPU");
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").context("reading the kernel release")?;
    let date = capture(Command::new("date").args(["-u", "+%Y-%m-%d"]))?;
    Ok(format!("{cores} cores ({model}), kernel {}, {}", kernel.trim(), date.trim()))
}

/// Runs a command, returns its stdout; stderr passes through (progress).
fn capture(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{cmd:?}");
    let out =
        cmd.stderr(std::process::Stdio::inherit()).output().with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed ({})", out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("{shown}: output is not UTF-8"))
}

fn checked(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// The virtual environment with the peers, created and updated in place (idempotent).
fn venv() -> anyhow::Result<PathBuf> {
    let dir = match env::var_os("APISENSE_BENCH_VENV") {
        Some(d) => PathBuf::from(d),
        None => env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .context("neither APISENSE_BENCH_VENV, XDG_CACHE_HOME nor HOME is set")?
            .join("apisense/bench-venv"),
    };
    let python = dir.join("bin/python");
    if !python.exists() {
        eprintln!("xtask: creating the benchmark virtualenv {}", dir.display());
        checked(Command::new("python3").arg("-m").arg("venv").arg(&dir))?;
    }
    checked(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(PEERS),
    )?;
    Ok(python)
}

fn scratch(part: &str) -> anyhow::Result<PathBuf> {
    let dir = env::temp_dir().join(format!("apisense-bench-{part}-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn detect(root: &Path, examples: &Path) -> anyhow::Result<String> {
    let python = venv()?;
    let tmp = scratch("detect")?;
    let vectors = root.join("../shared/testdata/pii/vectors.jsonl");
    if !vectors.exists() {
        bail!("{} not found (the shared test data sits next to the repository)", vectors.display());
    }
    let corpus = tmp.join("corpus.jsonl");
    let ours = tmp.join("apisense.json");
    let peers = tmp.join("peers.json");
    let table = tmp.join("tables.md");
    eprintln!("xtask: detect: corpus, apisense, peers (a few minutes) in {}", tmp.display());
    checked(
        Command::new(&python)
            .arg(root.join("bench/detect_corpus.py"))
            .arg("--vectors")
            .arg(&vectors)
            .arg("--out")
            .arg(&corpus),
    )?;
    checked(Command::new(examples.join("detect_bench")).arg(&corpus).arg(&ours).arg("10"))?;
    checked(
        Command::new(&python)
            .arg(root.join("bench/peers_detect.py"))
            .arg("--corpus")
            .arg(&corpus)
            .arg("--out")
            .arg(&peers),
    )?;
    checked(
        Command::new(&python)
            .arg(root.join("bench/score_detect.py"))
            .arg("--corpus")
            .arg(&corpus)
            .arg("--results")
            .arg(&ours)
            .arg(&peers)
            .arg("--out-md")
            .arg(&table)
            .arg("--out-json")
            .arg(tmp.join("summary.json")),
    )?;
    let body = fs::read_to_string(&table).with_context(|| format!("reading {}", table.display()))?;
    fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    Ok(body)
}

fn inventory(root: &Path, examples: &Path) -> anyhow::Result<String> {
    let specs = root.join("../shared/testdata/openapi/obie");
    if !specs.is_dir() {
        bail!("{} not found (the shared test data sits next to the repository)", specs.display());
    }
    capture(Command::new(examples.join("inventory_bench")).arg(&specs))
}

/// Runs one live part of `bench/traffic_bench.py`, returns its Markdown body.
fn traffic(root: &Path, agent: &Path, part: &str, quick: bool) -> anyhow::Result<String> {
    let tmp = scratch(part)?;
    let table = tmp.join("table.md");
    eprintln!("xtask: {part}: live traffic against nginx on loopback (a few minutes)");
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("bench/traffic_bench.py"))
        .arg(part)
        .arg("--agent")
        .arg(agent)
        .arg("--out-md")
        .arg(&table);
    if quick {
        cmd.arg("--quick");
    }
    capture(&mut cmd)?;
    let body = fs::read_to_string(&table).with_context(|| format!("reading {}", table.display()))?;
    fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    Ok(body)
}

/// Replaces the `<!-- bench:PART -->` ... `<!-- /bench:PART -->` section (or appends it).
fn write_section(file: &Path, part: &str, section: &str) -> anyhow::Result<()> {
    let begin = format!("<!-- bench:{part} -->");
    let end = format!("<!-- /bench:{part} -->");
    let old = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::from(
            "# Benchmarks\n\nWritten by `cargo xtask bench [PART..]`: each part rewrites its own section \
             (between its `bench:` markers) and leaves the rest of this file alone. The numbers report; \
             they never gate.\n",
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let block = format!("{begin}\n{section}{end}");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &old[..b], &old[e + end.len()..]),
        (None, None) => format!("{}\n{block}\n", old.trim_end_matches('\n').to_owned() + "\n"),
        _ => bail!("{}: unbalanced markers for {part:?}; fix them by hand", file.display()),
    };
    fs::write(file, new).with_context(|| format!("writing {}", file.display()))
}
