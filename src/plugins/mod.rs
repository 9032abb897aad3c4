//! Plugins, one file each, Kong-compatible where Kong has the plugin. Each file holds the
//! plugin's Kong schema (what decK files say), its compiled form, and its request-time logic.

pub mod acl;
pub mod ai_proxy;
pub mod jwt;
pub mod key_auth;
pub mod mcp_guard;
pub mod openid_connect;

use serde::de::DeserializeOwned;

/// A problem in one plugin's `config`, with the place inside it (`key_names[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub what: String,
    pub fix: String,
}

impl ConfigIssue {
    pub fn new(path: impl Into<String>, what: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigIssue { path: path.into(), what: what.into(), fix: fix.into() }
    }
}

/// The plugins aigate knows, by decK name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    Jwt,
    KeyAuth,
    OpenIdConnect,
    Acl,
    AiProxy,
    AiProxyAdvanced,
    McpGuard,
}

impl PluginKind {
    pub const ALL: &'static [PluginKind] = &[
        PluginKind::Jwt,
        PluginKind::KeyAuth,
        PluginKind::OpenIdConnect,
        PluginKind::Acl,
        PluginKind::AiProxy,
        PluginKind::AiProxyAdvanced,
        PluginKind::McpGuard,
    ];

    pub fn from_name(name: &str) -> Option<PluginKind> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Jwt => "jwt",
            PluginKind::KeyAuth => "key-auth",
            PluginKind::OpenIdConnect => "openid-connect",
            PluginKind::Acl => "acl",
            PluginKind::AiProxy => "ai-proxy",
            PluginKind::AiProxyAdvanced => "ai-proxy-advanced",
            PluginKind::McpGuard => "ai-mcp-guard",
        }
    }

    /// Authentication plugins identify the consumer, so they cannot be scoped to one.
    pub fn is_auth(self) -> bool {
        matches!(self, PluginKind::Jwt | PluginKind::KeyAuth | PluginKind::OpenIdConnect)
    }

    pub fn known_names() -> String {
        Self::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }
}

/// Deserialize a plugin `config` block (absent means all defaults), naming the failing field.
pub fn parse_config<T: DeserializeOwned>(config: Option<&serde_yaml::Value>) -> Result<T, ConfigIssue> {
    let empty = serde_yaml::Value::Mapping(serde_yaml::Mapping::new());
    let value = match config {
        None | Some(serde_yaml::Value::Null) => &empty,
        Some(v) => v,
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigIssue::new(path, e.into_inner().to_string(), "see the plugin's fields in README.md")
    })
}

/// A Kong field that aigate accepts only at its default (decK dumps write every field).
/// Anything else would be a setting silently not enforced, so it is refused.
pub fn unsupported_unless_default(
    issues: &mut Vec<ConfigIssue>,
    path: &str,
    value: &Option<serde_yaml::Value>,
    is_default: impl Fn(&serde_yaml::Value) -> bool,
) {
    if let Some(v) = value {
        if !v.is_null() && !is_default(v) {
            issues.push(ConfigIssue::new(
                path,
                format!("`{path}` is not supported by aigate"),
                "remove it or set it to null",
            ));
        }
    }
}

/// An auth plugin's `anonymous` consumer (username or id), checked to exist.
pub fn anonymous_consumer(
    issues: &mut Vec<ConfigIssue>,
    consumers: &crate::consumers::Consumers,
    anonymous: Option<&str>,
) -> Option<crate::core::ConsumerId> {
    let name = anonymous.filter(|a| !a.is_empty())?;
    let id = consumers.find(name);
    if id.is_none() {
        issues.push(ConfigIssue::new(
            "anonymous",
            format!("anonymous consumer `{name}` is not defined"),
            "name a consumer (username or id) from the consumers list",
        ));
    }
    id
}

/// A list of names from a fixed set, parsed in order without repeats; each unknown name is an
/// issue at `field[i]` saying "`name` {unknown}".
pub fn choices<'a, T: PartialEq>(
    issues: &mut Vec<ConfigIssue>,
    field: &str,
    names: impl IntoIterator<Item = &'a String>,
    parse: impl Fn(&str) -> Option<T>,
    unknown: &str,
    fix: &str,
) -> Vec<T> {
    let mut out = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        match parse(name) {
            Some(v) if !out.contains(&v) => out.push(v),
            Some(_) => {}
            None => issues.push(ConfigIssue::new(format!("{field}[{i}]"), format!("`{name}` {unknown}"), fix)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_keep_order_drop_repeats_and_name_unknowns() {
        let mut issues = Vec::new();
        let names: Vec<String> = ["b", "a", "b", "zz"].iter().map(|s| s.to_string()).collect();
        let parse = |s: &str| match s {
            "a" => Some(1),
            "b" => Some(2),
            _ => None,
        };
        let got = choices(&mut issues, "things", &names, parse, "is not a thing", "use a or b");
        assert_eq!(got, vec![2, 1]);
        assert_eq!(issues, vec![ConfigIssue::new("things[3]", "`zz` is not a thing", "use a or b")]);
    }
}
