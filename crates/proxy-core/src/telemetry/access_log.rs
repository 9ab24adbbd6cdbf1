//! The access log: one JSON line per request as it ends, to stderr or a file.
//!
//! It is a tap of every request ([`TapHub::open_log`]) whose events a thread of its own
//! writes out, so a slow disk or a full stderr pipe never holds up a request: the
//! queue between them is bounded, and a line that does not fit is dropped and counted
//! (a `{"type":"dropped","count":N}` line says how many). Request headers are never
//! logged.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use super::tap::{Tap, TapHub};

/// Lines queued for the writer; beyond, lines are dropped.
pub const QUEUE: usize = 8192;
/// How long the writer sleeps when it has nothing to write.
const IDLE: Duration = Duration::from_millis(20);
/// How long `stop` waits for the last lines to be written.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// A running access log; `stop` (or dropping it) writes what is queued and ends it.
#[derive(Debug)]
pub struct AccessLog {
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

impl AccessLog {
    /// Starts logging every request of `hub` to `target`: `-` for stderr, else a file
    /// opened for appending (created if absent).
    pub fn start(hub: &Arc<TapHub>, target: &str) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(io::stderr())
        } else {
            Box::new(OpenOptions::new().create(true).append(true).open(target)?)
        };
        let tap = hub
            .open_log(QUEUE)
            .map_err(|_| io::Error::other("the access log could not tap the proxy"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let writer = std::thread::Builder::new()
            .name("meshpy-access-log".into())
            .spawn(move || write_lines(tap, BufWriter::new(out), &stopping))?;
        Ok(Self {
            stop,
            writer: Some(writer),
        })
    }

    /// Writes what is queued and stops, waiting at most a second for the writer.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(writer) = self.writer.take() {
            let deadline = Instant::now() + STOP_WAIT;
            while !writer.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The writer's loop: every queued event as a line, flushed whenever the queue is
/// empty, until `stop` (then what is queued still goes out).
fn write_lines(mut tap: Tap, mut out: impl Write, stop: &AtomicBool) {
    let mut reported = 0;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut wrote = false;
        while let Some(event) = tap.try_event() {
            wrote = true;
            if writeln!(out, "{}", event.to_json()).is_err() {
                return; // stderr or the file is gone: nothing more can be logged
            }
        }
        let (_, dropped) = tap.lost();
        if dropped > reported {
            let line = json!({"type": "dropped", "count": dropped - reported});
            if writeln!(out, "{line}").is_err() {
                return;
            }
            reported = dropped;
            wrote = true;
        }
        if wrote && out.flush().is_err() {
            return;
        }
        if stopping {
            return;
        }
        std::thread::sleep(IDLE);
    }
}

#[cfg(test)]
mod tests;
