//! request-transformer: Kong's open-source plugin (priority 801: after authentication, acl and
//! ai-mcp-proxy, before ai-proxy). It changes the request on its way upstream — `remove`,
//! `rename`, `replace`, `add` and `append` of headers, query-string parameters and body fields
//! (JSON or form), `replace.uri` and `http_method` — in Kong's order: uri, method, headers,
//! body, query string; within each, remove → rename → replace → add → append. Values may read
//! the client's request through [`template`]s. Its main use in aigate is credential
//! injection: `remove` the client's `Authorization` and `add` the gateway's own.

pub mod template;

use std::sync::Arc;

use pingora_http::RequestHeader;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::ConfigIssue;
use crate::core::query;
use crate::core::secrets::SecretSet;
use template::Template;

// ---------------------------------------------------------------------------------------------
// Schema (Kong's, field for field)

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestTransformerSchema {
    pub http_method: Option<String>,
    #[serde(default)]
    pub remove: OpsSchema,
    #[serde(default)]
    pub rename: OpsSchema,
    #[serde(default)]
    pub replace: OpsSchema,
    #[serde(default)]
    pub add: OpsSchema,
    #[serde(default)]
    pub append: OpsSchema,
}

/// One operation's lists (`uri` belongs to `replace` only).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsSchema {
    #[serde(default)]
    pub body: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub querystring: Vec<String>,
    pub uri: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Compiled

/// One kind of thing transformed (headers, query string or body fields), in Kong's order.
#[derive(Debug, Default)]
pub struct Ops {
    pub remove: Vec<String>,
    pub rename: Vec<(String, String)>,
    pub replace: Vec<(String, Template)>,
    pub add: Vec<(String, Template)>,
    pub append: Vec<(String, Template)>,
}

impl Ops {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.replace.is_empty()
            && self.add.is_empty()
            && self.append.is_empty()
    }
}

#[derive(Debug)]
pub struct RequestTransformer {
    pub http_method: Option<http::Method>,
    pub uri: Option<Template>,
    /// Header names lower-cased.
    pub headers: Ops,
    pub query: Ops,
    pub body: Ops,
    /// The credentials it sends (fixed values of fields named like one: `Authorization`,
    /// `x-api-key`, `token`, …), masked in answers of third parties (MCP servers).
    pub secrets: Arc<SecretSet>,
}

impl Default for RequestTransformer {
    fn default() -> Self {
        RequestTransformer {
            http_method: None,
            uri: None,
            headers: Ops::default(),
            query: Ops::default(),
            body: Ops::default(),
            secrets: Arc::new(SecretSet::new([])),
        }
    }
}

/// Whether a header, parameter or field name is one a credential goes in.
fn credential_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["auth", "token", "key", "secret", "password", "cookie", "session"].iter().any(|w| n.contains(w))
}

/// How a request body can be transformed (Kong: by a substring of its Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    Json,
    Form,
    /// Multipart and anything else: passed unchanged.
    Other,
}

impl BodyEncoding {
    pub fn of(content_type: Option<&[u8]>) -> BodyEncoding {
        let Some(ct) = content_type else { return BodyEncoding::Other };
        let ct = String::from_utf8_lossy(ct).to_ascii_lowercase();
        if ct.contains("application/json") {
            BodyEncoding::Json
        } else if ct.contains("application/x-www-form-urlencoded") {
            BodyEncoding::Form
        } else {
            BodyEncoding::Other
        }
    }
}

/// Kong's `name:value` (Lua `^([^:]+):*(.-)$`): the name before the first colon; any run of
/// colons after it is skipped.
fn split_pair(entry: &str) -> Option<(&str, &str)> {
    let colon = entry.find(':')?;
    if colon == 0 {
        return None;
    }
    Some((&entry[..colon], entry[colon..].trim_start_matches(':')))
}

fn valid_header_name(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

impl RequestTransformer {
    pub fn compile(s: RequestTransformerSchema) -> Result<RequestTransformer, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut out = RequestTransformer::default();
        if let Some(m) = &s.http_method {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                issues.push(ConfigIssue::new("http_method", format!("`{m}` is not an upper-case method"), "e.g. POST"));
            } else {
                out.http_method = http::Method::from_bytes(m.as_bytes()).ok();
            }
        }
        for (op, o) in [("remove", &s.remove), ("rename", &s.rename), ("add", &s.add), ("append", &s.append)] {
            if o.uri.is_some() {
                issues.push(ConfigIssue::new(format!("{op}.uri"), "uri is only for replace", "use replace.uri"));
            }
        }
        if let Some(uri) = &s.replace.uri {
            match Template::parse(uri) {
                Ok(t) => out.uri = Some(t),
                Err(e) => issues.push(ConfigIssue::new("replace.uri", e, "see request-transformer in README.md")),
            }
        }
        for (kind, field) in [("headers", 0), ("querystring", 1), ("body", 2)] {
            let pick = |o: &OpsSchema| match field {
                0 => o.headers.clone(),
                1 => o.querystring.clone(),
                _ => o.body.clone(),
            };
            let is_header = field == 0;
            let norm = |n: &str| if is_header { n.to_ascii_lowercase() } else { n.to_string() };
            let mut ops = Ops::default();
            for (i, name) in pick(&s.remove).iter().enumerate() {
                if is_header && !valid_header_name(name) {
                    issues.push(ConfigIssue::new(
                        format!("remove.{kind}[{i}]"),
                        format!("'{name}' is not a valid header"),
                        "use a header name",
                    ));
                }
                ops.remove.push(norm(name));
            }
            for (i, entry) in pick(&s.rename).iter().enumerate() {
                match split_pair(entry) {
                    Some((old, new)) if !new.is_empty() => {
                        if is_header && !(valid_header_name(old) && valid_header_name(new)) {
                            issues.push(ConfigIssue::new(
                                format!("rename.{kind}[{i}]"),
                                format!("'{entry}' does not name two valid headers"),
                                "write old-name:new-name",
                            ));
                        }
                        ops.rename.push((norm(old), norm(new)));
                    }
                    _ => issues.push(ConfigIssue::new(
                        format!("rename.{kind}[{i}]"),
                        format!("key '{entry}' has no value"),
                        "write old-name:new-name",
                    )),
                }
            }
            for (op, entries, target) in
                [("replace", pick(&s.replace), 0), ("add", pick(&s.add), 1), ("append", pick(&s.append), 2)]
            {
                for (i, entry) in entries.iter().enumerate() {
                    let at = format!("{op}.{kind}[{i}]");
                    let Some((name, value)) = split_pair(entry) else {
                        issues.push(ConfigIssue::new(at, format!("'{entry}' is not name:value"), "write name:value"));
                        continue;
                    };
                    if is_header && !valid_header_name(name) {
                        issues.push(ConfigIssue::new(
                            at,
                            format!("'{name}' is not a valid header"),
                            "use a header name",
                        ));
                        continue;
                    }
                    if !is_header && value.is_empty() {
                        issues.push(ConfigIssue::new(at, format!("key '{name}' has no value"), "write name:value"));
                        continue;
                    }
                    match Template::parse(value) {
                        Ok(t) => {
                            let list = match target {
                                0 => &mut ops.replace,
                                1 => &mut ops.add,
                                _ => &mut ops.append,
                            };
                            list.push((norm(name), t));
                        }
                        // The value may hold a secret: the message names the field, not the text.
                        Err(_) => issues.push(ConfigIssue::new(
                            at,
                            "the value holds an unsupported $(...) template",
                            "use $(headers.name), $(query_params.name) or a literal value",
                        )),
                    }
                }
            }
            match field {
                0 => out.headers = ops,
                1 => out.query = ops,
                _ => out.body = ops,
            }
        }
        let values: Vec<String> = [&out.headers, &out.query, &out.body]
            .iter()
            .flat_map(|ops| ops.replace.iter().chain(&ops.add).chain(&ops.append))
            .filter(|(name, _)| credential_name(name))
            .filter_map(|(_, t)| t.literal())
            .collect();
        out.secrets = Arc::new(SecretSet::new(values.iter().map(String::as_str)));
        if issues.is_empty() {
            Ok(out)
        } else {
            Err(issues)
        }
    }

    /// Transform the headers going upstream (`upstream`); templates read the client's request.
    pub fn apply_headers(&self, client: &RequestHeader, upstream: &mut RequestHeader) {
        let ops = &self.headers;
        for name in &ops.remove {
            while upstream.remove_header(name.as_str()).is_some() {}
        }
        for (old, new) in &ops.rename {
            let values: Vec<http::HeaderValue> = upstream.headers.get_all(old.as_str()).iter().cloned().collect();
            if values.is_empty() || old == new {
                continue;
            }
            while upstream.remove_header(old.as_str()).is_some() {}
            while upstream.remove_header(new.as_str()).is_some() {}
            for v in values {
                let _ = upstream.append_header(new.clone(), v);
            }
        }
        let value = |t: &Template| {
            let v = t.render(client);
            (!v.is_empty()).then_some(v)
        };
        for (name, t) in &ops.replace {
            if upstream.headers.contains_key(name.as_str()) || name == "host" {
                if let Some(v) = value(t) {
                    let _ = upstream.insert_header(name.clone(), v);
                }
            }
        }
        for (name, t) in &ops.add {
            if name != "host" && !upstream.headers.contains_key(name.as_str()) {
                if let Some(v) = value(t) {
                    let _ = upstream.insert_header(name.clone(), v);
                }
            }
        }
        for (name, t) in &ops.append {
            if name != "host" {
                if let Some(v) = value(t) {
                    let _ = upstream.append_header(name.clone(), v);
                }
            }
        }
    }

    /// The transformed query string, or `None` when no query operation is configured.
    pub fn apply_query(&self, client: &RequestHeader, current: Option<&[u8]>) -> Option<Vec<u8>> {
        if self.query.is_empty() {
            return None;
        }
        let mut pairs = current.map(query::pairs).unwrap_or_default();
        apply_pairs(&self.query, &mut pairs, client, true);
        Some(query::encode_pairs(&pairs))
    }

    /// The transformed body, or `None` when it is unchanged (no body operation, an encoding
    /// other than JSON or form, or a JSON body that does not parse, which Kong leaves as is).
    pub fn apply_body(&self, client: &RequestHeader, encoding: BodyEncoding, body: &[u8]) -> Option<Vec<u8>> {
        if self.body.is_empty() {
            return None;
        }
        match encoding {
            BodyEncoding::Json => {
                let mut map: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
                    Map::new()
                } else {
                    match serde_json::from_slice(body) {
                        Ok(Value::Object(m)) => m,
                        _ => return None,
                    }
                };
                apply_json(&self.body, &mut map, client, !body.is_empty());
                serde_json::to_vec(&Value::Object(map)).ok()
            }
            BodyEncoding::Form => {
                let mut pairs = query::pairs(body);
                apply_pairs(&self.body, &mut pairs, client, !body.is_empty());
                Some(query::encode_pairs(&pairs))
            }
            BodyEncoding::Other => None,
        }
    }
}

/// Query-string or form operations on decoded pairs. `existing`: remove, rename and replace
/// apply (Kong skips them on an empty body).
fn apply_pairs(ops: &Ops, pairs: &mut Vec<(String, String)>, client: &RequestHeader, existing: bool) {
    if existing {
        for name in &ops.remove {
            pairs.retain(|(k, _)| k != name);
        }
        for (old, new) in &ops.rename {
            if pairs.iter().any(|(k, _)| k == old) {
                pairs.retain(|(k, _)| k != new);
                for (k, _) in pairs.iter_mut().filter(|(k, _)| k == old) {
                    k.clone_from(new);
                }
            }
        }
        for (name, t) in &ops.replace {
            if let Some(first) = pairs.iter().position(|(k, _)| k == name) {
                pairs[first].1 = t.render(client);
                let mut i = 0;
                pairs.retain(|(k, _)| {
                    i += 1;
                    k != name || i == first + 1
                });
            }
        }
    }
    for (name, t) in &ops.add {
        if !pairs.iter().any(|(k, _)| k == name) {
            pairs.push((name.clone(), t.render(client)));
        }
    }
    for (name, t) in &ops.append {
        pairs.push((name.clone(), t.render(client)));
    }
}

/// JSON body operations on the top-level object; values set are strings, as Kong's are.
fn apply_json(ops: &Ops, map: &mut Map<String, Value>, client: &RequestHeader, existing: bool) {
    if existing {
        for name in &ops.remove {
            map.remove(name);
        }
        for (old, new) in &ops.rename {
            if let Some(v) = map.remove(old) {
                map.insert(new.clone(), v);
            }
        }
        for (name, t) in &ops.replace {
            if let Some(slot) = map.get_mut(name) {
                *slot = Value::String(t.render(client));
            }
        }
    }
    for (name, t) in &ops.add {
        if !map.contains_key(name) {
            map.insert(name.clone(), Value::String(t.render(client)));
        }
    }
    for (name, t) in &ops.append {
        let v = Value::String(t.render(client));
        match map.remove(name) {
            None => {
                map.insert(name.clone(), v);
            }
            Some(Value::Array(mut a)) => {
                a.push(v);
                map.insert(name.clone(), Value::Array(a));
            }
            Some(old) => {
                map.insert(name.clone(), Value::Array(vec![old, v]));
            }
        }
    }
}

#[cfg(test)]
mod tests;
