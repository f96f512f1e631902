//! The decision log: one JSON line per request, written by its own thread so a slow disk or pipe never
//! holds up a request (when the writer falls behind, lines are dropped and counted).

use std::io::Write;
use std::net::IpAddr;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::metrics::METRICS;

/// Lines queued for the writer before new ones are dropped.
const QUEUE: usize = 65_536;

/// One request's decision. Never holds a credential.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339, milliseconds.
    pub time: String,
    /// Request id (also sent to the client as `X-Request-Id`).
    pub id: &'a str,
    /// Policy revision the request was decided on.
    pub revision: &'a str,
    /// Principal name (empty for anonymous or unauthenticated).
    pub principal: &'a str,
    /// How it authenticated.
    pub auth: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// Client address (through trusted proxies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    /// Endpoint.
    pub route: &'a str,
    /// Repository.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub repository: &'a str,
    /// Action decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'a str>,
    /// Tag or digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<&'a str>,
    /// allow, deny, would_deny (dry-run), invalid, unauthenticated or error.
    pub decision: &'a str,
    /// The deciding rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    /// Why.
    pub reason: &'a str,
    /// Response status.
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// Milliseconds from request to last byte.
    pub duration_ms: f64,
}

enum Msg {
    Line(Vec<u8>),
    Flush(std::sync::mpsc::Sender<()>),
}

/// Where decision lines go.
#[derive(Debug)]
pub struct DecisionLog {
    tx: Option<SyncSender<Msg>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl DecisionLog {
    /// Opens the target: `None` (off), `stdout`, `stderr` or a file path (appended, created if missing).
    pub fn open(target: Option<&str>) -> Result<DecisionLog, String> {
        let Some(target) = target else { return Ok(DecisionLog { tx: None }) };
        let out: Box<dyn Write + Send> = match target {
            "stdout" => Box::new(std::io::stdout()),
            "stderr" => Box::new(std::io::stderr()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("log.decisions: cannot open {path}: {e}"))?,
            ),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer(rx, out))
            .map_err(|e| format!("cannot start the decision log writer: {e}"))?;
        Ok(DecisionLog { tx: Some(tx) })
    }

    /// Queues a line.
    pub fn write(&self, entry: &Entry<'_>) {
        let Some(tx) = &self.tx else { return };
        let mut line = Vec::with_capacity(384);
        if serde_json::to_writer(&mut line, entry).is_err() {
            return;
        }
        line.push(b'\n');
        match tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                METRICS.decision_log_dropped.inc()
            }
        }
    }

    /// Waits (up to `timeout`) until every queued line is written.
    pub fn flush(&self, timeout: Duration) {
        let Some(tx) = &self.tx else { return };
        let (ack, done) = std::sync::mpsc::channel();
        if tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(timeout);
        }
    }
}

/// How long the writer sleeps between batches. Senders never wake it (a send to a channel nobody waits on
/// is a queue push), so a busy gateway pays no wake-up per line; lines reach the file within this delay.
const BATCH: Duration = Duration::from_millis(20);

fn writer(rx: Receiver<Msg>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, out);
    let mut failed = false;
    loop {
        std::thread::sleep(BATCH);
        loop {
            match rx.try_recv() {
                Ok(Msg::Line(line)) => {
                    if let Err(e) = out.write_all(&line)
                        && !failed
                    {
                        failed = true;
                        tracing::error!(error = %e, "cannot write the decision log");
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    let _ = out.flush();
                    let _ = ack.send(());
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        if out.flush().is_ok() {
            failed = false;
        }
    }
}

/// `2026-11-23T06:39:32.123Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
