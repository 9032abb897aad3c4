//! The MCP test bed: GitHub's remote MCP server URL (https://api.githubcopilot.com/mcp/)
//! configured as a service behind ai-mcp-proxy with the gateway's PAT injected by
//! request-transformer, and served locally by a real MCP server (tests/python/mcp_server.py)
//! through `upstream_resolve` and `tls_trusted_ca`, as README's walkthrough describes.

use std::path::PathBuf;

use super::certs::TestCa;
use super::gateway::{GatewayProcess, GatewaySpec};
use super::mcp_server::{McpServer, McpServerOptions};

/// The PAT the gateway holds (the consumers never see it).
pub const GITHUB_PAT: &str = "ghp_gateway_secret_0123456789";

/// The walkthrough's decK file, with `{extra}` added to the ai-mcp-proxy config.
pub fn github_deck(extra: &str) -> String {
    format!(
        r#"_format_version: "3.0"
consumer_groups:
- name: developers
- name: suspended
services:
- name: github-mcp
  url: https://api.githubcopilot.com/mcp/
  routes:
  - name: github-mcp
    paths: [/mcp/github]
    path_handling: v1          # the upstream path is exactly the service's /mcp/
    plugins:
    - name: key-auth
      config: {{key_names: [apikey]}}
    - name: ai-mcp-proxy
      config:
        mode: passthrough-listener
        include_consumer_groups: true
        default_acl:
        - scope: tools
          allow: [developers]
          deny: [suspended]
        tools:
        - {{name: create_pull_request, description: Open a pull request, acl: {{allow: [alice]}}}}
        - {{name: delete_repository, description: Delete a repository, acl: {{allow: [admins]}}}}
{extra}
    - name: request-transformer
      config:
        remove: {{headers: [Authorization]}}
        add: {{headers: ['Authorization:Bearer ${{{{ env "DECK_GITHUB_PAT" }}}}']}}
consumers:
- username: alice
  groups: [{{name: developers}}]
  keyauth_credentials: [{{key: alice-key}}]
- username: bob
  groups: [{{name: developers}}]
  keyauth_credentials: [{{key: bob-key}}]
- username: carol
  groups: [{{name: suspended}}]
  keyauth_credentials: [{{key: carol-key}}]
- username: eve
  keyauth_credentials: [{{key: eve-key}}]
"#
    )
}

pub struct McpBed {
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
    pub server: McpServer,
    pub gateway: GatewayProcess,
}

impl McpBed {
    /// The server with `opts` (https as api.githubcopilot.com), the gateway in front of it with
    /// `extra` plugin config lines and `settings`.
    pub fn start(opts: McpServerOptions, extra: &str, settings: &str) -> McpBed {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("aigate MCP test CA");
        let opts = McpServerOptions { tls_names: vec!["api.githubcopilot.com"], ..opts };
        let server = McpServer::start(dir.path(), Some(&ca), opts);
        let ca_path: PathBuf = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca.cert_pem).unwrap();
        let deck = github_deck(extra);
        let spec = GatewaySpec::new(&[("kong.yaml", deck.as_str())])
            .settings(&format!(
                "tls_trusted_ca: {}\nupstream_resolve:\n  \"api.githubcopilot.com:443\": \"{}\"\n{settings}",
                ca_path.display(),
                server.addr
            ))
            .env("DECK_GITHUB_PAT", GITHUB_PAT);
        let gateway = GatewayProcess::start(dir.path(), spec);
        McpBed { dir, ca, server, gateway }
    }

    pub fn url(&self) -> String {
        self.gateway.url("/mcp/github")
    }
}
