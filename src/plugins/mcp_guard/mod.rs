//! ai-mcp-guard: rules for the hosted MCP tools of OpenAI Responses requests. OpenAI, not the
//! gateway, calls these MCP servers, so the request body is the only place to govern them:
//!
//! - servers: an allowlist per consumer or ACL group, matched on `server_label` and the exact,
//!   normalised `server_url` (or `connector_id`); anything else is refused with 403 and the
//!   provider never sees the request;
//! - tools: the request's `allowed_tools` is narrowed to the permitted set (or the request
//!   refused, by config), and `require_approval` forced to `always` for sensitive tools;
//! - credentials: the gateway injects the server's credential from its own config, and removes
//!   (or refuses) one supplied by the client;
//! - the MCP items a client sends back in `input` (or adds to a conversation's `items`) are held
//!   to the same rules; an MCP tool defined anywhere else (inside `input` items) is refused;
//! - reusable prompts (`prompt.id`) can carry tools the gateway cannot see: refused unless listed
//!   in `allowed_prompts`;
//! - tool-list pinning: a server whose listed tools change can be blocked until an operator
//!   accepts the new list (see `store::pins`; the full list is pinned, a consumer's narrowed one
//!   is checked against it).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ConfigIssue;
use crate::ai::body_scan::BodyRefs;
use crate::ai::json_body::RequestDoc;
use crate::ai::refusal::AiRefusal;
use crate::consumers::{Consumer, Consumers};
use crate::core::secrets::SecretSet;
use crate::core::ConsumerId;
use crate::store::ownership::OwnershipStore;
use crate::store::pins::{PinMode, PinStore};

// ---------------------------------------------------------------------------------------------
// Schema

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpGuardSchema {
    #[serde(default)]
    pub servers: Vec<ServerSchema>,
    /// `narrow` (default): drop tools the consumer may not use; `refuse`: answer 403.
    pub on_disallowed_tools: Option<String>,
    /// Reusable prompt ids (`prompt.id`) requests may name.
    #[serde(default)]
    pub allowed_prompts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSchema {
    pub server_label: String,
    pub server_url: Option<String>,
    pub connector_id: Option<String>,
    #[serde(default)]
    pub allow_http: bool,
    /// Consumers (username, custom_id or id) allowed; with `groups` empty too: everyone.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// ACL groups allowed.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Tools that may be used; absent: all of the server's tools.
    pub allowed_tools: Option<Vec<String>>,
    /// Tools that always need approval.
    #[serde(default)]
    pub sensitive_tools: Vec<String>,
    pub credential: Option<CredentialSchema>,
    /// What to do with a credential the client sends for this server: `strip` (default) or
    /// `refuse`.
    pub client_credentials: Option<String>,
    /// `off` (default), `warn` (count a change of the tool list), `block` (refuse the server
    /// until an operator accepts the new list).
    pub pin_tools: Option<String>,
    /// The accepted digest of the tool list (`sha256:<hex>`, as shown by `/mcp/pins`).
    pub tools_digest: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSchema {
    /// Put the value in `headers.<header>` (default `Authorization`) ...
    pub header: Option<String>,
    /// ... or in the tool's `authorization` field (`field: authorization`).
    pub field: Option<String>,
    pub value: String,
}

// ---------------------------------------------------------------------------------------------
// Compiled

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTarget {
    Url(String),
    Connector(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialPlace {
    Header(String),
    Field,
}

pub struct McpCredential {
    pub place: CredentialPlace,
    pub value: String,
}

impl std::fmt::Debug for McpCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpCredential").field("place", &self.place).field("value", &"<redacted>").finish()
    }
}

#[derive(Debug)]
pub struct ServerRule {
    pub label: String,
    pub target: McpTarget,
    pub allow_http: bool,
    pub consumers: Vec<ConsumerId>,
    pub groups: Vec<String>,
    pub allowed_tools: Option<BTreeSet<String>>,
    pub sensitive_tools: BTreeSet<String>,
    pub credential: Option<McpCredential>,
    pub refuse_client_credentials: bool,
    pub pin: PinMode,
    pub pinned_digest: Option<String>,
}

impl ServerRule {
    fn permits(&self, consumer: Option<(ConsumerId, &Consumer)>) -> bool {
        if self.consumers.is_empty() && self.groups.is_empty() {
            return true;
        }
        let Some((id, c)) = consumer else { return false };
        self.consumers.contains(&id) || self.groups.iter().any(|g| c.groups.contains(g))
    }
}

#[derive(Debug)]
pub struct McpGuard {
    pub servers: Vec<ServerRule>,
    pub refuse_disallowed_tools: bool,
    /// The injected credentials, scrubbed from every answer a client receives.
    pub secrets: Arc<SecretSet>,
    pub allowed_prompts: BTreeSet<String>,
}

/// A decision, for metrics and the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardEvent {
    pub server_label: String,
    pub tool: Option<String>,
    /// allowed, narrowed, refused, injected, stripped, approval_forced
    pub decision: &'static str,
    /// The label is one of the guard's servers (an unknown one is no metric label of its own).
    pub configured: bool,
}

/// What the guard decided for one request.
#[derive(Debug, Default, Clone)]
pub struct GuardRecord {
    pub events: Vec<GuardEvent>,
    /// For each MCP server handed to the model: whether its tools are listed under the server's
    /// configured filter (its full list, to pin) or a narrower one the request chose.
    pub listings: Vec<(String, bool)>,
}

impl GuardRecord {
    fn event(&mut self, label: &str, tool: Option<String>, decision: &'static str, configured: bool) {
        self.events.push(GuardEvent { server_label: label.to_string(), tool, decision, configured });
    }

    /// Whether `label`'s tools were listed under its full filter in this request.
    pub fn full_listing(&self, label: &str) -> Option<bool> {
        self.listings.iter().find(|(l, _)| l == label).map(|(_, full)| *full)
    }
}

impl McpGuard {
    pub fn compile(s: McpGuardSchema, consumers: &Consumers) -> Result<McpGuard, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let refuse_disallowed_tools = match s.on_disallowed_tools.as_deref() {
            None | Some("narrow") => false,
            Some("refuse") => true,
            Some(other) => {
                issues.push(ConfigIssue::new(
                    "on_disallowed_tools",
                    format!("`{other}` is not narrow or refuse"),
                    "use narrow or refuse",
                ));
                false
            }
        };
        if s.servers.is_empty() && s.allowed_prompts.is_empty() {
            issues.push(ConfigIssue::new(
                "servers",
                "servers is empty: every MCP tool would be refused",
                "list the MCP servers consumers may use",
            ));
        }
        for (i, p) in s.allowed_prompts.iter().enumerate() {
            if !crate::core::is_object_id(p) {
                issues.push(ConfigIssue::new(
                    format!("allowed_prompts[{i}]"),
                    format!("`{p}` is not a prompt id"),
                    "give the id of a reusable prompt (pmpt_...)",
                ));
            }
        }
        let mut servers = Vec::new();
        for (i, r) in s.servers.into_iter().enumerate() {
            let at = |f: &str| format!("servers[{i}].{f}");
            let target = match (r.server_url.as_deref(), r.connector_id.as_deref()) {
                (Some(url), None) => match normalize_url(url) {
                    Ok(u) => {
                        if u.starts_with("http://") && !r.allow_http {
                            issues.push(ConfigIssue::new(
                                at("server_url"),
                                format!("`{url}` is not https"),
                                "use https, or set allow_http: true",
                            ));
                        }
                        Some(McpTarget::Url(u))
                    }
                    Err(e) => {
                        issues.push(ConfigIssue::new(at("server_url"), e, "give the MCP server's full https URL"));
                        None
                    }
                },
                (None, Some(c)) if !c.is_empty() => Some(McpTarget::Connector(c.to_string())),
                _ => {
                    issues.push(ConfigIssue::new(
                        at("server_url"),
                        "give exactly one of server_url and connector_id",
                        "set server_url: https://...",
                    ));
                    None
                }
            };
            if r.server_label.is_empty() {
                issues.push(ConfigIssue::new(
                    at("server_label"),
                    "server_label is empty",
                    "name the server as clients label it",
                ));
            }
            let mut ids = Vec::new();
            for (j, name) in r.consumers.iter().enumerate() {
                match consumers.find(name) {
                    Some(id) => ids.push(id),
                    None => issues.push(ConfigIssue::new(
                        format!("servers[{i}].consumers[{j}]"),
                        format!("consumer `{name}` is not defined"),
                        "name a consumer from the consumers list",
                    )),
                }
            }
            let credential = match r.credential {
                None => None,
                Some(c) => match (c.header, c.field.as_deref()) {
                    (Some(h), None) => Some(McpCredential { place: CredentialPlace::Header(h), value: c.value }),
                    (None, None) => {
                        Some(McpCredential { place: CredentialPlace::Header("Authorization".into()), value: c.value })
                    }
                    (None, Some("authorization")) => {
                        Some(McpCredential { place: CredentialPlace::Field, value: c.value })
                    }
                    _ => {
                        issues.push(ConfigIssue::new(
                            at("credential"),
                            "give either header or field: authorization",
                            "e.g. header: Authorization",
                        ));
                        None
                    }
                },
            };
            if credential.as_ref().is_some_and(|c| c.value.is_empty()) {
                issues.push(ConfigIssue::new(
                    at("credential.value"),
                    "the credential is empty",
                    "check the variable that fills it",
                ));
            }
            let refuse_client_credentials = match r.client_credentials.as_deref() {
                None | Some("strip") => false,
                Some("refuse") => true,
                Some(other) => {
                    issues.push(ConfigIssue::new(
                        at("client_credentials"),
                        format!("`{other}` is not strip or refuse"),
                        "use strip or refuse",
                    ));
                    false
                }
            };
            let pin = match r.pin_tools.as_deref() {
                None | Some("off") => PinMode::Off,
                Some("warn") => PinMode::Warn,
                Some("block") => PinMode::Block,
                Some(other) => {
                    issues.push(ConfigIssue::new(
                        at("pin_tools"),
                        format!("`{other}` is not off, warn or block"),
                        "use off, warn or block",
                    ));
                    PinMode::Off
                }
            };
            if let Some(d) = &r.tools_digest {
                let ok = d
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if !ok {
                    issues.push(ConfigIssue::new(
                        at("tools_digest"),
                        "not a sha256:<64 hex> digest",
                        "copy it from the status listener's /mcp/pins",
                    ));
                }
            }
            if let Some(t) = target {
                servers.push(ServerRule {
                    label: r.server_label,
                    target: t,
                    allow_http: r.allow_http,
                    consumers: ids,
                    groups: r.groups,
                    allowed_tools: r.allowed_tools.map(|v| v.into_iter().collect()),
                    sensitive_tools: r.sensitive_tools.into_iter().collect(),
                    credential,
                    refuse_client_credentials,
                    pin,
                    pinned_digest: r.tools_digest.map(|d| d.to_ascii_lowercase()),
                });
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let secrets =
            Arc::new(SecretSet::new(servers.iter().filter_map(|s| s.credential.as_ref()).map(|c| c.value.as_str())));
        Ok(McpGuard {
            servers,
            refuse_disallowed_tools,
            secrets,
            allowed_prompts: s.allowed_prompts.into_iter().collect(),
        })
    }

    /// Whether requests may name the reusable prompt `id`.
    pub fn allows_prompt(&self, id: &str) -> bool {
        self.allowed_prompts.contains(id)
    }

    /// Check and rewrite the MCP parts of a Responses request (or of conversation items) for
    /// this consumer. Decisions are recorded in `record`, refusals included.
    pub fn apply(
        &self,
        doc: &mut RequestDoc<'_>,
        refs: &BodyRefs,
        consumer: Option<(ConsumerId, &Consumer)>,
        approvals: &dyn OwnershipStore,
        pins: &PinStore,
        record: &mut GuardRecord,
    ) -> Result<(), AiRefusal> {
        if let Some(at) = &refs.nested_mcp_tool {
            return Err(AiRefusal {
                status: 403,
                message: format!(
                    "an MCP tool defined at `{at}` cannot be governed there; declare MCP tools in the request's top-level `tools`"
                ),
                kind: "permission_error",
                code: "mcp_server_not_allowed",
            });
        }
        if let Some(raw) = doc.raw("tools") {
            let mut tools: Vec<Value> = match serde_json::from_str::<Value>(raw) {
                Ok(Value::Array(a)) => a,
                Ok(Value::Null) => Vec::new(),
                _ => return Err(AiRefusal::bad_request("\"tools\" must be an array", "invalid_type")),
            };
            let mut changed = false;
            for tool in tools.iter_mut() {
                if tool.get("type").and_then(Value::as_str) != Some("mcp") {
                    continue;
                }
                changed |= self.check_tool(tool, consumer, pins, record)?;
            }
            if changed {
                doc.set("tools", &tools);
            }
        }
        for field in ["input", "items"] {
            let Some(raw) = doc.raw(field) else { continue };
            if raw.starts_with('[') {
                let items: Vec<Value> = serde_json::from_str(raw)
                    .map_err(|e| AiRefusal::bad_request(format!("\"{field}\": {e}"), "invalid_type"))?;
                for item in &items {
                    self.check_input_item(item, consumer, approvals, record)?;
                }
            }
        }
        Ok(())
    }

    fn check_tool(
        &self,
        tool: &mut Value,
        consumer: Option<(ConsumerId, &Consumer)>,
        pins: &PinStore,
        record: &mut GuardRecord,
    ) -> Result<bool, AiRefusal> {
        let label = tool.get("server_label").and_then(Value::as_str).unwrap_or_default().to_string();
        if label.is_empty() {
            return Err(AiRefusal::bad_request("an MCP tool needs a server_label", "mcp_server_label_missing"));
        }
        let target =
            match (tool.get("server_url").and_then(Value::as_str), tool.get("connector_id").and_then(Value::as_str)) {
                (Some(url), None) => McpTarget::Url(normalize_url(url).map_err(|e| forbidden(&label, &e))?),
                (None, Some(c)) => McpTarget::Connector(c.to_string()),
                _ => return Err(forbidden(&label, "give exactly one of server_url and connector_id")),
            };
        let configured = self.servers.iter().any(|r| r.label == label);
        let same_server: Vec<&ServerRule> =
            self.servers.iter().filter(|r| r.label == label && r.target == target).collect();
        if same_server.is_empty() {
            record.event(&label, None, "refused", configured);
            let why = if configured { "is not allowed at this URL" } else { "is not allowed" };
            return Err(forbidden(&label, why));
        }
        let Some(rule) = same_server.iter().copied().find(|r| r.permits(consumer)) else {
            record.event(&label, None, "refused", true);
            return Err(forbidden(&label, "is not allowed for this consumer"));
        };
        if tool.get("tunnel_id").is_some_and(|t| !t.is_null()) {
            record.event(&label, None, "refused", true);
            return Err(forbidden(&label, "cannot be reached through a tunnel_id the gateway cannot check"));
        }
        if let McpTarget::Url(u) = &rule.target {
            if u.starts_with("http://") && !rule.allow_http {
                return Err(forbidden(&label, "must use https"));
            }
        }
        if rule.pin == PinMode::Block {
            if let Some(digest) = pins.blocked(&label) {
                record.event(&label, None, "refused", true);
                return Err(forbidden(
                    &label,
                    &format!(
                        "changed its tool list (now {digest}); an operator must accept it before it is used again"
                    ),
                ));
            }
        }
        let mut changed = false;
        let obj = tool.as_object_mut().ok_or_else(|| forbidden(&label, "is not an object"))?;

        // Tools: narrow the client's list to the permitted set.
        let filter = allowed_tools_of(obj).map_err(|e| AiRefusal::bad_request(e, "invalid_allowed_tools"))?;
        let (client_tools, shape) = (filter.names, filter.shape);
        let effective: Option<BTreeSet<String>> = match (&client_tools, &rule.allowed_tools) {
            (None, None) => None,
            (Some(c), None) => Some(c.clone()),
            (None, Some(p)) => {
                set_allowed_tools(obj, p, shape);
                changed = true;
                record.event(&label, None, "narrowed", true);
                Some(p.clone())
            }
            (Some(c), Some(p)) => {
                let kept: BTreeSet<String> = c.intersection(p).cloned().collect();
                let dropped: Vec<&String> = c.difference(p).collect();
                if !dropped.is_empty() {
                    if self.refuse_disallowed_tools || kept.is_empty() {
                        record.event(&label, dropped.first().map(|t| t.to_string()), "refused", true);
                        return Err(forbidden(
                            &label,
                            &format!("does not allow the tool `{}` for this consumer", dropped[0]),
                        ));
                    }
                    set_allowed_tools(obj, &kept, shape);
                    changed = true;
                    record.event(&label, None, "narrowed", true);
                }
                Some(kept)
            }
        };
        // The provider lists the server's full tool list only under the rule's own filter.
        let full = effective == rule.allowed_tools && !filter.read_only;
        if !record.listings.iter().any(|(l, _)| *l == label) {
            record.listings.push((label.clone(), full));
        }

        // Sensitive tools always need approval.
        let sensitive: BTreeSet<String> = match &effective {
            Some(e) => e.intersection(&rule.sensitive_tools).cloned().collect(),
            None => rule.sensitive_tools.clone(),
        };
        if !sensitive.is_empty() && force_approval(obj, &sensitive, effective.as_ref()) {
            changed = true;
            record.event(&label, None, "approval_forced", true);
        }

        // Credentials: the gateway's own, never the client's.
        let client_has = remove_credentials(obj, false);
        if client_has && (rule.refuse_client_credentials) {
            record.event(&label, None, "refused", true);
            return Err(forbidden(&label, "must not be given a credential by the client"));
        }
        if let Some(cred) = &rule.credential {
            if client_has {
                remove_credentials(obj, true);
                record.event(&label, None, "stripped", true);
            }
            match &cred.place {
                CredentialPlace::Header(h) => {
                    let headers = obj.entry("headers").or_insert_with(|| json!({}));
                    if !headers.is_object() {
                        *headers = json!({});
                    }
                    if let Some(m) = headers.as_object_mut() {
                        m.insert(h.clone(), Value::String(cred.value.clone()));
                    }
                }
                CredentialPlace::Field => {
                    obj.insert("authorization".into(), Value::String(cred.value.clone()));
                }
            }
            changed = true;
            record.event(&label, None, "injected", true);
        }
        if !record.events.iter().any(|e| e.server_label == label) {
            record.event(&label, None, "allowed", true);
        }
        Ok(changed)
    }

    fn check_input_item(
        &self,
        item: &Value,
        consumer: Option<(ConsumerId, &Consumer)>,
        approvals: &dyn OwnershipStore,
        record: &mut GuardRecord,
    ) -> Result<(), AiRefusal> {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "mcp_list_tools" | "mcp_call" | "mcp_approval_request" => {
                let label = item.get("server_label").and_then(Value::as_str).unwrap_or_default();
                let tool = item.get("name").and_then(Value::as_str);
                let Some(rule) = self.servers.iter().find(|r| r.label == label && r.permits(consumer)) else {
                    let configured = self.servers.iter().any(|r| r.label == label);
                    record.event(label, None, "refused", configured);
                    return Err(forbidden(label, "is not allowed for this consumer"));
                };
                if let (Some(t), Some(allowed)) = (tool, &rule.allowed_tools) {
                    if !allowed.contains(t) {
                        return Err(forbidden(label, &format!("does not allow the tool `{t}` for this consumer")));
                    }
                }
                Ok(())
            }
            "mcp_approval_response" => {
                let id = item.get("approval_request_id").and_then(Value::as_str).unwrap_or_default();
                let known = consumer.and_then(|(_, c)| approvals.approval(id, &c.id));
                let Some((label, tool)) = known else {
                    return Err(AiRefusal {
                        status: 403,
                        message: format!("approval request '{id}' was not issued to this consumer"),
                        kind: "permission_error",
                        code: "mcp_approval_unknown",
                    });
                };
                let rule = self.servers.iter().find(|r| r.label == label && r.permits(consumer));
                match rule {
                    Some(r) if r.allowed_tools.as_ref().is_none_or(|a| a.contains(&tool)) => Ok(()),
                    _ => {
                        let configured = self.servers.iter().any(|r| r.label == label);
                        record.event(&label, Some(tool.clone()), "refused", configured);
                        Err(forbidden(&label, &format!("does not allow the tool `{tool}` for this consumer")))
                    }
                }
            }
            _ => Ok(()),
        }
    }
}

fn forbidden(label: &str, why: &str) -> AiRefusal {
    AiRefusal {
        status: 403,
        message: format!("MCP server '{label}' {why}"),
        kind: "permission_error",
        code: "mcp_server_not_allowed",
    }
}

#[derive(Clone, Copy)]
enum ToolsShape {
    Array,
    Object,
}

/// A request's `allowed_tools` for one server.
struct ToolFilter {
    /// The tool names, if it names any (absent: all tools).
    names: Option<BTreeSet<String>>,
    shape: ToolsShape,
    /// `read_only: true`: the provider lists only the tools the server marks read-only.
    read_only: bool,
}

/// The client's `allowed_tools`: absent (all tools), an array of names, or OpenAI's filter
/// object `{tool_names: [...], read_only: bool}`. Anything else is refused: an entry the guard
/// skipped could still mean something to a provider.
fn allowed_tools_of(obj: &Map<String, Value>) -> Result<ToolFilter, String> {
    let names = |a: &Vec<Value>, at: &str| -> Result<BTreeSet<String>, String> {
        a.iter()
            .map(|v| v.as_str().map(String::from).ok_or_else(|| format!("`{at}` entries must be tool names (strings)")))
            .collect()
    };
    Ok(match obj.get("allowed_tools") {
        None | Some(Value::Null) => ToolFilter { names: None, shape: ToolsShape::Array, read_only: false },
        Some(Value::Array(a)) => {
            ToolFilter { names: Some(names(a, "allowed_tools")?), shape: ToolsShape::Array, read_only: false }
        }
        Some(Value::Object(o)) => {
            if let Some(k) = o.keys().find(|k| *k != "tool_names" && *k != "read_only") {
                return Err(format!("`allowed_tools` has an unknown field `{k}` (tool_names, read_only)"));
            }
            let read_only = match o.get("read_only") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err("`allowed_tools.read_only` must be true or false".into()),
            };
            let names = match o.get("tool_names") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) => Some(names(a, "allowed_tools.tool_names")?),
                Some(_) => return Err("`allowed_tools.tool_names` must be a list of tool names".into()),
            };
            ToolFilter { names, shape: ToolsShape::Object, read_only }
        }
        Some(_) => return Err("`allowed_tools` must be a list of tool names or a tool filter object".into()),
    })
}

fn set_allowed_tools(obj: &mut Map<String, Value>, tools: &BTreeSet<String>, shape: ToolsShape) {
    let list: Vec<Value> = tools.iter().map(|t| Value::String(t.clone())).collect();
    match (shape, obj.get_mut("allowed_tools")) {
        (ToolsShape::Object, Some(Value::Object(o))) => {
            o.insert("tool_names".into(), Value::Array(list));
        }
        _ => {
            obj.insert("allowed_tools".into(), Value::Array(list));
        }
    }
}

/// Make `require_approval` ask for every sensitive tool; returns whether it changed.
fn force_approval(
    obj: &mut Map<String, Value>,
    sensitive: &BTreeSet<String>,
    effective: Option<&BTreeSet<String>>,
) -> bool {
    let names = |v: Option<&Value>| -> BTreeSet<String> {
        v.and_then(|x| x.get("tool_names"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let current = obj.get("require_approval").cloned().unwrap_or(Value::Null);
    let new = match &current {
        Value::String(s) if s == "always" => return false,
        Value::Object(o) => {
            let always = names(o.get("always"));
            let never = names(o.get("never"));
            if sensitive.is_subset(&always) && never.is_disjoint(sensitive) {
                return false;
            }
            let always: BTreeSet<String> = always.union(sensitive).cloned().collect();
            let never: BTreeSet<String> = never.difference(sensitive).cloned().collect();
            let mut m = Map::new();
            m.insert("always".into(), json!({"tool_names": always}));
            if !never.is_empty() {
                m.insert("never".into(), json!({"tool_names": never}));
            }
            Value::Object(m)
        }
        // "never" or absent: the sensitive tools need approval; the other permitted ones keep
        // "never" when they are known, else everything needs approval.
        _ => {
            let wants_never = current.as_str() == Some("never");
            match effective {
                Some(e) => {
                    let never: BTreeSet<String> =
                        if wants_never { e.difference(sensitive).cloned().collect() } else { BTreeSet::new() };
                    let mut m = Map::new();
                    m.insert("always".into(), json!({"tool_names": sensitive}));
                    if !never.is_empty() {
                        m.insert("never".into(), json!({"tool_names": never}));
                    }
                    Value::Object(m)
                }
                None if wants_never => Value::String("always".into()),
                None => return false,
            }
        }
    };
    obj.insert("require_approval".into(), new);
    true
}

/// Remove (when `remove`) or detect a credential the client put in an MCP tool.
fn remove_credentials(obj: &mut Map<String, Value>, remove: bool) -> bool {
    let mut found = obj.get("authorization").is_some_and(|v| !v.is_null());
    if remove {
        obj.remove("authorization");
    }
    if let Some(Value::Object(h)) = obj.get_mut("headers") {
        let keys: Vec<String> = h.keys().filter(|k| k.eq_ignore_ascii_case("authorization")).cloned().collect();
        found |= !keys.is_empty();
        if remove {
            for k in keys {
                h.remove(&k);
            }
        }
    }
    found
}

/// Normalise an MCP server URL for comparison: scheme and host lower-cased, default port
/// dropped, `.`/`..` resolved, empty path as `/`. User information and fragments are refused.
pub fn normalize_url(url: &str) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("`{url}` is not an absolute URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Err(format!("`{url}`: only https (or http where allowed)")),
    };
    if url.contains('#') {
        return Err(format!("`{url}`: a fragment is not allowed"));
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(split);
    if authority.contains('@') {
        return Err(format!("`{url}`: user information is not allowed in an MCP server URL"));
    }
    let (host, port) =
        crate::core::split_host_port(authority, default_port).ok_or_else(|| format!("`{url}` has no valid host"))?;
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        crate::core::path::normalize_path(path).ok_or_else(|| format!("`{url}`: invalid path"))?
    };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let mut out = format!("{scheme}://{host}");
    if port != default_port {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(&path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
