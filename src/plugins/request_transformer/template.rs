//! request-transformer's value templates. Kong renders `$(...)` with Lua (penlight templates,
//! and only with `untrusted_lua` on); aigate runs no Lua, so it accepts the forms Kong's docs
//! show for reading the request — `$(headers.name)`, `$(headers["x-name"])`,
//! `$(query_params.name)`, `$(query_params["name"])`, each optionally followed by
//! `or <another> or "literal"` — and refuses any other expression at load time.

use pingora_http::RequestHeader;

use crate::core::query;

/// One piece of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// The first of these sources that has a value (empty when none does).
    Lookup(Vec<Source>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A request header, lower-cased.
    Header(String),
    Query(String),
    Literal(String),
}

/// A configured value: literal text, or text with `$(...)` lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("$(") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = closing_paren(after).ok_or_else(|| format!("`{text}`: `$(` is not closed"))?;
            parts.push(Part::Lookup(parse_expression(after[..end].trim())?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Whether the value reads the request.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The value, when it does not read the request.
    pub fn literal(&self) -> Option<String> {
        self.is_literal().then(|| {
            self.parts.iter().filter_map(|p| if let Part::Text(t) = p { Some(t.as_str()) } else { None }).collect()
        })
    }

    /// The value for this request (the client's request as it arrived).
    pub fn render(&self, req: &RequestHeader) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Lookup(sources) => {
                    if let Some(v) = sources.iter().find_map(|s| lookup(s, req)) {
                        out.push_str(&v);
                    }
                }
            }
        }
        out
    }
}

/// The position of the `)` closing an expression, skipping quoted strings.
fn closing_paren(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') if depth == 0 => return Some(i),
            (None, ')') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_expression(expr: &str) -> Result<Vec<Source>, String> {
    let unsupported = || {
        format!(
            "`$({expr})` is not a supported template: aigate runs no Lua; use $(headers.name), \
             $(headers[\"x-name\"]), $(query_params.name) or $(query_params[\"name\"]), optionally \
             followed by `or \"default\"`"
        )
    };
    let mut out = Vec::new();
    for term in expr.split(" or ").map(str::trim) {
        let source = if let Some(s) = quoted(term) {
            Source::Literal(s.to_string())
        } else if let Some(name) = field(term, "headers") {
            Source::Header(name.to_ascii_lowercase())
        } else if let Some(name) = field(term, "query_params") {
            Source::Query(name.to_string())
        } else {
            return Err(unsupported());
        };
        out.push(source);
    }
    if out.is_empty() || matches!(out[0], Source::Literal(_)) {
        return Err(unsupported());
    }
    Ok(out)
}

fn quoted(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('"').and_then(|r| r.strip_suffix('"'));
    let inner = inner.or_else(|| s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))?;
    (!inner.contains(['"', '\'', '\\'])).then_some(inner)
}

/// `table.name` or `table["name"]` / `table['name']`.
fn field<'a>(term: &'a str, table: &str) -> Option<&'a str> {
    let rest = term.strip_prefix(table)?;
    let name = if let Some(dotted) = rest.strip_prefix('.') {
        dotted.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_').then_some(dotted)?
    } else {
        quoted(rest.strip_prefix('[')?.strip_suffix(']')?)?
    };
    (!name.is_empty()).then_some(name)
}

fn lookup(source: &Source, req: &RequestHeader) -> Option<String> {
    match source {
        Source::Literal(s) => Some(s.clone()),
        Source::Header(name) => {
            // Kong reads `headers.x_name` as `x-name` too (ngx's underscore folding).
            let v = req.headers.get(name.as_str()).or_else(|| req.headers.get(name.replace('_', "-").as_str()))?;
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (!v.is_empty()).then_some(v)
        }
        Source::Query(name) => {
            let q = req.uri.query()?;
            let v = query::values(q.as_bytes(), name).next()?;
            let v = String::from_utf8_lossy(&v).into_owned();
            (!v.is_empty()).then_some(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/x?user=bo&empty=", None).unwrap();
        r.insert_header("x-tenant", "acme").unwrap();
        r
    }

    #[test]
    fn renders_headers_query_and_defaults() {
        let t = |s: &str| Template::parse(s).unwrap().render(&req());
        assert_eq!(t("plain"), "plain");
        assert_eq!(t("Bearer $(headers.x_tenant)"), "Bearer acme");
        assert_eq!(t("$(headers[\"X-Tenant\"])-$(query_params.user)"), "acme-bo");
        assert_eq!(t("$(query_params['missing'] or headers.nope or \"anon\")"), "anon");
        assert_eq!(t("$(query_params.empty or 'dflt')"), "dflt");
        assert_eq!(t("[$(headers.absent)]"), "[]");
        assert!(Template::parse("literal").unwrap().is_literal());
    }

    #[test]
    fn lua_is_refused() {
        for bad in [
            "$(os.getenv('X'))",
            "$((function() return 1 end)())",
            "$(uri_captures[1])",
            "$(shared.x)",
            "$(headers.x",
            "$(\"only literal\")",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
