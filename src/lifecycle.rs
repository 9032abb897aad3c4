//! Work around the request path: readiness, DNS refresh, configuration reload on SIGHUP, and
//! draining on shutdown (exit as soon as the last in-flight request is done, within the grace
//! period, instead of always waiting for it to pass).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::config;
use crate::plugins::openid_connect::jwks;
use crate::proxy::state::{Generation, ProcessState};
use crate::upstream::balancer::TargetKey;

pub struct Lifecycle {
    pub shared: Arc<ProcessState>,
}

/// Load the decK files again and swap the new configuration in. On any problem the running
/// configuration stays and the problems are returned.
pub fn reload(shared: &ProcessState) -> Result<(), String> {
    let loaded = config::load(&shared.settings.declarative_config, &shared.stores, &|k| std::env::var(k).ok());
    match loaded {
        Ok(l) => {
            shared.resolver.set_hosts(l.upstream_hosts);
            let targets: Vec<TargetKey> = l.config.llm_targets().map(|t| t.key()).collect();
            shared.current.store(Arc::new(Generation::new(l.config)));
            // The new configuration is in service: keys and health it no longer names go.
            shared.stores.jwks.commit();
            shared.stores.health.retain(|k| targets.contains(k));
            shared.stores.counters.retain_used();
            shared.metrics.config_reloads.with_label_values(&["success"]).inc();
            shared.metrics.config_last_reload.set(unix_now());
            Ok(())
        }
        Err(problems) => {
            shared.metrics.config_reloads.with_label_values(&["failure"]).inc();
            Err(problems.to_string())
        }
    }
}

/// Fetch the keys of the current configuration's identity providers that are not in hand yet
/// (all of them at start; after a reload, only new ones: a reload keeps the keys), then keep
/// them fresh in a background task.
async fn start_jwks(shared: &Arc<ProcessState>) -> tokio::task::JoinHandle<()> {
    let caches = shared.current.load().config.jwks.clone();
    for c in caches.iter().filter(|c| c.keys().keys.is_empty()) {
        if let Err(e) = c.refresh().await {
            log::warn!("identity provider keys not loaded yet ({e}); retried in the background and on demand");
        }
    }
    tokio::spawn(jwks::run_refresher(caches, jwks::DEFAULT_REFRESH_INTERVAL, std::future::pending::<()>()))
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn listener_up(addr: SocketAddr) -> bool {
    let probe = if addr.ip().is_unspecified() {
        match addr {
            SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], addr.port())),
            SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        }
    } else {
        addr
    };
    TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok()
}

#[async_trait]
impl BackgroundService for Lifecycle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let shared = self.shared.clone();
        shared.access_log.start_writer();
        shared.start_stores();
        // Identity providers' keys: fetched once before ready, then refreshed in the background.
        let mut refresher = start_jwks(&shared).await;

        // Ready once the proxy listeners accept connections.
        let ready_shared = shared.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            let addrs = ready_shared.settings.proxy_listen.clone();
            loop {
                let all_up = tokio::task::spawn_blocking({
                    let addrs = addrs.clone();
                    move || addrs.iter().all(|a| listener_up(*a))
                })
                .await
                .unwrap_or(false);
                if all_up || Instant::now() > deadline {
                    ready_shared.ready.store(true, Ordering::Relaxed);
                    log::info!("aigate is ready");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });

        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot listen for SIGHUP (reloads disabled): {e}");
                None
            }
        };
        // Pingora acts on SIGTERM (drain) and SIGQUIT (hand sockets to a new process); aigate
        // listens too, to close client connections after their current answer from then on.
        for kind in [tokio::signal::unix::SignalKind::terminate(), tokio::signal::unix::SignalKind::quit()] {
            if let Ok(mut sig) = tokio::signal::unix::signal(kind) {
                let s = shared.clone();
                tokio::spawn(async move {
                    if sig.recv().await.is_some() {
                        s.draining.store(true, Ordering::Relaxed);
                        s.ready.store(false, Ordering::Relaxed);
                    }
                });
            }
        }
        let mut dns = tokio::time::interval(shared.settings.dns_refresh_interval);
        dns.tick().await;
        loop {
            tokio::select! {
                _ = dns.tick() => {
                    let unresolved = shared.resolver.refresh(Duration::from_secs(5)).await;
                    for h in unresolved {
                        log::warn!("upstream host {h} does not resolve; its requests answer 502");
                    }
                }
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    log::info!("SIGHUP: reloading {}", shared.settings.declarative_config.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
                    match reload(&shared) {
                        Ok(()) => {
                            shared.resolver.refresh(Duration::from_secs(5)).await;
                            refresher.abort();
                            refresher = start_jwks(&shared).await;
                            log::info!("configuration reloaded (digest {})", shared.current.load().config.digest);
                        }
                        Err(problems) => log::error!("configuration NOT reloaded, the running one stays:\n{problems}"),
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }

        // Shutting down: not ready any more; leave as soon as nothing is in flight.
        shared.ready.store(false, Ordering::Relaxed);
        let deadline = Instant::now() + shared.settings.grace_period;
        log::info!("draining: {} requests in flight", shared.metrics.in_flight.get());
        while shared.metrics.in_flight.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        log::info!("drained ({} requests left); exiting", shared.metrics.in_flight.get());
        shared.access_log.flush();
        std::process::exit(0);
    }
}
