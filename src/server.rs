//! Assembling and running the Pingora server: the proxy and status listeners, the lifecycle
//! task, and the server settings derived from ours.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;

use crate::config::settings::Settings;
use crate::config::{self, LoadContext};
use crate::core::problems::{Problem, Problems};
use crate::lifecycle::{unix_now, Lifecycle};
use crate::proxy::head_timeout::HeadTimeout;
use crate::proxy::state::{Generation, ProcessState};
use crate::proxy::Proxy;
use crate::status::StatusApp;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::metrics::Metrics;
use crate::upstream::trust;

pub struct RunOptions {
    /// Take over the listening sockets of a running aigate (Pingora's graceful upgrade).
    pub upgrade: bool,
    pub daemon: bool,
}

/// A configuration that passed `aigate check`, with the runtime stores its plugins hold
/// handles into (kept by the process when it runs it).
pub struct Checked {
    pub settings: Settings,
    pub stores: LoadContext,
    pub loaded: config::Loaded,
}

/// Everything `aigate check` checks: the settings, the decK files, the trusted CA file.
pub fn check(settings_path: &Path) -> Result<Checked, Problems> {
    let (settings, mut problems) = Settings::load(settings_path, &|k| std::env::var(k).ok());
    let Some(settings) = settings else {
        return Err(problems);
    };
    if let Some(ca) = &settings.tls_trusted_ca {
        if let Err(e) = trust::check_ca_file(ca) {
            problems.push(Problem::new(
                settings_path,
                None,
                format!("tls_trusted_ca: {e}"),
                "point it at a PEM file of CA certificates",
            ));
        }
    }
    if let Err(issues) = settings.cluster_endpoint() {
        for (what, fix) in issues {
            problems.push(Problem::new(settings_path, None, what, &fix));
        }
    }
    if settings.declarative_config.is_empty() {
        return Err(problems);
    }
    let stores = LoadContext::from_settings(&settings);
    let loaded = config::load(&settings.declarative_config, &stores, &|k| std::env::var(k).ok());
    match loaded {
        Ok(loaded) if problems.is_empty() => Ok(Checked { settings, stores, loaded }),
        Ok(_) => Err(problems),
        Err(p) => {
            problems.extend(p);
            Err(problems)
        }
    }
}

pub fn run(checked: Checked, opts: RunOptions) -> Result<(), String> {
    let Checked { settings, stores, loaded } = checked;
    stores.jwks.commit();
    let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
    metrics.config_reloads.with_label_values(&["success"]).inc();
    metrics.config_last_reload.set(unix_now());
    let access_log =
        AccessLog::start(&settings.proxy_access_log).map_err(|e| format!("cannot open the access log: {e}"))?;
    let shared =
        Arc::new(ProcessState::new(settings.clone(), stores, metrics, access_log, Generation::new(loaded.config)));

    // Resolve upstream names once before serving, off the request path.
    shared.resolver.set_hosts(loaded.upstream_hosts);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    for host in rt.block_on(shared.resolver.refresh(Duration::from_secs(5))) {
        log::warn!("upstream host {host} does not resolve yet; its requests answer 502 until it does");
    }
    drop(rt);

    // Upstream trust: system roots plus tls_trusted_ca, read when the connector is built.
    let bundle = match &settings.tls_trusted_ca {
        Some(ca) => Some(trust::bundle_with_system_roots(ca)?),
        None => None,
    };
    let conf = ServerConf {
        threads: settings.threads,
        daemon: opts.daemon,
        pid_file: settings.pid_file.display().to_string(),
        upgrade_sock: settings.upgrade_sock.display().to_string(),
        grace_period_seconds: Some(settings.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(settings.shutdown_timeout.as_secs()),
        upstream_keepalive_pool_size: settings.upstream_keepalive_pool_size,
        max_retries: 8,
        ca_file: bundle.as_ref().map(|b| b.path().display().to_string()),
        ..ServerConf::default()
    };
    let opt = Opt { upgrade: opts.upgrade, daemon: opts.daemon, ..Opt::default() };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let app = pingora_proxy::http_proxy(&server.configuration, Proxy { shared: shared.clone() });
    let app = HeadTimeout::new(app, settings.client_header_timeout.as_secs());
    let mut proxy = Service::new("aigate proxy".to_string(), app);
    let buffers = L4BufferSettings::new(settings.client_read_buffer_size, settings.client_write_buffer_size);
    for addr in &settings.proxy_listen {
        proxy.endpoints().add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(buffers));
    }
    // The connector has read the CA bundle: it is no longer needed on disk.
    drop(bundle);

    server.add_service(proxy);
    if let Some(addr) = settings.status_listen {
        let mut status = Service::new("aigate status".to_string(), StatusApp { shared: shared.clone() });
        status.threads = Some(1);
        status.add_tcp(&addr.to_string());
        server.add_service(status);
    }
    server.add_service(background_service("aigate lifecycle", Lifecycle { shared }));
    server.run_forever();
}
