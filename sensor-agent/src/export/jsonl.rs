//! JSON Lines exporter: one exchange per line, to stdout or a 0600 file; the security events an
//! exchange raised follow it, one per line, told apart by `"event":"security"`.
use std::{
    fs::OpenOptions,
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
};

use super::{batch::BatchReceiver, line, record::ExchangeRecord};
use crate::config::Output;

/// Lines are written in chunks this large (or at each flush): at 100k exchanges/s, the default
/// 8 KiB meant a `write(2)` every ~15 lines.
const WRITE_BUFFER: usize = 256 << 10;

pub struct JsonlWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    /// One record's lines, reused: built whole, then written in one call.
    line: Vec<u8>,
    pub written: u64,
}

impl JsonlWriter {
    /// Opens the destination now, so a bad path fails before the probes are attached.
    pub fn open(output: &Output) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match output {
            Output::Stdout => Box::new(io::stdout()),
            Output::File(path) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    // Exchanges describe internal traffic: readable by the owner only.
                    .mode(0o600)
                    .open(path)?,
            ),
        };
        Ok(JsonlWriter { out: BufWriter::with_capacity(WRITE_BUFFER, out), line: Vec::new(), written: 0 })
    }

    pub fn write(&mut self, record: &ExchangeRecord) -> io::Result<()> {
        self.line.clear();
        line::write_record(&mut self.line, record).map_err(io::Error::other)?;
        self.line.push(b'\n');
        for event in &record.events {
            serde_json::to_writer(&mut self.line, event).map_err(io::Error::other)?;
            self.line.push(b'\n');
        }
        self.out.write_all(&self.line)?;
        self.written += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes records until the queue closes; flushes whenever the queue is drained so a record is
/// visible within one batch of its arrival. Blocking: run it on its own thread, so a slow reader
/// of stdout backs up the queue (where drops are counted), not the ring-buffer reader.
pub fn run(mut queue: BatchReceiver<ExchangeRecord>, mut out: JsonlWriter) -> io::Result<u64> {
    while let Some(batch) = queue.blocking_recv() {
        batch.iter().try_for_each(|record| out.write(record))?;
        while let Some(batch) = queue.try_recv() {
            batch.iter().try_for_each(|record| out.write(record))?;
        }
        out.flush()?;
    }
    out.flush()?;
    Ok(out.written)
}
