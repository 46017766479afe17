//! JSON Lines exporter: one exchange per line, to stdout or a 0600 file.
use std::{
    fs::OpenOptions,
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
};

use tokio::sync::mpsc;

use super::record::ExchangeRecord;
use crate::config::Output;

/// Opens the destination now, so a bad path fails before the probes are attached.
pub fn open(output: &Output) -> io::Result<Box<dyn Write + Send>> {
    Ok(match output {
        Output::Stdout => Box::new(io::stdout()),
        Output::File(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                // Exchanges describe internal traffic: readable by the owner only.
                .mode(0o600)
                .open(path)?,
        ),
    })
}

/// Writes records until the channel closes; flushes whenever the channel is drained so a record
/// is visible within one batch of its arrival. Blocking: run it on its own thread, so a slow
/// reader of stdout backs up this channel (where drops are counted), not the ring-buffer reader.
pub fn run(mut rx: mpsc::Receiver<ExchangeRecord>, out: Box<dyn Write + Send>) -> io::Result<u64> {
    let mut out = BufWriter::new(out);
    let mut written = 0u64;
    while let Some(record) = rx.blocking_recv() {
        write(&mut out, &record)?;
        written += 1;
        while let Ok(record) = rx.try_recv() {
            write(&mut out, &record)?;
            written += 1;
        }
        out.flush()?;
    }
    out.flush()?;
    Ok(written)
}

fn write(out: &mut impl Write, record: &ExchangeRecord) -> io::Result<()> {
    serde_json::to_writer(&mut *out, record).map_err(io::Error::other)?;
    out.write_all(b"\n")
}
