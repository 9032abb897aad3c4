//! Runs the real `aigate` binary on a config written for the test, and talks to it over
//! sockets. Its output goes to files, so tests can read (and scan) every log line.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::TestCa;
use super::mock_openai::{MockOpenAi, TlsIdentity};

/// A port nothing listens on, never handed out twice in this process: Pingora's listeners
/// use SO_REUSEPORT, so two gateways of parallel tests given the same port would both bind it
/// and share its connections.
pub fn free_port() -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut taken = TAKEN.lock().unwrap();
        if !taken.contains(&port) {
            taken.push(port);
            return port;
        }
    }
}

pub struct GatewayProcess {
    pub proxy: SocketAddr,
    pub status: SocketAddr,
    pub dir: PathBuf,
    child: Child,
    pub settings_path: PathBuf,
}

pub struct GatewaySpec {
    /// Extra settings lines (YAML), appended after the generated ones.
    pub settings: String,
    /// decK files: (file name, content), merged in this order.
    pub deck: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
}

impl GatewaySpec {
    pub fn new(deck: &[(&str, &str)]) -> GatewaySpec {
        GatewaySpec {
            settings: String::new(),
            deck: deck.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect(),
            env: Vec::new(),
        }
    }

    pub fn settings(mut self, extra: &str) -> Self {
        self.settings.push_str(extra);
        if !self.settings.ends_with('\n') {
            self.settings.push('\n');
        }
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_aigate")
}

impl GatewayProcess {
    pub fn start(dir: &Path, spec: GatewaySpec) -> GatewayProcess {
        Self::try_start(dir, spec).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(dir: &Path, spec: GatewaySpec) -> Result<GatewayProcess, String> {
        let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let status: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut files = String::new();
        for (name, content) in &spec.deck {
            std::fs::write(dir.join(name), content).unwrap();
            files.push_str(&format!("  - {name}\n"));
        }
        let settings_path = dir.join("aigate.yaml");
        let generated = format!(
            "proxy_listen: {proxy}\nstatus_listen: {status}\nthreads: 2\npid_file: {pid}\nupgrade_sock: {sock}\nproxy_access_log: {log}\ngrace_period: 5\n",
            pid = dir.join("aigate.pid").display(),
            sock = dir.join("upgrade.sock").display(),
            log = dir.join("access.log").display(),
        );
        // Keys the test sets itself replace the generated ones.
        let overridden = |line: &str| {
            let key = line.split(':').next().unwrap_or("");
            spec.settings.lines().any(|l| l.split(':').next() == Some(key))
        };
        let mut settings: String = generated.lines().filter(|l| !overridden(l)).map(|l| format!("{l}\n")).collect();
        settings.push_str(&format!("declarative_config:\n{files}{}", spec.settings));
        std::fs::write(&settings_path, settings).unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("run")
            .arg("--config")
            .arg(&settings_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| format!("cannot start aigate: {e}"))?;
        let mut g = GatewayProcess { proxy, status, dir: dir.to_path_buf(), child, settings_path };
        g.wait_ready(Duration::from_secs(30))?;
        Ok(g)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("aigate exited with {status} before it was ready:\n{}", self.logs()));
            }
            if let Ok(body) = http_get_blocking(self.status, "/status/ready") {
                if body.starts_with("HTTP/1.1 200") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("aigate not ready after {timeout:?}:\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub fn status_url(&self, path: &str) -> String {
        format!("http://{}{}", self.status, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far, and its access log.
    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!("{}{}{}", read("stdout.log"), read("stderr.log"), read("access.log"))
    }

    pub fn access_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The access log once it holds at least `n` lines (the log phase runs after the client has
    /// its answer, so a test that reads the log right away can be early), or as it is after 5 s.
    pub async fn access_log_at_least(&self, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..100 {
            let log = self.access_log();
            if log.len() >= n {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.access_log()
    }

    /// The status listener's metrics once no request is in flight. Counters are recorded in the
    /// log phase, just after the client has its answer; `aigate_http_requests_in_flight` drops
    /// when that phase is over, so a scrape showing 0 has every finished request counted.
    pub async fn metrics(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let m = client().get(self.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
            let idle = m.lines().any(|l| l == "aigate_http_requests_in_flight 0");
            if idle || Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// Send SIGHUP and wait until the new configuration is in service (the lifecycle logs
    /// "configuration reloaded" once it has also fetched what the new one needs).
    pub async fn reload(&self) {
        let done = || self.logs().matches("configuration reloaded").count();
        let before = done();
        self.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        while done() == before {
            assert!(Instant::now() < deadline, "reload not done:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Wait for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking GET (for readiness polling without a runtime).
pub fn http_get_blocking(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The usual test bed: a test CA, a TLS mock of api.openai.com, and settings that send
/// `api.openai.com:443` to it while SNI and certificate checks still use the real name.
pub struct TestBed {
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
    pub mock: MockOpenAi,
    pub ca_path: PathBuf,
}

pub const PROVIDER_KEY: &str = "sk-test-provider-0123456789abcdef";
/// The gateway's Anthropic key in tests (`DECK_ANTHROPIC_API_KEY`).
pub const ANTHROPIC_KEY: &str = "sk-ant-test-provider-fedcba9876543210";

impl TestBed {
    pub async fn new() -> TestBed {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("aigate test CA");
        let cert = ca.server_cert(&["api.openai.com", "localhost", "127.0.0.1"]);
        let mock =
            MockOpenAi::start("127.0.0.1:0", Some(TlsIdentity { cert_pem: cert.cert_pem, key_pem: cert.key_pem }))
                .await;
        let ca_path = dir.path().join("test-ca.pem");
        std::fs::write(&ca_path, &ca.cert_pem).unwrap();
        TestBed { dir, ca, mock, ca_path }
    }

    /// Settings lines pointing api.openai.com at the mock and trusting the test CA.
    pub fn upstream_settings(&self) -> String {
        format!(
            "tls_trusted_ca: {}\nupstream_resolve:\n  \"api.openai.com:443\": \"{}\"\n",
            self.ca_path.display(),
            self.mock.addr
        )
    }

    /// Another TLS upstream, with a certificate for `names` signed by the bed's CA.
    pub async fn extra_upstream(&self, names: &[&str]) -> MockOpenAi {
        let cert = self.ca.server_cert(names);
        MockOpenAi::start("127.0.0.1:0", Some(TlsIdentity { cert_pem: cert.cert_pem, key_pem: cert.key_pem })).await
    }

    pub fn start(&self, spec: GatewaySpec) -> GatewayProcess {
        let spec = spec.settings(&self.upstream_settings()).env("DECK_OPENAI_API_KEY", PROVIDER_KEY);
        GatewayProcess::start(self.dir.path(), spec)
    }

    /// Start with api.openai.com sent to the bed's mock and each `(host:port, address)` of
    /// `extra` (TLS names checked against the bed's CA), with both provider keys in the
    /// environment (`DECK_OPENAI_API_KEY`, `DECK_ANTHROPIC_API_KEY`).
    pub fn start_resolving(&self, spec: GatewaySpec, extra: &[(&str, SocketAddr)]) -> GatewayProcess {
        let mut settings = self.upstream_settings();
        for (host, addr) in extra {
            settings.push_str(&format!("  \"{host}\": \"{addr}\"\n"));
        }
        let spec = spec
            .settings(&settings)
            .env("DECK_OPENAI_API_KEY", PROVIDER_KEY)
            .env("DECK_ANTHROPIC_API_KEY", ANTHROPIC_KEY);
        GatewayProcess::start(self.dir.path(), spec)
    }

    /// Another gateway on the same upstream, in a directory of its own (`node`): several
    /// gateways of one cluster.
    pub fn start_node(&self, node: &str, spec: GatewaySpec) -> GatewayProcess {
        let dir = self.dir.path().join(node);
        std::fs::create_dir_all(&dir).unwrap();
        let spec = spec.settings(&self.upstream_settings()).env("DECK_OPENAI_API_KEY", PROVIDER_KEY);
        GatewayProcess::start(&dir, spec)
    }
}

/// The walkthrough's four decK fragments, read from `conf/deck/` unchanged.
pub fn walkthrough_deck() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/deck");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(p).unwrap()))
        .collect()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().pool_max_idle_per_host(8).build().unwrap()
}

/// Waits, when less than `needed_secs` is left of the current `period_secs` window (windows are
/// UTC calendar periods, aligned to the epoch), for the next one to start: requests straddling a
/// window's end would see their counters start again and the test fail by the clock.
pub async fn clear_of_window_end(period_secs: u64, needed_secs: u64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let left = period_secs * 1000 - now % (period_secs * 1000);
    if left < needed_secs * 1000 {
        tokio::time::sleep(std::time::Duration::from_millis(left + 50)).await;
    }
}
