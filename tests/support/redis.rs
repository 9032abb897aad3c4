//! A real `redis-server` (Debian package `redis-server`) for the tests: on a loopback port of
//! its own, without persistence, stopped when dropped. It can be killed and started again on
//! the same port (outage tests), with a password, ACL users, or TLS.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::gateway::free_port;

pub struct RedisServer {
    pub port: u16,
    /// `--requirepass`, when set.
    pub password: Option<String>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
    /// TLS: the port is the TLS port, and this CA signed the server's certificate.
    pub tls_ca: Option<PathBuf>,
}

fn binary() -> &'static str {
    if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
        panic!("redis-server is not installed: install the Debian package `redis-server` (scripts/test does)");
    }
    "redis-server"
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(None, &[])
    }

    /// With `--requirepass` and any extra arguments (`--user ...`).
    pub fn start_with(password: Option<&str>, extra: &[&str]) -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            password: password.map(str::to_string),
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            tls_ca: None,
        };
        r.run();
        r
    }

    /// TLS only, with a server certificate for 127.0.0.1 and localhost signed by `ca`.
    pub fn start_tls(ca: &super::certs::TestCa, password: Option<&str>) -> RedisServer {
        let cert = ca.server_cert(&["localhost", "127.0.0.1"]);
        let dir = tempfile::tempdir().unwrap();
        let (ca_path, cert_path, key_path) =
            (dir.path().join("ca.pem"), dir.path().join("server.pem"), dir.path().join("server.key"));
        std::fs::write(&ca_path, &ca.cert_pem).unwrap();
        std::fs::write(&cert_path, &cert.cert_pem).unwrap();
        std::fs::write(&key_path, &cert.key_pem).unwrap();
        let mut r = RedisServer {
            port: free_port(),
            password: password.map(str::to_string),
            dir,
            extra: vec![
                "--tls-cert-file".into(),
                cert_path.display().to_string(),
                "--tls-key-file".into(),
                key_path.display().to_string(),
                "--tls-ca-cert-file".into(),
                ca_path.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            child: None,
            tls_ca: Some(ca_path),
        };
        r.run();
        r
    }

    fn run(&mut self) {
        let mut cmd = Command::new(binary());
        if self.tls_ca.is_some() {
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()]);
        } else {
            cmd.args(["--port", &self.port.to_string()]);
        }
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(["--logfile", &self.dir.path().join("redis.log").display().to_string()]);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        cmd.args(&self.extra).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("start redis-server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the server now (SIGKILL: an outage, not a shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port (its data is gone: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// A plain connection (the default user), for the test's own checks.
    pub fn connection(&self) -> redis::Connection {
        let mut info = redis::RedisConnectionInfo::default();
        if let Some(p) = &self.password {
            info = info.set_password(p);
        }
        let ci =
            redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp("127.0.0.1".into(), self.port))
                .unwrap()
                .set_redis_settings(info);
        redis::Client::open(ci).unwrap().get_connection().unwrap()
    }

    /// Run a command (`["ACL", "SETUSER", ...]`) and return its answer.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut self.connection()).unwrap()
    }

    /// Every key under `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.cmd(&["KEYS", pattern])
    }

    /// A plugin's `redis` record pointing here.
    pub fn record(&self) -> String {
        let mut s = format!("{{host: 127.0.0.1, port: {}, timeout: 300", self.port);
        if self.tls_ca.is_some() {
            s.push_str(", ssl: true, ssl_verify: true");
        }
        if let Some(p) = &self.password {
            s.push_str(&format!(", password: {p}"));
        }
        s.push('}');
        s
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
