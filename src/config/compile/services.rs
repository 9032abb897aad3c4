//! decK `services` → the model's services, by name and id.

use std::collections::HashMap;
use std::time::Duration;

use super::{derived_id, Entities, Findings};
use crate::config::deck::schema::DeckService;
use crate::core::{Endpoint, ServiceId, Timeouts};
use crate::model::Service;

pub(super) struct Services {
    pub list: Vec<Service>,
    /// By name and by id.
    pub index: HashMap<String, ServiceId>,
    /// `enabled: false` keeps a service's routes out of the router.
    pub enabled: Vec<bool>,
}

pub(super) fn extract_services(entities: &Entities<'_>, defaults: &Timeouts, cx: &mut Findings<'_>) -> Services {
    let mut out = Services { list: Vec::new(), index: HashMap::new(), enabled: Vec::new() };
    for (i, (origin, s)) in entities.services.iter().enumerate() {
        let name = match &s.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => {
                cx.problem(origin, "", "the service has no name", "give every service a unique name");
                format!("service-{i}")
            }
        };
        let id = s.id.clone().unwrap_or_else(|| derived_id("service", &name));
        for key in [&name, &id] {
            if out.index.insert(key.clone(), ServiceId::new(i)).is_some() && key == &name {
                cx.problem(
                    origin,
                    "name",
                    format!("service name \"{name}\" is used more than once"),
                    "give every service a unique name",
                );
            }
        }
        let endpoint = service_endpoint(s).unwrap_or_else(|e| {
            cx.problem(origin, "url", e, "give url: http(s)://host[:port][/path], or protocol, host, port and path");
            Endpoint { tls: false, host: "invalid".into(), port: 80, path: "/".into() }
        });
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, |v| Duration::from_millis(v.max(1)));
        out.list.push(Service {
            name,
            id,
            endpoint,
            retries: s.retries.unwrap_or(5),
            timeouts: Timeouts {
                connect: ms(s.connect_timeout, defaults.connect),
                read: ms(s.read_timeout, defaults.read),
                write: ms(s.write_timeout, defaults.write),
            },
            tls_verify: s.tls_verify.unwrap_or(true),
        });
        out.enabled.push(s.enabled.unwrap_or(true));
    }
    out
}

fn service_endpoint(s: &DeckService) -> Result<Endpoint, String> {
    if let Some(url) = &s.url {
        if s.host.is_some() || s.protocol.is_some() || s.port.is_some() || s.path.is_some() {
            return Err("give either url, or protocol/host/port/path, not both".into());
        }
        return Endpoint::parse_url(url);
    }
    let tls = match s.protocol.as_deref() {
        None | Some("http") => false,
        Some("https") => true,
        Some(other) => return Err(format!("protocol \"{other}\" is not supported (use http or https)")),
    };
    let host = s.host.as_deref().filter(|h| !h.is_empty()).ok_or("the service has no url and no host")?;
    let path = s.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') {
        return Err(format!("path \"{path}\" must start with /"));
    }
    Ok(Endpoint { tls, host: host.to_ascii_lowercase(), port: s.port.unwrap_or(if tls { 443 } else { 80 }), path })
}
