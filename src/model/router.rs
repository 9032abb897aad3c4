//! Route matching with Kong's semantics: prefix paths match on characters (`/anything` matches
//! `/anything/x` and `/anythingelse`), `~` starts a regex path, hosts may have one wildcard at
//! either end, and methods are exact. More specific routes win: more kinds of criteria, then plain
//! hosts over wildcards, then regex priority, then longer prefixes.

use super::PathHandling;
use crate::core::RouteId;

#[derive(Debug)]
enum PathMatch {
    /// Matches every path (a route with hosts or methods only).
    Any,
    Prefix(String),
    Regex {
        re: regex::Regex,
        priority: i64,
    },
}

#[derive(Debug)]
enum HostMatch {
    Exact(String),
    /// `*.example.com`: the suffix `.example.com`.
    WildcardPrefix(String),
    /// `example.*`: the prefix `example.`.
    WildcardSuffix(String),
}

impl HostMatch {
    fn parse(h: &str) -> Result<HostMatch, String> {
        let h = h.trim().to_ascii_lowercase();
        let stars = h.matches('*').count();
        if h.is_empty() || stars > 1 {
            return Err(format!("host `{h}` is not valid: at most one * at the start or end"));
        }
        if let Some(rest) = h.strip_prefix('*') {
            if !rest.starts_with('.') {
                return Err(format!("host `{h}`: a leading wildcard must be followed by a dot"));
            }
            Ok(HostMatch::WildcardPrefix(rest.to_string()))
        } else if let Some(rest) = h.strip_suffix('*') {
            if !rest.ends_with('.') {
                return Err(format!("host `{h}`: a trailing wildcard must follow a dot"));
            }
            Ok(HostMatch::WildcardSuffix(rest.to_string()))
        } else if stars == 0 {
            Ok(HostMatch::Exact(h))
        } else {
            Err(format!("host `{h}`: a wildcard may only be at the start or the end"))
        }
    }

    fn matches(&self, host: &str, host_with_port: &str) -> bool {
        match self {
            HostMatch::Exact(h) => h == host || h == host_with_port,
            HostMatch::WildcardPrefix(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
            HostMatch::WildcardSuffix(prefix) => host.len() > prefix.len() && host.starts_with(prefix.as_str()),
        }
    }

    fn is_plain(&self) -> bool {
        matches!(self, HostMatch::Exact(_))
    }
}

#[derive(Debug)]
struct Entry {
    route: RouteId,
    hosts: Vec<HostMatch>,
    methods: Vec<String>,
    path: PathMatch,
    /// Sort key: higher first.
    priority: (u8, bool, i64, usize),
    order: usize,
}

/// What the router needs to know about a route.
pub struct RouteSpec<'a> {
    pub id: RouteId,
    pub paths: &'a [String],
    pub methods: &'a [String],
    pub hosts: &'a [String],
    pub regex_priority: i64,
}

#[derive(Debug, Default)]
pub struct Router {
    entries: Vec<Entry>,
}

/// A matched route and how much of the path its prefix or regex covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    pub route: RouteId,
    pub matched_len: usize,
}

impl Router {
    /// Build the router; errors name the route's field (`paths[1]`) and what is wrong.
    pub fn build(routes: &[RouteSpec<'_>]) -> Result<Router, Vec<(RouteId, String, String)>> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for spec in routes {
            let mut hosts = Vec::new();
            for (i, h) in spec.hosts.iter().enumerate() {
                match HostMatch::parse(h) {
                    Ok(m) => hosts.push(m),
                    Err(e) => errors.push((spec.id, format!("hosts[{i}]"), e)),
                }
            }
            let mut methods = Vec::new();
            for (i, m) in spec.methods.iter().enumerate() {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    errors.push((spec.id, format!("methods[{i}]"), format!("`{m}` is not an HTTP method")));
                } else {
                    methods.push(m.to_ascii_uppercase());
                }
            }
            if spec.paths.is_empty() && spec.hosts.is_empty() && spec.methods.is_empty() {
                errors.push((
                    spec.id,
                    String::new(),
                    "the route has no paths, hosts or methods, so it can never match".into(),
                ));
                continue;
            }
            let mut paths = Vec::new();
            for (i, p) in spec.paths.iter().enumerate() {
                if let Some(re) = p.strip_prefix('~') {
                    match regex::Regex::new(&format!("^(?:{re})")) {
                        Ok(re) => paths.push(PathMatch::Regex { re, priority: spec.regex_priority }),
                        Err(e) => errors.push((spec.id, format!("paths[{i}]"), format!("invalid regex: {e}"))),
                    }
                } else if !p.starts_with('/') {
                    errors.push((
                        spec.id,
                        format!("paths[{i}]"),
                        format!("`{p}` must start with / (or ~ for a regex)"),
                    ));
                } else {
                    paths.push(PathMatch::Prefix(p.clone()));
                }
            }
            if paths.is_empty() {
                paths.push(PathMatch::Any);
            }
            let kinds = u8::from(!spec.hosts.is_empty())
                + u8::from(!spec.methods.is_empty())
                + u8::from(!spec.paths.is_empty());
            let plain_host = hosts.iter().any(HostMatch::is_plain);
            for path in paths {
                let (regex_priority, len) = match &path {
                    PathMatch::Any => (i64::MIN, 0),
                    PathMatch::Prefix(p) => (i64::MIN + 1, p.len()),
                    PathMatch::Regex { priority, re } => (*priority, re.as_str().len()),
                };
                let order = entries.len();
                entries.push(Entry {
                    route: spec.id,
                    hosts: hosts.iter().map(clone_host).collect(),
                    methods: methods.clone(),
                    path,
                    priority: (kinds, plain_host, regex_priority, len),
                    order,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Regex paths are tried before prefixes of the same specificity (as Kong does), by their
        // regex_priority; prefixes by length.
        entries.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.order.cmp(&b.order)));
        Ok(Router { entries })
    }

    /// Find the route for a request. `host` is lower-case without port; `path` is normalised.
    pub fn find(&self, method: &str, host: &str, host_with_port: &str, path: &str) -> Option<RouteMatch> {
        for e in &self.entries {
            if !e.methods.is_empty() && !e.methods.iter().any(|m| m == method) {
                continue;
            }
            if !e.hosts.is_empty() && !e.hosts.iter().any(|h| h.matches(host, host_with_port)) {
                continue;
            }
            let matched_len = match &e.path {
                PathMatch::Any => 0,
                PathMatch::Prefix(p) => {
                    if !path.starts_with(p.as_str()) {
                        continue;
                    }
                    p.len()
                }
                PathMatch::Regex { re, .. } => match re.find(path) {
                    Some(m) => m.end(),
                    None => continue,
                },
            };
            return Some(RouteMatch { route: e.route, matched_len });
        }
        None
    }
}

fn clone_host(h: &HostMatch) -> HostMatch {
    match h {
        HostMatch::Exact(s) => HostMatch::Exact(s.clone()),
        HostMatch::WildcardPrefix(s) => HostMatch::WildcardPrefix(s.clone()),
        HostMatch::WildcardSuffix(s) => HostMatch::WildcardSuffix(s.clone()),
    }
}

/// The upstream path for a request, as Kong computes it from the service path, the request path
/// and the part of it the route matched.
pub fn upstream_path(
    service_path: &str,
    request_path: &str,
    matched_len: usize,
    strip_path: bool,
    handling: PathHandling,
) -> String {
    let base = if service_path.is_empty() { "/" } else { service_path };
    let postfix = if strip_path { &request_path[matched_len.min(request_path.len())..] } else { request_path };
    match handling {
        PathHandling::V0 => upstream_path_v0(base, request_path, postfix, strip_path),
        PathHandling::V1 => {
            // v1 concatenates: the service path, then the rest without its leading slash when the
            // service path already ends with one.
            let rest = if strip_path { postfix } else { &request_path[1.min(request_path.len())..] };
            let mut out = String::with_capacity(base.len() + rest.len());
            out.push_str(base);
            if base.ends_with('/') {
                out.push_str(rest.strip_prefix('/').unwrap_or(rest));
            } else {
                out.push_str(rest);
            }
            out
        }
    }
}

fn upstream_path_v0(base: &str, req: &str, postfix: &str, strip: bool) -> String {
    if let Some(trimmed) = base.strip_suffix('/') {
        if strip {
            if postfix.is_empty() {
                if base == "/" {
                    "/".to_string()
                } else if req.ends_with('/') {
                    base.to_string()
                } else {
                    trimmed.to_string()
                }
            } else if postfix.starts_with('/') {
                format!("{trimmed}{postfix}")
            } else {
                format!("{base}{postfix}")
            }
        } else {
            format!("{base}{}", &req[1.min(req.len())..])
        }
    } else if strip {
        if postfix.is_empty() {
            if req.len() > 1 && req.ends_with('/') {
                format!("{base}/")
            } else {
                base.to_string()
            }
        } else if postfix.starts_with('/') {
            format!("{base}{postfix}")
        } else {
            format!("{base}/{postfix}")
        }
    } else if req == "/" {
        base.to_string()
    } else {
        format!("{base}{req}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(specs: &[(&[&str], &[&str], &[&str])]) -> Router {
        let owned: Vec<(Vec<String>, Vec<String>, Vec<String>)> = specs
            .iter()
            .map(|(p, m, h)| {
                (
                    p.iter().map(|s| s.to_string()).collect(),
                    m.iter().map(|s| s.to_string()).collect(),
                    h.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        let specs: Vec<RouteSpec> = owned
            .iter()
            .enumerate()
            .map(|(id, (p, m, h))| RouteSpec {
                id: RouteId::new(id),
                paths: p,
                methods: m,
                hosts: h,
                regex_priority: 0,
            })
            .collect();
        Router::build(&specs).unwrap()
    }

    fn find(r: &Router, method: &str, host: &str, path: &str) -> Option<usize> {
        r.find(method, host, host, path).map(|m| m.route.index())
    }

    #[test]
    fn prefixes_match_on_characters_and_longest_wins() {
        let r = router(&[(&["/anything"], &[], &[]), (&["/anything/deeper"], &[], &[])]);
        assert_eq!(find(&r, "POST", "x", "/anything"), Some(0));
        assert_eq!(find(&r, "POST", "x", "/anything/x"), Some(0));
        assert_eq!(find(&r, "POST", "x", "/anythingelse"), Some(0));
        assert_eq!(find(&r, "POST", "x", "/anything/deeper/x"), Some(1));
        assert_eq!(find(&r, "POST", "x", "/other"), None);
    }

    #[test]
    fn hosts_and_methods_make_routes_more_specific() {
        let r = router(&[
            (&["/v1"], &[], &[]),
            (&["/v1"], &["GET"], &[]),
            (&["/v1"], &[], &["api.example.com"]),
            (&["/v1"], &[], &["*.example.com"]),
        ]);
        assert_eq!(find(&r, "POST", "other", "/v1/x"), Some(0));
        assert_eq!(find(&r, "GET", "other", "/v1/x"), Some(1));
        assert_eq!(find(&r, "POST", "api.example.com", "/v1/x"), Some(2));
        assert_eq!(find(&r, "POST", "eu.example.com", "/v1/x"), Some(3));
        assert_eq!(find(&r, "POST", "example.com", "/v1/x"), Some(0));
    }

    #[test]
    fn regex_paths() {
        let r = router(&[(&["~/v1/(chat|responses)$"], &[], &[]), (&["/v1"], &[], &[])]);
        assert_eq!(find(&r, "POST", "h", "/v1/chat"), Some(0));
        assert_eq!(find(&r, "POST", "h", "/v1/chat/x"), Some(1));
    }

    #[test]
    fn bad_routes_are_reported() {
        let paths = vec!["nope".to_string(), "~(".to_string()];
        let hosts = vec!["a.*.com".to_string()];
        let err = Router::build(&[RouteSpec {
            id: RouteId::new(0),
            paths: &paths,
            methods: &[],
            hosts: &hosts,
            regex_priority: 0,
        }])
        .unwrap_err();
        assert_eq!(err.len(), 3);
        let err = Router::build(&[RouteSpec {
            id: RouteId::new(0),
            paths: &[],
            methods: &[],
            hosts: &[],
            regex_priority: 0,
        }])
        .unwrap_err();
        assert!(err[0].2.contains("never match"));
    }

    /// Kong's documented path_handling table.
    #[test]
    fn kong_path_handling_table() {
        let v0 = PathHandling::V0;
        let v1 = PathHandling::V1;
        let cases: &[(&str, &str, &str, bool, PathHandling, &str)] = &[
            ("/s", "/fv0", "/fv0req", false, v0, "/s/fv0req"),
            ("/s", "/fv0", "/fv0", false, v0, "/s/fv0"),
            ("/s", "/fv1", "/fv1req", false, v1, "/sfv1req"),
            ("/s", "/fv1", "/fv1", false, v1, "/sfv1"),
            ("/s", "/tv0", "/tv0req", true, v0, "/s/req"),
            ("/s", "/tv0", "/tv0", true, v0, "/s"),
            ("/s", "/tv1", "/tv1req", true, v1, "/sreq"),
            ("/s", "/tv1", "/tv1", true, v1, "/s"),
            ("/s", "/fv0/", "/fv0/req", false, v0, "/s/fv0/req"),
            ("/s", "/fv0/", "/fv0/", false, v0, "/s/fv0/"),
            ("/s", "/fv1/", "/fv1/req", false, v1, "/sfv1/req"),
            ("/s", "/fv1/", "/fv1/", false, v1, "/sfv1/"),
            ("/s", "/tv0/", "/tv0/req", true, v0, "/s/req"),
            ("/s", "/tv0/", "/tv0/", true, v0, "/s/"),
            ("/s", "/tv1/", "/tv1/req", true, v1, "/sreq"),
            ("/s", "/tv1/", "/tv1/", true, v1, "/s"),
            ("/", "/anything", "/anything", true, v0, "/"),
            ("/", "/anything", "/anything/x", true, v0, "/x"),
            ("/", "/anything", "/anything", false, v0, "/anything"),
        ];
        for (service, route, req, strip, handling, want) in cases {
            let got = upstream_path(service, req, route.len(), *strip, *handling);
            assert_eq!(&got, want, "service {service} route {route} request {req} strip {strip} {handling:?}");
        }
    }
}
