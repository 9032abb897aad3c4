//! The cost of a synchronous rate-limit decision on Redis: the round trip of one admission
//! script (rate-limiting's: second and minute windows checked and counted atomically) from
//! aigate's counter store to a redis-server on loopback, measured one at a time (latency) and
//! 32 at a time over the one multiplexed connection (latency under load). Prints p50, p99 and
//! max. Needs `redis-server` (Debian package `redis-server`); starts its own on a free port.
//!
//! `cargo bench --bench redis_round_trip` (release profile). The target: p99 ≤ 1 ms.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed unwrap is a failed run

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aigate::store::ratelimit::{CounterId, CounterStores, Counters, Period, Slot, Subject, SyncMode};
use aigate::store::redis::RedisEndpoint;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn percentiles(label: &str, mut v: Vec<Duration>) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    println!(
        "{label:<44} n={:<6} p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs",
        v.len(),
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        v[v.len() - 1].as_secs_f64() * 1e6
    );
}

fn slots(subject: Subject, now: i64) -> Vec<Slot> {
    [(Period::Second, 1e9), (Period::Minute, 1e12)]
        .iter()
        .map(|(p, limit)| Slot { current: CounterId::fixed(subject, p.window(now)), previous: None, limit: *limit })
        .collect()
}

fn main() {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(26379);
    let dir = std::env::temp_dir().join(format!("aigate-bench-redis-{port}"));
    let _ = std::fs::create_dir_all(&dir);
    let mut redis = match Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--dir", &dir.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("redis-server is needed (Debian package redis-server): {e}");
            std::process::exit(1);
        }
    };
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stores = CounterStores::default();
    let endpoint = RedisEndpoint {
        host: "127.0.0.1".into(),
        port,
        username: None,
        password: None,
        database: 0,
        tls: false,
        trusted_ca: None,
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_millis(1000),
    };
    let counters: Arc<dyn Counters> = stores.redis(&endpoint, SyncMode::Synchronous);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        // Warm up: connect, load the script.
        for i in 0..2000u32 {
            let s = Subject::of(&[b"bench", &i.to_le_bytes()]);
            let _ = counters.admit(&slots(s, now_ms()), 1, now_ms(), false).await;
        }
        let mut one = Vec::with_capacity(20_000);
        for i in 0..20_000u32 {
            let s = Subject::of(&[b"bench", &(i % 1000).to_le_bytes()]);
            let now = now_ms();
            let t = Instant::now();
            let r = counters.admit(&slots(s, now), 1, now, false).await;
            one.push(t.elapsed());
            assert!(r.is_ok_and(|c| c.refused.is_none() && !c.degraded));
        }
        percentiles("synchronous admission, one at a time", one);
        let mut tasks = Vec::new();
        for w in 0..32u32 {
            let counters = counters.clone();
            tasks.push(tokio::spawn(async move {
                let mut v = Vec::with_capacity(2000);
                for i in 0..2000u32 {
                    let s = Subject::of(&[b"bench", &(w * 2000 + i).to_le_bytes()]);
                    let now = now_ms();
                    let t = Instant::now();
                    let _ = counters.admit(&slots(s, now), 1, now, false).await;
                    v.push(t.elapsed());
                }
                v
            }));
        }
        let mut all = Vec::new();
        let started = Instant::now();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let rate = all.len() as f64 / started.elapsed().as_secs_f64();
        percentiles("synchronous admission, 32 concurrent", all);
        println!("{:<44} {rate:.0} admissions/s over one connection", "");
    });
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
