//! ai-mcp-proxy: Kong's MCP plugin (Enterprise, 3.12+; tool ACLs 3.13+) in its
//! `passthrough-listener` mode — the route's service is an MCP server spoken to over Streamable
//! HTTP, and the gateway reads every message on the way: tool ACLs (`default_acl`, per-tool
//! `acl`, deny wins, by consumer and consumer group) decide which `tools/call` pass and what
//! `tools/list` shows; malformed, oversized and unknown messages are answered by the gateway
//! and never reach the server. Kong's fields for the other modes (conversion of REST APIs) are
//! refused, as is any value aigate cannot enforce.
//!
//! aigate adds `denied_status` (the HTTP status of a refused tool call: Kong's 403, or 200 for
//! clients that drop their session on a 4xx), and `pin_tools` / `tools_digest` (tool-list
//! pinning, as ai-mcp-guard's).

use std::collections::HashMap;

use serde::Deserialize;

use super::{unsupported_unless_default, ConfigIssue};
use crate::consumers::Consumer;
use crate::store::pins::PinMode;

// ---------------------------------------------------------------------------------------------
// Schema (Kong 3.14's, plus aigate's own fields)

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpProxySchema {
    pub mode: String,
    #[serde(default)]
    pub tools: Vec<ToolSchema>,
    #[serde(default)]
    pub default_acl: Vec<DefaultAclSchema>,
    #[serde(default)]
    pub include_consumer_groups: bool,
    pub consumer_identifier: Option<String>,
    pub acl_attribute_type: Option<String>,
    pub access_token_claim_field: Option<serde_yaml::Value>,
    pub logging: Option<LoggingSchema>,
    pub max_request_body_size: Option<u64>,
    pub server: Option<ServerSchema>,
    /// aigate: the HTTP status of a refused `tools/call` (403, as Kong 3.14; or 200).
    pub denied_status: Option<u16>,
    /// aigate: `off` (default), `warn` or `block` when the server's tool list changes.
    pub pin_tools: Option<String>,
    /// aigate: the accepted tool-list digest (`sha256:<hex>` from `/mcp/pins`).
    pub tools_digest: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSchema {
    pub name: Option<String>,
    pub description: Option<String>,
    pub acl: Option<AclListsSchema>,
    // Conversion-mode fields: refused in passthrough-listener.
    pub method: Option<serde_yaml::Value>,
    pub path: Option<serde_yaml::Value>,
    pub host: Option<serde_yaml::Value>,
    pub scheme: Option<serde_yaml::Value>,
    pub headers: Option<serde_yaml::Value>,
    pub query: Option<serde_yaml::Value>,
    pub parameters: Option<serde_yaml::Value>,
    pub request_body: Option<serde_yaml::Value>,
    pub responses: Option<serde_yaml::Value>,
    pub annotations: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclListsSchema {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultAclSchema {
    pub scope: Option<String>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSchema {
    pub log_audits: Option<bool>,
    pub log_payloads: Option<bool>,
    pub log_statistics: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSchema {
    pub forward_client_headers: Option<bool>,
    pub tag: Option<serde_yaml::Value>,
    pub timeout: Option<serde_yaml::Value>,
    pub session: Option<serde_yaml::Value>,
}

// ---------------------------------------------------------------------------------------------
// Compiled

/// Which consumer attribute ACL entries name (Kong's `consumer_identifier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifier {
    Username,
    ConsumerId,
    CustomId,
}

/// An allow and a deny list (empty lists are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclLists {
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
}

impl AclLists {
    fn new(allow: Option<Vec<String>>, deny: Option<Vec<String>>) -> AclLists {
        AclLists { allow: allow.filter(|a| !a.is_empty()), deny: deny.unwrap_or_default() }
    }

    /// Kong's evaluation: a deny match refuses; an allow list must match; otherwise allowed.
    fn permits(&self, matches: &dyn Fn(&str) -> bool) -> bool {
        if self.deny.iter().any(|e| matches(e)) {
            return false;
        }
        match &self.allow {
            Some(allow) => allow.iter().any(|e| matches(e)),
            None => true,
        }
    }
}

#[derive(Debug)]
pub struct McpProxy {
    pub default_acl: AclLists,
    /// Tools named in `tools[]`, with their own ACL (replacing the default) if they have one.
    pub tools: HashMap<String, Option<AclLists>>,
    pub include_consumer_groups: bool,
    pub identifier: Identifier,
    /// The body size limit (`None`: the gateway's `max_request_body_size`).
    pub max_body: Option<u64>,
    pub denied_status: u16,
    pub pin: PinMode,
    pub pinned_digest: Option<String>,
}

impl McpProxy {
    pub fn compile(s: McpProxySchema) -> Result<McpProxy, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        if s.mode != "passthrough-listener" {
            issues.push(ConfigIssue::new(
                "mode",
                format!("mode `{}` is not supported by aigate", s.mode),
                "use mode: passthrough-listener (the route's service is the MCP server)",
            ));
        }
        let identifier = match s.consumer_identifier.as_deref() {
            None | Some("username") => Identifier::Username,
            Some("consumer_id") => Identifier::ConsumerId,
            Some("custom_id") => Identifier::CustomId,
            Some(other) => {
                issues.push(ConfigIssue::new(
                    "consumer_identifier",
                    format!("`{other}` is not username, consumer_id or custom_id"),
                    "use username, consumer_id or custom_id",
                ));
                Identifier::Username
            }
        };
        unsupported_unless_default(&mut issues, "acl_attribute_type", &s.acl_attribute_type.map(Into::into), |v| {
            v.as_str() == Some("consumer")
        });
        unsupported_unless_default(&mut issues, "access_token_claim_field", &s.access_token_claim_field, |_| false);
        if let Some(l) = &s.logging {
            // aigate's access log records every decision and never a payload.
            if l.log_payloads == Some(true) {
                issues.push(ConfigIssue::new(
                    "logging.log_payloads",
                    "aigate never logs MCP payloads (they hold arguments and results)",
                    "set log_payloads: false",
                ));
            }
        }
        if let Some(server) = &s.server {
            if server.forward_client_headers == Some(false) {
                issues.push(ConfigIssue::new(
                    "server.forward_client_headers",
                    "`forward_client_headers: false` is not supported by aigate",
                    "remove it, and drop headers with request-transformer instead",
                ));
            }
            unsupported_unless_default(&mut issues, "server.tag", &server.tag, |_| false);
            unsupported_unless_default(&mut issues, "server.session", &server.session, |_| false);
            unsupported_unless_default(&mut issues, "server.timeout", &server.timeout, |v| {
                v.as_f64() == Some(10000.0) || v.as_u64() == Some(10000)
            });
        }
        let mut default_acl = AclLists::default();
        for (i, d) in s.default_acl.into_iter().enumerate() {
            match d.scope.as_deref() {
                None | Some("tools") => default_acl = AclLists::new(d.allow, d.deny),
                Some(other) => issues.push(ConfigIssue::new(
                    format!("default_acl[{i}].scope"),
                    format!("scope `{other}` is not supported by aigate"),
                    "use scope: tools",
                )),
            }
        }
        let mut tools = HashMap::new();
        for (i, t) in s.tools.into_iter().enumerate() {
            let at = |f: &str| format!("tools[{i}].{f}");
            let Some(name) = t.name.filter(|n| !n.is_empty()) else {
                issues.push(ConfigIssue::new(at("name"), "a tool needs its name", "name the MCP server's tool"));
                continue;
            };
            if t.description.is_none() {
                issues.push(ConfigIssue::new(at("description"), "description is required (as in Kong)", "describe it"));
            }
            for (field, v) in [
                ("method", &t.method),
                ("path", &t.path),
                ("host", &t.host),
                ("scheme", &t.scheme),
                ("headers", &t.headers),
                ("query", &t.query),
                ("parameters", &t.parameters),
                ("request_body", &t.request_body),
                ("responses", &t.responses),
                ("annotations", &t.annotations),
            ] {
                if v.as_ref().is_some_and(|v| !v.is_null()) {
                    issues.push(ConfigIssue::new(
                        at(field),
                        format!("`{field}` belongs to Kong's conversion modes, which aigate does not support"),
                        "remove it: in passthrough-listener the MCP server defines its tools",
                    ));
                }
            }
            let acl = t.acl.map(|a| AclLists::new(a.allow, a.deny));
            if tools.insert(name.clone(), acl).is_some() {
                issues.push(ConfigIssue::new(at("name"), format!("tool `{name}` is listed twice"), "list it once"));
            }
        }
        let max_body = match s.max_request_body_size {
            None => Some(1024 * 1024),
            Some(0) => None,
            Some(n) => Some(n),
        };
        let denied_status = match s.denied_status {
            None | Some(403) => 403,
            Some(200) => 200,
            Some(other) => {
                issues.push(ConfigIssue::new(
                    "denied_status",
                    format!("{other} is not 403 or 200"),
                    "use 403 (Kong 3.14) or 200 (for clients that drop their session on a 4xx)",
                ));
                403
            }
        };
        let pin = match s.pin_tools.as_deref() {
            None | Some("off") => PinMode::Off,
            Some("warn") => PinMode::Warn,
            Some("block") => PinMode::Block,
            Some(other) => {
                issues.push(ConfigIssue::new(
                    "pin_tools",
                    format!("`{other}` is not off, warn or block"),
                    "use off, warn or block",
                ));
                PinMode::Off
            }
        };
        if let Some(d) = &s.tools_digest {
            let ok =
                d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                issues.push(ConfigIssue::new(
                    "tools_digest",
                    "not a sha256:<64 hex> digest",
                    "copy it from the status listener's /mcp/pins",
                ));
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(McpProxy {
            default_acl,
            tools,
            include_consumer_groups: s.include_consumer_groups,
            identifier,
            max_body,
            denied_status,
            pin,
            pinned_digest: s.tools_digest.map(|d| d.to_ascii_lowercase()),
        })
    }

    /// Whether an ACL entry names this consumer (by the configured identifier) or, with
    /// `include_consumer_groups`, one of its groups (consumer groups and ACL groups).
    fn matcher<'a>(&'a self, consumer: Option<&'a Consumer>) -> impl Fn(&str) -> bool + 'a {
        move |entry: &str| {
            let Some(c) = consumer else { return false };
            let subject = match self.identifier {
                Identifier::Username => c.username.as_deref(),
                Identifier::ConsumerId => Some(c.id.as_str()),
                Identifier::CustomId => c.custom_id.as_deref(),
            };
            subject == Some(entry) || (self.include_consumer_groups && c.in_group(entry, true))
        }
    }

    /// Whether the consumer may call (and see) `tool`: the tool's own ACL if it has one, else
    /// `default_acl`.
    pub fn may_use(&self, tool: &str, consumer: Option<&Consumer>) -> bool {
        let m = self.matcher(consumer);
        match self.tools.get(tool) {
            Some(Some(acl)) => acl.permits(&m),
            _ => self.default_acl.permits(&m),
        }
    }

    /// A consumer matched by `default_acl`'s deny list is refused the server entirely (Kong:
    /// "the connection fails with 403").
    pub fn refused_entirely(&self, consumer: Option<&Consumer>) -> bool {
        let m = self.matcher(consumer);
        self.default_acl.deny.iter().any(|e| m(e))
    }

    /// Whether `tool` is named in the configuration (a bounded metric label).
    pub fn configured(&self, tool: &str) -> bool {
        self.tools.contains_key(tool)
    }
}

#[cfg(test)]
mod tests;
