#!/usr/bin/env python3
"""Live-traffic benchmarks of the apisense agent (driven by `cargo xtask bench PART`).

Parts: pipeline (userspace throughput on a real recording), overhead (wrk vs nginx, sensor off/on,
plaintext and TLS), fidelity (wrk requests vs exchanges the agent reports, ring-buffer losses),
memory (agent RSS per held keep-alive connection). Each prints a Markdown body to --out-md.
Needs root, nginx, wrk, curl, openssl. Nothing here gates: it reports.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SMALL_JSON = '{"id":42,"name":"widget","price":9.99,"tags":["a","b"],"ok":true}'
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- nginx


def large_json(path, items=2000):
    cards = ["4111111111111111", "5500005555555559", "378282246310005"]
    ibans = ["GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606"]
    rows = []
    for i in range(items):
        row = {"id": i, "sku": f"SKU-{i:06d}", "name": f"product {i}", "price": round(i * 1.37, 2),
               "created": "2026-11-25T08:09:19Z", "tags": ["x", "y", "z"]}
        if i % 400 == 7:
            row["cardNumber"] = cards[(i // 400) % len(cards)]
        if i % 500 == 11:
            row["iban"] = ibans[(i // 500) % len(ibans)]
        rows.append(row)
    with open(path, "w") as f:
        json.dump({"items": rows, "count": items}, f)


# Realistic API responses of 1-4 KB served as static files by `location /json/` (name, target size,
# whether the client asks for gzip): account and payment JSON, some carrying card numbers and IBANs.
API_FILES = [("accounts", 1200, False), ("payments", 1900, True), ("transactions", 2600, False),
             ("cards", 3200, True), ("statements", 3900, False), ("beneficiaries", 1500, True)]


def api_item(kind, i):
    """One record of a banking API response; every third carries a card number or an IBAN."""
    cards = ["4111111111111111", "5500005555555559", "4012888888881881"]
    ibans = ["GB82WEST12345698765432", "DE89370400440532013000", "NL91ABNA0417164300"]
    item = {"id": f"{kind[:3]}-{1000 + i}", "status": ["booked", "pending", "settled"][i % 3],
            "amount": {"value": f"{(i * 37.19) % 900 + 10:.2f}", "currency": "GBP"},
            "created": f"2026-11-{1 + i % 28:02d}T08:{i % 60:02d}:19Z", "reference": f"INV-{20260 + i * 7}",
            "merchant": {"name": ["Acme Books", "City Rail", "Corner Cafe"][i % 3], "mcc": 5942 + i % 5}}
    if kind in ("payments", "cards") and i % 3 == 1:
        item["card"] = {"number": cards[(i // 3) % len(cards)], "expiry": "12/29", "holder": "J. SMITH"}
    if kind in ("accounts", "beneficiaries", "statements") and i % 3 == 2:
        item["iban"] = ibans[(i // 3) % len(ibans)]
    return item


def api_json(kind, target):
    """A JSON document of about `target` bytes (never over 4 KB)."""
    doc = {"data": {"kind": kind, "items": []}, "links": {"self": f"/json/{kind}.json", "next": None},
           "meta": {"totalPages": 1, "requestId": "7f9c2e4a-52b1-4c1e-9d7e-0a5b6c3d2e1f"}}
    while len(json.dumps(doc)) < target:
        doc["data"]["items"].append(api_item(kind, len(doc["data"]["items"])))
    text = json.dumps(doc)
    assert 1000 <= len(text) <= 4096, (kind, len(text))
    return text


def api_files(root):
    os.makedirs(os.path.join(root, "json"), exist_ok=True)
    for kind, target, _gzip in API_FILES:
        with open(os.path.join(root, "json", f"{kind}.json"), "w") as f:
            f.write(api_json(kind, target))


def rotate_script(tmp):
    """A wrk script cycling over the 1-4 KB files, asking for gzip on those marked so."""
    entries = ", ".join(f'{{"/json/{k}.json", {"true" if gz else "false"}}}' for k, _, gz in API_FILES)
    path = os.path.join(tmp, "rotate.lua")
    with open(path, "w") as f:
        f.write(f"""local paths = {{{entries}}}
local reqs, i = {{}}, 0
request = function()
  i = i % #paths + 1
  if not reqs[i] then
    local headers = {{}}
    if paths[i][2] then headers["Accept-Encoding"] = "gzip" end
    reqs[i] = wrk.format("GET", paths[i][1], headers)
  end
  return reqs[i]
end
""")
    return path


def nofile(want):
    """`want` open files, or the hard limit when it is lower (raising it needs CAP_SYS_RESOURCE)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return want if hard == resource.RLIM_INFINITY else min(want, hard)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(tmp):
    key, crt = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    return key, crt


class Nginx:
    def __init__(self, tmp, port, tls_port=None, worker_connections=4096):
        self.tmp = tmp
        self.port = port
        root = os.path.join(tmp, "www")
        os.makedirs(os.path.join(root, "data"), exist_ok=True)
        large_json(os.path.join(root, "data", "large.json"))
        api_files(root)
        tls = ""
        if tls_port:
            key, crt = self_signed(tmp)
            tls = f"""
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        keepalive_requests 1000000;
        keepalive_timeout 300s;
        root {root};
        location /api/ {{ default_type application/json; return 200 '{SMALL_JSON}'; }}
        location /data/ {{ }}
        location /json/ {{ }}
    }}"""
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
master_process off;
worker_rlimit_nofile {nofile(worker_connections + 1000)};
error_log {tmp}/error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    sendfile off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    gzip on;
    gzip_types application/json;
    gzip_min_length 512;
    types {{ application/json json; }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 1000000;
        keepalive_timeout 300s;
        root {root};
        location /api/ {{ default_type application/json; return 200 '{SMALL_JSON}'; }}
        location /data/ {{ }}
        location /json/ {{ }}
    }}{tls}
}}
""")

        def raise_nofile():
            lim = nofile(worker_connections + 1000)
            resource.setrlimit(resource.RLIMIT_NOFILE, (lim, lim))

        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", tmp, "-e", f"{tmp}/error.log"],
                                     preexec_fn=raise_nofile)
        for _ in range(100):
            if self.proc.poll() is not None:
                break
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                f"http://127.0.0.1:{port}/api/ping"], capture_output=True, text=True)
            if r.stdout == "200":
                return
            time.sleep(0.1)
        raise SystemExit(f"nginx did not come up on {port}: {open(f'{tmp}/error.log').read()}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


# ---------------------------------------------------------------- agent


class Agent:
    def __init__(self, agent, args, env=None):
        self.cmd = [agent, *args]
        self.proc = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines = []
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if "capturing" in line:
                    ready.set()
            ready.set()

        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()
        if not ready.wait(60) or self.proc.poll() is not None:
            raise SystemExit(f"agent did not start: {' '.join(self.cmd)}\n" + "\n".join(self.lines[-20:]))

    @property
    def pid(self):
        return self.proc.pid

    def capturing(self):
        """The agent's `capturing:` line (it names the syscall hooks in use)."""
        return next((ln for ln in self.lines if "capturing" in ln), "")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        self.thread.join(10)
        for line in reversed(self.lines):
            if "stopped: " in line:
                return json.loads(line.split("stopped: ", 1)[1])
        return {}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def peak_rss(pid, secs):
    """Highest VmRSS (KiB) sampled every 100 ms for `secs` seconds."""
    peak, end = 0, time.monotonic() + secs
    while time.monotonic() < end:
        peak = max(peak, status_kib(pid, "VmRSS"))
        time.sleep(0.1)
    return peak


def losses(summary, prefix=""):
    """Every nonzero counter whose name speaks of a drop or a loss."""
    out = {}
    if isinstance(summary, dict):
        for k, v in summary.items():
            name = f"{prefix}{k}"
            if isinstance(v, dict):
                out.update(losses(v, name + "."))
            elif isinstance(v, (int, float)) and v and re.search(r"drop|lost|loss|gap|overflow|evict", k):
                out[name] = v
    return out


# ---------------------------------------------------------------- wrk


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def wrk(url, threads=2, conns=32, secs=10, script=None):
    extra = ["-s", script] if script else []
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", *extra, url],
                         capture_output=True, text=True, check=True).stdout
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        res[f"p{pct}"] = to_ms(m.group(1)) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    res["socket_errors"] = m.group(1).strip() if m else ""
    return res


# ---------------------------------------------------------------- pipeline


def record(agent, tmp, port, out, traffic):
    a = Agent(agent, ["record", "--out", out, "--port", str(port)])
    traffic()
    time.sleep(1)
    a.stop()
    return os.path.getsize(out)


def replay(agent, rec, runs):
    best = None
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.Popen([agent, "replay", rec, "--output", "/dev/null"], stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        if status != 0:
            raise SystemExit(f"replay failed ({status}): {err[-2000:]}")
        m = re.search(r"replayed: (\{.*\})", err)
        summary = json.loads(m.group(1)) if m else {}
        run = {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kib": ru.ru_maxrss,
               "events": summary.get("events", 0), "exchanges": summary.get("exchanges_written", 0)}
        if best is None or run["wall"] < best["wall"]:
            best = run
    return best


# Pipeline stages and helpers whose inclusive share of the replay's CPU the profile reports, in
# pipeline order: (label, symbol as perf demangles it).
PROFILE_STAGES = [
    ("reassembly + HTTP parsing and pairing", "sensor_agent::pipeline::Analysis::advance"),
    ("HTTP/1 parser", "sensor_agent::http::parser::StreamParser::run"),
    ("detection, all of it", "sensor_agent::detect::Detect::inspect"),
    ("sensitive-data scan", "sensor_agent::detect::sensitive::Detector::inspect"),
    ("JSON body walk (sensitive)", "sensor_agent::detect::sensitive::json::scan_json"),
    ("endpoint inventory", "sensor_agent::detect::inventory::Inventory::observe"),
    ("route matching", "sensor_agent::detect::inventory::Inventory::route"),
    ("export record (masking, headers)", "sensor_agent::export::record::ExchangeRecord::new"),
    ("JSON Lines serialisation", "sensor_agent::export::jsonl::JsonlWriter::write"),
]


PERF_RECORD = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384"]


def perf_report(data):
    """Inclusive share per symbol and the symbols with >= 2 % self time, from a `perf record`
    file (software clock, so it works in VMs; DWARF call graphs: release builds keep no frame
    pointers)."""
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", "-g", "none", "--sort", "symbol",
                          "--percent-limit", "0.5"], capture_output=True, text=True).stdout
    inclusive, self_time = {}, []
    for ln in rep.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[[.k]\]\s+(.*?)\s*$", ln)
        if not m:
            continue
        children, own, sym = float(m.group(1)), float(m.group(2)), m.group(3)
        # Without a terminal perf pads the line with more columns: the symbol ends at a wide gap.
        sym = re.split(r"\s{2,}", sym)[0].removesuffix(" (inlined)")
        inclusive[sym] = max(children, inclusive.get(sym, 0.0))
        if own >= 2.0:
            self_time.append((own, sym))
    return inclusive, self_time


# The live agent's stages before the pipeline's (a symbol perf does not report, inlined, is left out).
LIVE_STAGES = [
    ("capture: ring-buffer record decode + enrichment", "sensor_agent::pipeline::Capture::ingest"),
    ("delivery to the exporters", "sensor_agent::pipeline::deliver"),
    *PROFILE_STAGES,
]


def profile_tables(data, what, stages=PROFILE_STAGES):
    """The stage table and the highest self times of a perf file, as Markdown."""
    inclusive, self_time = perf_report(data)
    rows = [f"| stage | symbol | share of {what} CPU (inclusive) |", "| --- | --- | ---: |"]
    for label, sym in stages:
        if sym in inclusive:
            rows.append(f"| {label} | `{sym}` | {inclusive[sym]:.1f} % |")
    top = sorted(self_time, reverse=True)[:10]
    rows += ["", "| highest self time | share |", "| --- | ---: |",
             *(f"| `{sym}` | {own:.1f} % |" for own, sym in top)]
    return "\n".join(rows)


def profile(agent, recs):
    """Where the replay of the small recording spends its CPU, inclusive per pipeline stage."""
    if not shutil.which("perf"):
        return "Profile: not taken: `perf` is not installed (Debian: linux-perf)."
    rec = next(iter(recs.values()))[0]
    data = rec + ".perf"
    run = subprocess.run([*PERF_RECORD, "-o", data, agent, "replay", rec, "--output", "/dev/null"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        return f"Profile: not taken: perf record failed: {run.stderr.strip()[:200]}"
    tables = profile_tables(data, "replay")
    os.remove(data)
    return ("Profile of the small replay (`perf record -e cpu-clock --call-graph dwarf`, 499 Hz; "
            "shares overlap: a stage includes what it calls):\n\n" + tables)


def part_pipeline(agent, tmp, quick):
    port = free_port()
    ng = Nginx(tmp, port)
    base = f"http://127.0.0.1:{port}"
    secs = 3 if quick else 8
    recs = {}
    try:
        small = os.path.join(tmp, "small.rec")
        log(f"recording small exchanges (wrk -t2 -c16 -d{secs}s)")
        size = record(agent, tmp, port, small, lambda: wrk(f"{base}/api/items?id=1", 2, 16, secs))
        recs["small JSON GETs (wrk, keep-alive)"] = (small, size)

        mixed = os.path.join(tmp, "mixed.rec")

        def mixed_traffic():
            w = threading.Thread(target=wrk, args=(f"{base}/api/orders?page=2", 1, 4, secs))
            w.start()
            n = 30 if quick else 100
            for i in range(n):
                subprocess.run(["curl", "-s", "-o", "/dev/null", "--compressed", f"{base}/data/large.json"],
                               check=True)
                if i % 4 == 0:
                    subprocess.run(["curl", "-s", "-o", "/dev/null", f"{base}/data/large.json"], check=True)
                    subprocess.run(["curl", "-s", "-o", "/dev/null", "-H", "content-type: application/json",
                                    "--data", '{"cardNumber":"4111111111111111","iban":"GB82WEST12345698765432"}',
                                    f"{base}/api/pay"], check=True)
            w.join()

        log("recording mixed traffic (wrk small + curl large JSON, gzip and identity, POST bodies)")
        size = record(agent, tmp, port, mixed, mixed_traffic)
        recs["mixed: small GETs + large JSON (gzip and identity) + POSTs with cards/IBANs"] = (mixed, size)
    finally:
        ng.stop()

    runs = 3 if quick else 5
    rows, small_rate, small_cost = [], None, (0.0, 0.0)
    for name, (rec, size) in recs.items():
        log(f"replaying {rec} ({size / 1e6:.1f} MB), best of {runs}")
        r = replay(agent, rec, runs)
        per_core = r["exchanges"] / r["cpu"] if r["cpu"] else float("nan")
        if small_rate is None:
            small_rate = per_core
            small_cost = (1e6 * r["cpu"] / max(r["events"], 1), 1e6 * r["cpu"] / max(r["exchanges"], 1))
        rows.append(f"| {name} | {size / 1e6:.1f} | {r['events']} | {r['exchanges']} | {r['wall']:.3f} | "
                    f"{r['cpu']:.3f} | {r['exchanges'] / r['wall']:,.0f} | {per_core:,.0f} | "
                    f"{size / 1e6 / r['cpu']:.1f} | {r['maxrss_kib'] / 1024:.1f} |")
    body = ["| recording | MB | events | exchanges | wall s (best) | CPU s | exchanges/s (wall) | "
            "exchanges/s per CPU-second | MB/s per CPU-second | peak RSS MiB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows, ""]
    met = "met" if small_rate >= 500_000 else "NOT met"
    body.append(f"Aim: >= 500,000 small exchanges/s per core: {small_rate:,.0f}: {met} "
                f"({small_cost[1]:.1f} us of CPU per small exchange, {small_cost[0]:.2f} us per recorded event).")
    body.append("")
    body.append(profile(agent, recs))
    body.append("")
    body.append("Exchanges are both sides (nginx as server, wrk/curl as client); events are recording "
                "records (connection metadata, payload chunks, closes). CPU s is the replay process's "
                "user + system time (getrusage), peak RSS its ru_maxrss.")
    return "\n".join(body)


# ---------------------------------------------------------------- overhead

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER_RS = os.path.join(REPO, "sensor-agent", "src", "capture", "loader.rs")
SSL_SYMBOLS = ("SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex")
OVERHEAD_LOADS = [(1, 16), (2, 64)]
BODIES = {"tiny": "66-byte JSON (`/api/`)", "1-4 KB": "1-4 KB JSON files, half gzip (`/json/`)"}
SENSORS = ("file", "devnull", "baseline-file")


def rust_str_list(source, const):
    """The strings of `const NAME: &[&str] = &[...];` in Rust source."""
    m = re.search(rf"const {const}: &\[&str\] = &\[(.*?)\];", source, re.S)
    names = re.findall(r'"([^"]+)"', m.group(1)) if m else []
    if not names:
        raise SystemExit(f"{const} not found in {LOADER_RS}: the floor cannot know which hooks apisense uses")
    return names


def apisense_tracepoints():
    """(category, name) of every tracepoint the agent attaches, read from the loader's source."""
    with open(LOADER_RS) as f:
        src = f.read()
    return ([("syscalls", n) for n in rust_str_list(src, "SYSCALL_TRACEPOINTS")] +
            [("sched", n) for n in rust_str_list(src, "SCHED_TRACEPOINTS")])


def linked_libssl(binary):
    """The libssl the binary really loads (ldd), resolved; None when it links none."""
    out = subprocess.run(["ldd", shutil.which(binary)], capture_output=True, text=True).stdout
    m = re.search(r"libssl\.so\S*\s+=>\s+(/\S+)", out)
    return os.path.realpath(m.group(1)) if m else None


def floor_script(tmp, libssl):
    """A bpftrace script with empty actions on the agent's hooks; returns (path, probe count)."""
    probes = [f"tracepoint:{cat}:{name}" for cat, name in apisense_tracepoints()]
    if libssl:
        probes += [f"{kind}:{libssl}:{sym}" for sym in SSL_SYMBOLS for kind in ("uprobe", "uretprobe")]
    path = os.path.join(tmp, "floor.bt")
    with open(path, "w") as f:
        f.write("".join(f"{p} {{}}\n" for p in probes))
    return path, len(probes)


def attachments(pid):
    """Perf events and BPF links the process holds (one per attached probe, plus bpftrace's own)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        n += target in ("anon_inode:[perf_event]", "anon_inode:bpf_link")
    return n


class Floor:
    """bpftrace with empty programs on exactly the agent's hooks: what the hooks alone cost."""

    def __init__(self, script, probes):
        self.proc = subprocess.Popen(["bpftrace", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines = []
        threading.Thread(target=self.pump, daemon=True).start()
        self.wait_attached(probes)

    def pump(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_attached(self, probes, limit=60.0):
        """bpftrace prints "Attaching N probes..." before attaching: wait until N are held and the
        count has settled for half a second."""
        last, since, end = -1, time.monotonic(), time.monotonic() + limit
        while time.monotonic() < end and self.proc.poll() is None:
            n = attachments(self.proc.pid) if any("Attaching" in ln for ln in self.lines) else 0
            if n != last:
                last, since = n, time.monotonic()
            elif n >= probes and time.monotonic() - since >= 0.5:
                return
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"bpftrace did not attach {probes} probes ({last} held):\n" + "".join(self.lines[-20:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)


def overhead_cases(port, tls_port, quick):
    """(protocol, body, threads, conns, url) of every measured case."""
    loads = OVERHEAD_LOADS[:1] if quick else OVERHEAD_LOADS
    for proto, base in (("http", f"http://127.0.0.1:{port}"), ("https", f"https://127.0.0.1:{tls_port}")):
        for body, path in (("tiny", "/api/items"), ("1-4 KB", "/json/")):
            for threads, conns in loads:
                yield proto, body, threads, conns, base + path


def rotated(modes, rnd):
    k = rnd % len(modes)
    return modes[k:] + modes[:k]


def sensor_run(binary, mode, case, ctx):
    """One wrk run with an agent: CPU over the wrk window plus a 1 s drain, RSS, counters."""
    proto, body, threads, conns, url = case
    out = os.path.join(ctx["tmp"], "exchanges.jsonl") if mode.endswith("file") else "/dev/null"
    state = os.path.join(ctx["tmp"], f"state-{mode}")
    a = Agent(binary, ["run", "--output", out, "--port", str(ctx["port"]), "--port", str(ctx["tls_port"]),
                       "--state-dir", state])
    try:
        time.sleep(1)
        c0 = cpu_seconds(a.pid)
        res = wrk(url, threads, conns, ctx["secs"], ctx["script"] if body != "tiny" else None)
        time.sleep(1)
        res["cpu_s"] = cpu_seconds(a.pid) - c0
        res["rss_kib"], res["hwm_kib"] = status_kib(a.pid, "VmRSS"), status_kib(a.pid, "VmHWM")
    finally:
        summary = a.stop()  # never leave an agent attached behind a failed run
    res["written"] = summary.get("exchanges_written", 0)
    res["losses"] = losses(summary)
    if out != "/dev/null":
        res["server"], res["client"] = count_roles(out)
        os.remove(out)
    shutil.rmtree(state, ignore_errors=True)
    # Per server-side exchange (one per request; both sides are captured): counted lines for a file,
    # half the summary's exchanges_written for /dev/null.
    server = res.get("server", res["written"] / 2)
    res["us_per_exchange"] = 1e6 * res["cpu_s"] / server if server else float("nan")
    return res


def one_run(mode, case, ctx):
    proto, body, threads, conns, url = case
    script = ctx["script"] if body != "tiny" else None
    if mode == "off":
        return wrk(url, threads, conns, ctx["secs"], script)
    if mode == "floor":
        fl = Floor(*ctx["floor"])
        try:
            return wrk(url, threads, conns, ctx["secs"], script)
        finally:
            fl.stop()
    if mode == "hooks":
        return hooks_run(case, ctx)
    binary = ctx["baseline"] if mode == "baseline-file" else ctx["agent"]
    return sensor_run(binary, mode, case, ctx)


def hooks_run(case, ctx):
    """The agent's own programs on every hook, following a port nothing uses: each connection's
    first bytes reach the agent, which then mutes it in the kernel. What the hooks cost a service
    the sensor does not follow (and the floor of what it costs one it follows)."""
    proto, body, threads, conns, url = case
    a = Agent(ctx["agent"], ["run", "--output", "/dev/null", "--port", str(ctx["unused_port"]),
                             "--state-dir", os.path.join(ctx["tmp"], "state-hooks")])
    try:
        time.sleep(1)
        return wrk(url, threads, conns, ctx["secs"], ctx["script"] if body != "tiny" else None)
    finally:
        a.stop()


def live_profile(ctx, case):
    """perf on the live agent (`file` mode) for the wrk window of one case."""
    if not shutil.which("perf"):
        return "Profile: not taken: `perf` is not installed (Debian: linux-perf)."
    proto, body, threads, conns, url = case
    out, data = os.path.join(ctx["tmp"], "profile.jsonl"), os.path.join(ctx["tmp"], "live.perf")
    a = Agent(ctx["agent"], ["run", "--output", out, "--port", str(ctx["port"]), "--port", str(ctx["tls_port"]),
                             "--state-dir", os.path.join(ctx["tmp"], "state-profile")])
    try:
        time.sleep(1)
        perf = subprocess.Popen([*PERF_RECORD, "-o", data, "-p", str(a.pid)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        res = wrk(url, threads, conns, ctx["secs"])
        perf.send_signal(signal.SIGINT)
        err = perf.communicate(timeout=300)[1]
    finally:
        a.stop()
    os.remove(out)
    # Stopped by SIGINT, perf exits with 130 once it has written the file.
    if perf.returncode not in (0, 130, -signal.SIGINT) or not os.path.exists(data):
        return f"Profile: not taken: perf record failed ({perf.returncode}): {err.strip()[:200]}"
    log("perf report of the live agent (DWARF unwinding: a minute or two)")
    tables = profile_tables(data, "agent", LIVE_STAGES)
    os.remove(data)
    return (f"Profile of the live agent, `file` mode, {proto} {body} `wrk -t{threads} -c{conns}` "
            f"({res['rps']:,.0f} requests/s under perf; `perf record -e cpu-clock -F 499 --call-graph dwarf,16384 "
            "-p AGENT` for the wrk window; shares overlap: a stage includes what it calls):\n\n" + tables)


def med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def ratio(results, case, mode, base):
    if (case, mode) not in results:
        return float("nan")
    return med([r["rps"] for r in results[(case, mode)]]) / med([r["rps"] for r in results[(case, base)]])


def lost(results, case):
    """Whether any `file` run of the case lost an exchange (counters, or fewer server lines than requests)."""
    return any(r["losses"] or r["server"] < r["requests"] for r in results[(case, "file")])


def target(case, results):
    """The issue's aim for the case and whether `file` mode meets it."""
    proto, body, threads, conns, _ = case
    if proto == "https":
        aim, got = "file/floor >= 0.90", ratio(results, case, "file", "floor") >= 0.90
    elif body == "tiny":
        aim, got = "file/off >= 0.90, none lost", ratio(results, case, "file", "off") >= 0.90
        got = got and not lost(results, case)
    else:
        aim, got = "file/off >= 0.85", ratio(results, case, "file", "off") >= 0.85
    stated = proto == "https" or body != "tiny" or (threads, conns) == OVERHEAD_LOADS[0]
    note = "" if stated else " (stated for -t1 -c16)"
    return f"{aim}{note}: {'met' if got else 'NOT met'}"


def case_name(case):
    proto, body, threads, conns, _ = case
    return f"{proto} | {body} | -t{threads} -c{conns}"


def summary_table(cases, modes, results):
    base = "baseline-file" in modes
    head = ("| protocol | body | load | off req/s | floor/off | hooks/off | file/off | file/floor | devnull/off | "
            "devnull/floor | "
            + ("baseline-file/off | baseline-file/floor | " if base else "")
            + "file µs/exchange | devnull µs/exchange | file RSS MiB (VmHWM) | "
              "file server lines / wrk requests, per run | target |")
    cols = head.count("|") - 1
    rows = [head, "| " + " | ".join(["---"] * 3 + ["---:"] * (cols - 4) + ["---"]) + " |"]
    for case in cases:
        fr = results[(case, "file")]
        off = med([r["rps"] for r in results[(case, "off")]])
        cells = [f"{off:,.0f}", f"{ratio(results, case, 'floor', 'off'):.3f}",
                 f"{ratio(results, case, 'hooks', 'off'):.3f}"]
        for mode in ("file", "devnull") + (("baseline-file",) if base else ()):
            cells += [f"{ratio(results, case, mode, 'off'):.3f}", f"{ratio(results, case, mode, 'floor'):.3f}"]
        cells += [f"{med([r['us_per_exchange'] for r in fr]):.1f}",
                  f"{med([r['us_per_exchange'] for r in results[(case, 'devnull')]]):.1f}",
                  f"{med([r['rss_kib'] for r in fr]) / 1024:.1f} ({max(r['hwm_kib'] for r in fr) / 1024:.1f})",
                  ", ".join(f"{100 * r['server'] / max(r['requests'], 1):.2f}" for r in fr) + " %",
                  target(case, results)]
        rows.append(f"| {case_name(case)} | " + " | ".join(cells) + " |")
    return rows


def raw_table(cases, modes, results):
    rows = ["| protocol | body | load | mode | requests/s per run (run order) | p50 ms | p99 ms | "
            "agent CPU s per run | exchanges written / 2 x wrk requests | loss counters (summed) |",
            "| --- | --- | --- | --- | --- | ---: | ---: | --- | --- | --- |"]
    for case in cases:
        for mode in modes:
            rs = results[(case, mode)]
            sensor = mode in SENSORS
            summed = {}
            for r in rs:
                for k, v in r.get("losses", {}).items():
                    summed[k] = summed.get(k, 0) + v
            rows.append(f"| {case_name(case)} | {mode} | " + ", ".join(f"{r['rps']:,.0f}" for r in rs) +
                        f" | {med([r['p50'] for r in rs]):.3f} | {med([r['p99'] for r in rs]):.3f} | " +
                        (", ".join(f"{r['cpu_s']:.2f}" for r in rs) if sensor else "-") + " | " +
                        (", ".join(f"{r['written']}/{2 * r['requests']}" for r in rs) if sensor else "-") + " | " +
                        ((json.dumps(summed) if summed else "none") if sensor else "-") + " |")
    return rows


def part_overhead(agent, tmp, quick):
    if not shutil.which("bpftrace"):
        raise SystemExit("bpftrace not found (apt-get install bpftrace): it measures the floor")
    port, tls_port = free_port(), free_port()
    ng = Nginx(tmp, port, tls_port)
    libssl = linked_libssl("nginx")
    baseline = os.environ.get("APISENSE_BENCH_BASELINE")
    modes = ["off", "floor", "hooks", "file", "devnull"] + (["baseline-file"] if baseline else [])
    ctx = {"agent": agent, "baseline": baseline, "tmp": tmp, "port": port, "tls_port": tls_port,
           "unused_port": free_port(),
           "secs": 3 if quick else 10, "script": rotate_script(tmp), "floor": floor_script(tmp, libssl)}
    cases = list(overhead_cases(port, tls_port, quick))
    rounds, results = 3, {}
    try:
        for rnd in range(rounds):
            for case in cases:
                for mode in rotated(modes, rnd):
                    log(f"round {rnd + 1}/{rounds} {case_name(case).replace(' | ', ' ')} {mode}")
                    results.setdefault((case, mode), []).append(one_run(mode, case, ctx))
        log("profiling the live agent")
        prof = live_profile(ctx, cases[0])
    finally:
        ng.stop()
    probes = ctx["floor"][1]
    body = summary_table(cases, modes, results)
    body += ["", f"Ratios are of median requests/s over {rounds} rounds (modes alternating, order rotated each "
             f"round); `floor` is bpftrace with empty programs on {probes} hooks "
             f"(the {len(apisense_tracepoints())} per-call tracepoints read from `sensor-agent/src/capture/loader.rs`"
             + (f", uprobes and uretprobes on {', '.join(SSL_SYMBOLS)} in `{libssl}`)" if libssl else ")")
             + ". Debian's bpftrace (0.17) cannot attach raw tracepoints, so this floor is of the per-call "
             "syscall tracepoints, which cost more than the BTF raw tracepoints apisense attaches on x86-64; "
             "`hooks` is apisense's own programs on every hook, following a port nothing uses (each "
             "connection's first bytes reach the agent, which mutes it): the kernel-side cost to a service "
             "the sensor does not follow. µs/exchange: agent CPU (utime + stime, wrk window + 1 s drain) per server-side exchange "
             "(file: lines counted; devnull: exchanges_written / 2).",
             "Targets (issue 16): throughput on/off >= 0.90 plaintext tiny -t1 -c16 with no exchange lost; "
             ">= 0.85 with 1-4 KB bodies; TLS >= 0.90 of the bare-uprobe floor.",
             "", "Per-run raw numbers:", "", *raw_table(cases, modes, results), "", prof, "",
             "Reproduce: `cargo xtask bench overhead` (before/after in one run: "
             "`APISENSE_BENCH_BASELINE=/path/to/other/apisense cargo xtask bench overhead`; "
             "harness smoke test: `cargo xtask bench overhead --quick`)."]
    return "\n".join(body)



# ---------------------------------------------------------------- hooks


HOOK_FAMILIES = [("per-call syscall tracepoints", "tracepoints"), ("raw tracepoints", "raw"),
                 ("BTF raw tracepoints (default on x86-64)", None)]


def with_hooks(agent, tmp, family, fn):
    """Runs fn() with the agent attached by `family` (APISENSE_SYSCALL_HOOKS), following a port
    nothing uses, so its programs run on every syscall and copy nothing after first bytes."""
    env = {"APISENSE_SYSCALL_HOOKS": family} if family else {}
    a = Agent(agent, ["run", "--output", "/dev/null", "--port", str(free_port()),
                      "--state-dir", os.path.join(tmp, "state-hooks")], env)
    try:
        want = {"tracepoints": "(syscalls: per-call", "raw": "(syscalls: raw", None: "(syscalls: BTF"}[family]
        if want not in a.capturing():
            raise SystemExit(f"the agent did not attach the hooks asked for ({want}): {a.capturing()}")
        time.sleep(1)
        return fn()
    finally:
        a.stop()


def part_hooks(agent, tmp, quick):
    """What the syscall hooks cost, per hook family: CPU per syscall of a caller (bench/syscall_cost.c)
    and the throughput of a saturated nginx the sensor does not follow."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise SystemExit("a C compiler (cc) is needed for bench/syscall_cost.c")
    exe = os.path.join(tmp, "syscall_cost")
    subprocess.run([cc, "-O2", "-o", exe, os.path.join(REPO, "bench", "syscall_cost.c")], check=True)
    port = free_port()
    ng = Nginx(tmp, port)
    url = f"http://127.0.0.1:{port}/api/items"
    secs = 3 if quick else 8
    rounds = 3
    modes = [("off", None)] + [(name, fam or "btf") for name, fam in HOOK_FAMILIES]
    cost, rps = {}, {}

    def measure():
        c = json.loads(subprocess.run([exe], capture_output=True, text=True, check=True).stdout)
        return c, wrk(url, 1, 16, secs)["rps"]

    try:
        for rnd in range(rounds):
            for name, fam in rotated(modes, rnd):
                log(f"round {rnd + 1}/{rounds} hooks: {name}")
                if fam is None:
                    c, r = measure()
                else:
                    c, r = with_hooks(agent, tmp, None if fam == "btf" else fam, measure)
                cost.setdefault(name, []).append(c)
                rps.setdefault(name, []).append(r)
    finally:
        ng.stop()
    off_rps = med(rps["off"])
    rows = ["| hooks | write(/dev/null) ns | getppid ns | socketpair write+read ns per call | "
            "nginx req/s (wrk -t1 -c16, not followed) | ratio to off |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, _ in modes:
        c = cost[name]
        rows.append(f"| {name} | {med([x['write_devnull'] for x in c]):.0f} | {med([x['getppid'] for x in c]):.0f} | "
                    f"{med([x['socketpair'] for x in c]):.0f} | {med(rps[name]):,.0f} | {med(rps[name]) / off_rps:.3f} |")
    rows += ["", f"Medians of {rounds} rounds, modes alternating (order rotated each round). ns: the calling "
             "process's CPU time per syscall, best of 5 loops of 10^6 calls (bench/syscall_cost.c). The agent "
             "follows a port nothing uses: its programs run on every hooked syscall, and each connection's "
             "first bytes reach it before it mutes the connection in the kernel. A followed syscall (write, "
             "read) pays the program's work; one the sensor does not follow (getppid) pays the hook's "
             "dispatch: a bitmap test for the per-call tracepoints, two program invocations for the raw ones."]
    return "\n".join(rows)


# ---------------------------------------------------------------- fidelity


def count_roles(path):
    server = client = 0
    with open(path, "rb") as f:
        for line in f:
            if b'"role":"server"' in line:
                server += 1
            elif b'"role":"client"' in line:
                client += 1
    return server, client


def count_server(path):
    return count_roles(path)[0]


def part_fidelity(agent, tmp, quick):
    port = free_port()
    ng = Nginx(tmp, port)
    secs = 3 if quick else 5
    levels = [(1, 1), (1, 2), (1, 4), (2, 16), (2, 64), (2, 256)]
    rows, first_loss, levels_seen = [], None, []
    try:
        for threads, conns in levels:
            out = os.path.join(tmp, f"ex-{conns}.jsonl")
            a = Agent(agent, ["run", "--output", out, "--port", str(port), "--state-dir", os.path.join(tmp, "state")])
            time.sleep(1)
            log(f"wrk -t{threads} -c{conns} -d{secs}s with the sensor on")
            res = wrk(f"http://127.0.0.1:{port}/api/items", threads, conns, secs)
            time.sleep(2)
            summary = a.stop()
            seen, client = count_roles(out)
            os.remove(out)
            kern = summary.get("kernel", {}) or {}
            dropped = kern.get("ringbuf_dropped", 0)
            other = {k: v for k, v in losses(summary).items() if not k.startswith("kernel.ringbuf_dropped")}
            missing = res["requests"] - seen
            levels_seen.append((conns, 2 * res["rps"], missing > 0 or dropped > 0))
            if first_loss is None and (missing > 0 or dropped > 0):
                first_loss = (conns, res["rps"])
            rows.append(f"| {threads} | {conns} | {res['rps']:,.0f} | {2 * res['rps']:,.0f} | {res['requests']} | {seen} | "
                        f"{client} | "
                        f"{missing} | {100 * seen / max(res['requests'], 1):.3f} | {dropped} | "
                        f"{kern.get('ringbuf_dropped_bytes', 0)} | {json.dumps(other) if other else '-'} |")
    finally:
        ng.stop()
    body = ["| wrk threads | connections | requests/s (wrk) | exchanges/s to report (both sides) | "
            "requests completed (wrk) | server exchanges (agent) | client exchanges (agent) | "
            "server missing | server captured % | ring-buffer drops | dropped bytes | other loss counters |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |", *rows, ""]
    if first_loss:
        body.append(f"Loss begins at {first_loss[0]} connections ({first_loss[1]:,.0f} requests/s, "
                    f"{2 * first_loss[1]:,.0f} exchanges/s counting both sides). "
                    "Note: wrk does not count requests still in flight when it stops, so the agent can report a "
                    "few more server exchanges than wrk completed (negative 'missing').")
    else:
        body.append("No loss at any level measured.")
    clean = [(r, c) for c, r, lost in levels_seen if not lost]
    lossy = [(r, c) for c, r, lost in levels_seen if lost]
    best = max(clean, default=(0, 0))
    if lossy:
        low = min(lossy)
        strictly = low[0] > 75_000 and best[0] >= 50_000  # lossy levels well above the aim only
        body.append(f"Verdict: lossless up to {best[0]:,.0f} exchanges/s ({best[1]} connection(s)); the lowest rate "
                    f"with loss is {low[0]:,.0f} exchanges/s ({low[1]} connections): loss follows concurrency as "
                    "much as rate. Aim (zero loss at 50,000 exchanges/s, both sides counted): "
                    + ("met (loss only well above it)" if strictly else
                       f"met at low concurrency, NOT met at {low[1]} connections ({low[0]:,.0f}/s)"
                       if best[0] >= 50_000 else
                       f"NOT shown: no level reached 50,000/s without loss in this run")
                    + ".")
    else:
        body.append(f"Verdict: no loss at any level (up to {best[0]:,.0f} exchanges/s); aim "
                    + ("met." if best[0] >= 50_000 else "not reached by the load generator."))
    body.append("Each request is two exchanges to report: nginx's (server) and wrk's (client), both on loopback "
                "and both on the port followed. The aim is read on that count: zero loss at 50,000 exchanges/s "
                "is met when every level at or below that rate shows no loss.")
    return "\n".join(body)


# ---------------------------------------------------------------- memory


async def hold_connections(port, n, ready_file):
    lim = nofile(n + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lim, lim))
    req = f"GET /api/conn HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    conns, failed = [], 0
    sem = asyncio.Semaphore(500)

    async def one():
        nonlocal failed
        async with sem:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(req)
                await w.drain()
                head = await r.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                await r.readexactly(length)
                conns.append((r, w))
            except (OSError, asyncio.IncompleteReadError, AttributeError):
                failed += 1

    await asyncio.gather(*(one() for _ in range(n)))
    with open(ready_file, "w") as f:
        f.write(f"{len(conns)} {failed}\n")
    while not os.path.exists(ready_file + ".done"):
        await asyncio.sleep(0.2)
    for _, w in conns:
        w.close()


def part_memory(agent, tmp, quick):
    port = free_port()
    n = 10_000
    ng = Nginx(tmp, port, worker_connections=20_000)
    out = os.path.join(tmp, "ex.jsonl")
    try:
        a = Agent(agent, ["run", "--output", out, "--port", str(port), "--state-dir", os.path.join(tmp, "state")])
        time.sleep(2)
        before = status_kib(a.pid, "VmRSS")
        ready = os.path.join(tmp, "ready")
        log(f"opening {n} keep-alive connections")
        client = subprocess.Popen([sys.executable, __file__, "_hold", "--port", str(port), "--n", str(n),
                                   "--ready", ready])
        t0 = time.monotonic()
        while not os.path.exists(ready) and time.monotonic() - t0 < 300:
            time.sleep(0.2)
        with open(ready) as f:
            held, failed = (int(x) for x in f.read().split())
        during = peak_rss(a.pid, 5)
        hwm = status_kib(a.pid, "VmHWM")
        open(ready + ".done", "w").close()
        client.wait(timeout=120)
        after = peak_rss(a.pid, 5)
        summary = a.stop()
        seen = count_server(out)
    finally:
        ng.stop()
    per = (during - before) * 1024 / max(held, 1)
    body = ["| connections held | failed | agent RSS before MiB | with connections held MiB (max over 5 s) | "
            "after they closed MiB (max over 5 s) | VmHWM while held MiB | RSS per held connection | server exchanges reported |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {held} | {failed} | {before / 1024:.1f} | {during / 1024:.1f} | {after / 1024:.1f} | {hwm / 1024:.1f} | "
            f"{per:,.0f} bytes | {seen} |", ""]
    lossy = losses(summary)
    body.append(f"Loss counters: {json.dumps(lossy) if lossy else 'none'}.")
    body.append(f"Holding {held} idle keep-alive connections grew the agent's RSS by {(during - before) / 1024:.1f} MiB "
                f"({per:,.0f} bytes each: state for them fits in memory already resident after start-up); closing "
                f"them all at once moved it by {(after - before) / 1024:+.1f} MiB over the baseline.")
    return "\n".join(body)


# ---------------------------------------------------------------- main


# ---------------------------------------------------------------- peers


def process_tree_cpu(pid):
    """CPU seconds of a process and its children (tshark runs dumpcap as a child)."""
    total = 0.0
    try:
        total += cpu_seconds(pid)
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    total += process_tree_cpu(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def wait_quiet(path, idle=2.0, limit=60.0):
    """Waits until the file stops growing (the tool caught up with the traffic)."""
    last, since, end = -1, time.monotonic(), time.monotonic() + limit
    while time.monotonic() < end:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= idle:
            return
        time.sleep(0.2)


def part_peers(agent, tmp, quick):
    """The same plaintext HTTP on loopback, decoded by apisense and by tshark side by side."""
    if not shutil.which("tshark"):
        raise SystemExit("tshark not found (apt-get install tshark)")
    port = free_port()
    ng = Nginx(tmp, port)
    secs = 5 if quick else 10
    rows = []
    try:
        for conns in ([4] if quick else [4, 16]):
            out = os.path.join(tmp, f"apisense-{conns}.jsonl")
            fields = os.path.join(tmp, f"tshark-{conns}.txt")
            a = Agent(agent, ["run", "--output", out, "--port", str(port), "--state-dir", os.path.join(tmp, "state")])
            with open(fields, "w") as f:
                ts = subprocess.Popen(["tshark", "-i", "lo", "-f", f"tcp port {port}", "-l", "-n", "-Y", "http.response",
                                       "-T", "fields", "-e", "http.response.code", "-e", "http.request.uri"],
                                      stdout=f, stderr=subprocess.DEVNULL)
            time.sleep(3)  # tshark's capture child starts
            a0, t0 = cpu_seconds(a.proc.pid), process_tree_cpu(ts.pid)
            log(f"wrk -t1 -c{conns} -d{secs}s, apisense and tshark both decoding")
            res = wrk(f"http://127.0.0.1:{port}/api/items", 1, conns, secs)
            wait_quiet(out)
            wait_quiet(fields)
            a1, t1 = cpu_seconds(a.proc.pid), process_tree_cpu(ts.pid)
            ts.send_signal(signal.SIGINT)
            ts.wait(timeout=30)
            a.stop()
            seen, _client = count_roles(out)
            with open(fields) as f:
                decoded = sum(1 for line in f if line.strip())
            n = max(res["requests"], 1)
            rows.append(f"| {conns} | {res['rps']:,.0f} | {res['requests']} | {seen} | {a1 - a0:.2f} | "
                        f"{1e6 * (a1 - a0) / max(seen, 1):.1f} | {decoded} | {t1 - t0:.2f} | "
                        f"{1e6 * (t1 - t0) / max(decoded, 1):.1f} | {(t1 - t0) / max(a1 - a0, 1e-9):.1f}x |")
            os.remove(out)
    finally:
        ng.stop()
    header = ["| connections | requests/s (wrk) | requests | apisense: server exchanges | apisense CPU s | "
              "apisense CPU µs per exchange | tshark: responses decoded | tshark+dumpcap CPU s | "
              "tshark CPU µs per response | tshark CPU / apisense CPU |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    return "\n".join(header + rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["pipeline", "overhead", "hooks", "fidelity", "memory", "peers", "_hold"])
    ap.add_argument("--agent")
    ap.add_argument("--out-md")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--port", type=int)
    ap.add_argument("--n", type=int)
    ap.add_argument("--ready")
    args = ap.parse_args()
    if args.part == "_hold":
        asyncio.run(hold_connections(args.port, args.n, args.ready))
        return
    for tool in ("nginx", "wrk", "curl", "openssl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install nginx wrk curl openssl)")
    tmp = tempfile.mkdtemp(prefix=f"apisense-bench-{args.part}-")
    try:
        fn = {"pipeline": part_pipeline, "overhead": part_overhead, "hooks": part_hooks, "fidelity": part_fidelity,
              "memory": part_memory, "peers": part_peers}[args.part]
        body = fn(args.agent, tmp, args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(args.out_md, "w") as f:
        f.write(body + "\n")
    print(body)


if __name__ == "__main__":
    main()
