//! A real MCP server for the tests: tests/python/mcp_server.py, built with the official MCP
//! Python SDK (FastMCP 1.x from target/pyenv-mcp1, Streamable HTTP), started on a free loopback
//! port (TLS with a certificate of the test CA when asked), and the record of every request it
//! received.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::certs::TestCa;
use super::gateway::free_port;

pub struct McpServer {
    pub addr: SocketAddr,
    pub record: PathBuf,
    /// The `hold` tool answers once this file exists.
    pub hold_file: PathBuf,
    child: Child,
    log: PathBuf,
}

/// How the server runs.
#[derive(Default, Clone)]
pub struct McpServerOptions {
    /// Serve https with a certificate for these names, signed by the CA.
    pub tls_names: Vec<&'static str>,
    /// `application/json` answers instead of SSE.
    pub json: bool,
    pub stateless: bool,
    /// An event store: SSE events carry ids, and a GET with Last-Event-ID replays.
    pub events: bool,
    /// This many more tools (a long list).
    pub extra_tools: usize,
}

impl McpServer {
    pub fn start(dir: &Path, ca: Option<&TestCa>, opts: McpServerOptions) -> McpServer {
        let python = super::python::require(super::python::python_of("-mcp1"), &["mcp.server.fastmcp", "uvicorn"]);
        let port = free_port();
        let record = dir.join(format!("mcp-record-{port}.jsonl"));
        let hold_file = dir.join(format!("mcp-release-{port}"));
        let log = dir.join(format!("mcp-server-{port}.log"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/mcp_server.py");
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .env("PORT", port.to_string())
            .env("RECORD", &record)
            .env("HOLD_FILE", &hold_file)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("mcp-server-{port}.err"))).unwrap());
        if !opts.tls_names.is_empty() {
            let cert = ca.expect("a CA for the server's certificate").server_cert(&opts.tls_names);
            let (c, k) = (dir.join(format!("mcp-{port}.crt")), dir.join(format!("mcp-{port}.key")));
            std::fs::write(&c, cert.cert_pem).unwrap();
            std::fs::write(&k, cert.key_pem).unwrap();
            cmd.env("TLS_CERT", c).env("TLS_KEY", k);
        }
        for (flag, on) in [("JSON", opts.json), ("STATELESS", opts.stateless), ("EVENTS", opts.events)] {
            if on {
                cmd.env(flag, "1");
            }
        }
        cmd.env("EXTRA_TOOLS", opts.extra_tools.to_string());
        let child = cmd.spawn().expect("starting the MCP server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut s = McpServer { addr, record, hold_file, child, log };
        s.wait_ready(dir, port);
        s
    }

    fn wait_ready(&mut self, dir: &Path, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let err = std::fs::read_to_string(dir.join(format!("mcp-server-{port}.err"))).unwrap_or_default();
                panic!("the MCP server exited with {status}:\n{err}");
            }
            assert!(Instant::now() < deadline, "the MCP server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every request the server received complete (and so processed), in order.
    pub fn received(&self) -> Vec<Value> {
        self.all().into_iter().filter(|r| r.get("incomplete").is_none()).collect()
    }

    /// Requests whose body never arrived complete (the server did not process them).
    pub fn incomplete(&self) -> usize {
        self.all().iter().filter(|r| r.get("incomplete").is_some()).count()
    }

    fn all(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The JSON-RPC methods the server received (each message of each POST).
    pub fn methods(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in self.received() {
            let Ok(body) = serde_json::from_str::<Value>(r["body"].as_str().unwrap_or("")) else { continue };
            let msgs = match body {
                Value::Array(a) => a,
                v => vec![v],
            };
            for m in msgs {
                if let Some(method) = m["method"].as_str() {
                    let tool = m["params"]["name"].as_str().filter(|_| method == "tools/call");
                    out.push(match tool {
                        Some(t) => format!("{method}:{t}"),
                        None => method.to_string(),
                    });
                }
            }
        }
        out
    }

    /// Let the `hold` tool answer.
    pub fn release(&self) {
        std::fs::write(&self.hold_file, b"go").unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
