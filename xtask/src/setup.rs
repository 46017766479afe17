//! Toolchain bootstrap (see DESIGN.md, "Build"): the eBPF programs build with the nightly
//! toolchain and bpf-linker, which must link against the same LLVM as that nightly rustc. No LLVM
//! development package of that version exists on these machines, but the nightly toolchain ships
//! its own libLLVM; a prefix with that library and an `llvm-config` that prints its version is all
//! bpf-linker's build needs.
use std::{
    env, fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

const BPF_LINKER_VERSION: &str = "0.13.0";
/// What a command is about to do, so that setup installs what it needs and nothing more.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Build and run the sensor: toolchain and mounts only.
    Run,
    /// Every test under `cargo xtask test`: also the servers and clients the tests drive.
    Test,
    /// `cargo xtask bench`: the test packages plus the load generators, profilers and peers.
    Bench,
}

/// Debian packages the end-to-end tests drive, each with the command it provides (looked up on
/// `PATH` and in the sbin folders, so a tool installed another way, e.g. python from pyenv,
/// counts): servers, and TLS clients of each library probed (OpenSSL: curl; GnuTLS: wget,
/// gnutls-cli; NSS: tstclnt, certutil).
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("nginx", "nginx"),
    ("curl", "curl"),
    ("openssl", "openssl"),
    ("wget", "wget"),
    ("gnutls-bin", "gnutls-cli"),
    ("libnss3-tools", "tstclnt"),
    ("python3", "python3"),
    ("nodejs", "node"),
    // `apisense status` on a Java server (tests/e2e/status.rs).
    ("default-jre-headless", "java"),
    // The inventory's HTML report rendered headless (tests/e2e/inventory.rs).
    ("chromium", "chromium"),
    // Go HTTPS servers and clients built by the Go TLS tests (standard library only).
    ("golang-go", "go"),
    // The agent's image run as the DaemonSet runs it (tests/e2e/container.rs): podman, with runc
    // because crun refuses this sandbox's hybrid cgroups.
    ("podman", "podman"),
    ("runc", "runc"),
];
/// What `cargo xtask bench` adds: the load generator, the profiler, the peer decoder, and bpftrace
/// (the `overhead` part's floor: empty programs on the agent's hooks).
const BENCH_PACKAGES: &[(&str, &str)] =
    &[("wrk", "wrk"), ("linux-perf", "perf"), ("tshark", "tshark"), ("bpftrace", "bpftrace")];
/// Python modules the end-to-end tests import, with the package (from the Python package index) providing each (grpcio:
/// a real gRPC server and client for the HTTP/2 tests).
const TEST_PYTHON_MODULES: &[(&str, &str)] = &[("grpc", "grpcio")];

pub fn workspace_root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

pub fn run(purpose: Purpose) -> anyhow::Result<()> {
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    if is_root() {
        mount_if_missing("tracefs", "/sys/kernel/tracing", "/sys/kernel/tracing/events")?;
        mount_if_missing("bpf", "/sys/fs/bpf", "/sys/fs/bpf/.")?;
        if purpose != Purpose::Run {
            let mut packages = TEST_PACKAGES.to_vec();
            if purpose == Purpose::Bench {
                packages.extend_from_slice(BENCH_PACKAGES);
            }
            ensure_packages(&packages)?;
            ensure_python_modules()?;
        }
    } else {
        eprintln!("xtask: not root: skipping mounts and packages (running the sensor needs root)");
    }
    Ok(())
}

fn ensure_rust_src() -> anyhow::Result<()> {
    let installed = output("rustup", &["component", "list", "--toolchain", "nightly", "--installed"])?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: adding rust-src to the nightly toolchain");
    status("rustup", &["component", "add", "rust-src", "--toolchain", "nightly"], &[])
}

/// The nightly's LLVM (version, library path), read from the toolchain itself.
fn nightly_llvm() -> anyhow::Result<(String, PathBuf)> {
    let verbose = output("rustc", &["+nightly", "-vV"])?;
    let version = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("nightly rustc does not report its LLVM version")?
        .trim()
        .to_owned();
    let sysroot = PathBuf::from(output("rustc", &["+nightly", "--print", "sysroot"])?.trim());
    let lib = fs::read_dir(sysroot.join("lib"))
        .with_context(|| format!("reading {}/lib", sysroot.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        // The versioned name (`libLLVM.so.22.1-rust-...`), which is what bpf-linker records as
        // its NEEDED entry when linked against the `libLLVM.so` symlink.
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libLLVM.so.")))
        .with_context(|| format!("no libLLVM in {}/lib", sysroot.display()))?;
    Ok((version, lib))
}

fn ensure_bpf_linker() -> anyhow::Result<()> {
    let (version, lib) = nightly_llvm()?;
    let cache = cache_dir()?;
    let stamp_path = cache.join("bpf-linker.stamp");
    let stamp = format!("bpf-linker {BPF_LINKER_VERSION} llvm {version} {}\n", lib.display());
    let works = Command::new("bpf-linker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    let major = version.split('.').next().unwrap_or_default().to_owned();
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {version} (about a minute)"
    );
    let prefix = cache.join("llvm-prefix");
    fs::create_dir_all(prefix.join("bin"))?;
    fs::create_dir_all(prefix.join("lib"))?;
    let config = prefix.join("bin/llvm-config");
    fs::write(&config, format!("#!/bin/sh\necho {version}\n"))?;
    fs::set_permissions(&config, fs::Permissions::from_mode(0o755))?;
    // Both names: `libLLVM.so` for the build, the versioned one for the linker's runtime lookup
    // (its RUNPATH points here, so it works outside `rustup run` too).
    for name in ["libLLVM.so".to_owned(), lib.file_name().unwrap_or_default().to_string_lossy().into_owned()]
    {
        let link = prefix.join("lib").join(name);
        let _ = fs::remove_file(&link);
        symlink(&lib, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    status(
        "cargo",
        &[
            "+nightly",
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--force",
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ],
        &[("LLVM_PREFIX", prefix.as_os_str())],
    )?;
    fs::write(&stamp_path, stamp)?;
    Ok(())
}

fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    let dir = base.join("apisense");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn mount_if_missing(fs_type: &str, target: &str, probe: &str) -> anyhow::Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(target))
        || Path::new(probe).exists() && fs_type == "tracefs"
    {
        return Ok(());
    }
    eprintln!("xtask: mounting {fs_type} at {target}");
    status("mount", &["-t", fs_type, fs_type, target], &[])
}

fn ensure_packages(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> =
        packages.iter().filter(|(_, command)| !has_command(command)).map(|(p, _)| *p).collect();
    // python3-venv has no command of its own: `deploy/check.sh` and the bench need the module.
    if has_command("python3") && !python_has_module("venv") && !python_has_module("ensurepip") {
        missing.push("python3-venv");
    }
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing);
    let env = [("DEBIAN_FRONTEND", std::ffi::OsStr::new("noninteractive"))];
    if status("apt-get", &args, &env).is_err() {
        status("apt-get", &["update"], &env)?;
        status("apt-get", &args, &env)?;
    }
    Ok(())
}

fn ensure_python_modules() -> anyhow::Result<()> {
    for (module, package) in TEST_PYTHON_MODULES {
        if !python_has_module(module) {
            eprintln!("xtask: installing the python package {package}");
            status("python3", &["-m", "pip", "install", "--quiet", package], &[])?;
        }
    }
    Ok(())
}

/// A command on `PATH` or in an sbin folder (root's tools such as nginx live there and `PATH`
/// may not list them).
fn has_command(command: &str) -> bool {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .any(|dir| dir.join(command).is_file())
}

fn python_has_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    output("id", &["-u"]).is_ok_and(|s| s.trim() == "0")
}

fn output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn status(program: &str, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> anyhow::Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let st = cmd.status().with_context(|| format!("running {program} {}", args.join(" ")))?;
    if !st.success() {
        bail!("{program} {} failed ({st})", args.join(" "));
    }
    Ok(())
}
