//! The access log: one JSON line per request, written by a thread of its own so that the request
//! path never waits on a disk or a pipe. Lines hold names, numbers and the path without its query
//! string — never a key, an Authorization value, an MCP credential or a body.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::core::calendar::civil_from_days;

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(PathBuf),
}

/// Lines waiting for the writer before new ones are dropped (and counted).
const QUEUE: usize = 16 * 1024;

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// The access log. The output is opened when the log is created (so a bad path fails the
/// start), the writer thread starts on first use — after Pingora has forked into the
/// background when running as a daemon, since a fork keeps only the calling thread.
pub struct AccessLog {
    out: Mutex<Option<Box<dyn Write + Send>>>,
    tx: OnceLock<Option<SyncSender<Msg>>>,
}

impl AccessLog {
    pub fn off() -> AccessLog {
        AccessLog { out: Mutex::new(None), tx: OnceLock::from(None) }
    }

    pub fn start(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(AccessLog::off()),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        };
        Ok(AccessLog { out: Mutex::new(Some(out)), tx: OnceLock::new() })
    }

    fn sender(&self) -> Option<&SyncSender<Msg>> {
        self.tx
            .get_or_init(|| {
                let out = self.out.lock().ok()?.take()?;
                let (tx, rx) = sync_channel::<Msg>(QUEUE);
                match std::thread::Builder::new().name("aigate-access-log".into()).spawn(move || write_lines(rx, out)) {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        log::error!("cannot start the access log writer: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Start the writer now (after any fork), instead of at the first request.
    pub fn start_writer(&self) {
        let _ = self.sender();
    }

    pub fn enabled(&self) -> bool {
        self.sender().is_some()
    }

    /// Queue a line; returns false when it had to be dropped.
    pub fn write(&self, entry: &Entry<'_>) -> bool {
        let Some(tx) = self.sender() else { return true };
        let mut line = Vec::with_capacity(512);
        if serde_json::to_writer(&mut line, entry).is_err() {
            return false;
        }
        line.push(b'\n');
        match tx.try_send(Msg::Line(line)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Wait (up to a second) until every queued line is written.
    pub fn flush(&self) {
        let Some(tx) = self.sender() else { return };
        let (done_tx, done_rx) = sync_channel(1);
        if tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

/// The writer polls the queue every few milliseconds while lines keep coming, instead of being
/// woken for each line (a futex call per request on the request path otherwise); after a
/// quiet second it blocks until the next line.
fn write_lines(rx: Receiver<Msg>, out: Box<dyn Write + Send>) {
    use std::sync::mpsc::TryRecvError;
    const POLL: std::time::Duration = std::time::Duration::from_millis(5);
    const IDLE_POLLS: u32 = 200;
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let handle = |msg: Msg, out: &mut BufWriter<Box<dyn Write + Send>>| match msg {
        Msg::Line(line) => {
            let _ = out.write_all(&line);
        }
        Msg::Flush(done) => {
            let _ = out.flush();
            let _ = done.try_send(());
        }
    };
    let mut idle = 0u32;
    loop {
        let mut wrote = false;
        loop {
            match rx.try_recv() {
                Ok(msg) => {
                    handle(msg, &mut out);
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        if wrote {
            let _ = out.flush();
            idle = 0;
        } else if idle >= IDLE_POLLS {
            match rx.recv() {
                Ok(msg) => {
                    handle(msg, &mut out);
                    idle = 0;
                    continue;
                }
                Err(_) => break,
            }
        } else {
            idle += 1;
        }
        std::thread::sleep(POLL);
    }
    let _ = out.flush();
}

#[derive(Serialize, Default)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub total: u64,
}

/// One request as logged.
#[derive(Serialize, Default)]
pub struct Entry<'a> {
    pub time: String,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    pub consumer: Option<&'a str>,
    pub route: Option<&'a str>,
    pub service: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ttfb_ms: Option<f64>,
    pub gateway_ms: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_addr: Option<String>,
    /// The upstream's id for the request (its `x-request-id`), what its support asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_missing: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mcp: Vec<McpLog<'a>>,
    /// The limit that refused the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitLog<'a>>,
}

/// Which rate limit or budget refused a request: the plugin and its window (`minute`,
/// `minute-openai`).
#[derive(Serialize)]
pub struct RateLimitLog<'a> {
    pub plugin: &'a str,
    pub window: &'a str,
}

/// An MCP decision or activity, for the log.
#[derive(Serialize)]
pub struct McpLog<'a> {
    pub server_label: &'a str,
    /// The JSON-RPC method (MCP traffic through ai-mcp-proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<&'a str>,
    pub event: &'a str,
}

/// `2026-11-26T09:35:06.123Z`.
pub fn now_rfc3339() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(now.as_secs(), now.subsec_millis())
}

fn format_rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(1_795_685_706, 123), "2026-11-26T09:35:06.123Z");
        assert_eq!(format_rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    }

    #[test]
    fn lines_go_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(&AccessLogTarget::File(path.clone())).unwrap();
        assert!(log.write(&Entry {
            request_id: "r1",
            method: "POST",
            path: "/anything",
            status: 200,
            ..Default::default()
        }));
        for _ in 0..100 {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains("\"request_id\":\"r1\"") {
                let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
                assert_eq!(v["status"], 200);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("line never written");
    }
}
