//! `cargo xtask bench [PART..]`: benchmarks that report, never gate. Each part prints a table
//! and rewrites its own section of BENCHMARKS.md (with the machine and the command).
pub fn run(parts: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("no benchmark parts yet (asked for {parts:?})")
}
