//! decK's environment templating: `${{ env "DECK_NAME" }}` is replaced by the variable's value
//! before the YAML is parsed, with decK's rules: the name must start with `DECK_` and an unset
//! variable is an error naming it. The pipes `toBool`, `toInt` and `toFloat` are accepted and
//! check the value's form.

/// A variable substituted into a file: its name and value. Values are secrets until proven
/// otherwise, so the loader removes them from every message it prints.
#[derive(Clone)]
pub struct Substitution {
    pub name: String,
    pub value: String,
}

/// Never prints the value.
impl std::fmt::Debug for Substitution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Substitution").field("name", &self.name).field("value", &"<redacted>").finish()
    }
}

/// A templating error: the 1-based line, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: usize,
    pub what: String,
    pub fix: &'static str,
}

pub struct Rendered {
    pub text: String,
    pub substitutions: Vec<Substitution>,
}

/// The rendered text holds secrets: print only its size.
impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("text_len", &self.text.len())
            .field("substitutions", &self.substitutions)
            .finish()
    }
}

/// Render `${{ ... }}` expressions of `text` with variables from `env`.
pub fn render(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Rendered, Vec<TemplateError>> {
    let mut out = String::with_capacity(text.len());
    let mut subs = Vec::new();
    let mut errors = Vec::new();
    let mut rest = text;
    let mut consumed = 0usize;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let line = line_of(text, consumed + start);
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else {
            errors.push(TemplateError {
                line,
                what: "`${{` is not closed by `}}`".into(),
                fix: "write ${{ env \"DECK_NAME\" }}",
            });
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let expr = after[..end].trim();
        match eval(expr, env) {
            Ok((name, value)) => {
                out.push_str(&value);
                if !value.is_empty() && !subs.iter().any(|s: &Substitution| s.name == name) {
                    subs.push(Substitution { name, value });
                }
            }
            Err((what, fix)) => errors.push(TemplateError { line, what, fix }),
        }
        let skip = start + 3 + end + 2;
        consumed += skip;
        rest = &rest[skip..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(Rendered { text: out, substitutions: subs })
    } else {
        Err(errors)
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

type EvalError = (String, &'static str);

fn eval(expr: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, String), EvalError> {
    const FIX: &str = "write ${{ env \"DECK_NAME\" }}";
    let mut stages = expr.split('|').map(str::trim);
    let call = stages.next().unwrap_or("");
    let Some(arg) = call.strip_prefix("env") else {
        return Err((format!("unsupported template expression `{expr}`"), FIX));
    };
    let arg = arg.trim();
    let name = arg
        .strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .filter(|n| !n.is_empty() && !n.contains('"'))
        .ok_or_else(|| (format!("`env` needs one quoted variable name, got `{arg}`"), FIX))?;
    if !name.starts_with("DECK_") {
        return Err((
            format!("environment variables in the state file must be prefixed with 'DECK_', found: '{name}'"),
            "rename the variable so it starts with DECK_ and export it",
        ));
    }
    let value = env(name).ok_or_else(|| {
        (
            format!("environment variable '{name}' present in state file but not set"),
            "export the variable before starting aigate (for systemd, use EnvironmentFile=)",
        )
    })?;
    for pipe in stages {
        let ok = match pipe {
            "toBool" => matches!(value.as_str(), "true" | "false"),
            "toInt" => value.parse::<i64>().is_ok(),
            "toFloat" => value.parse::<f64>().is_ok(),
            other => {
                return Err((format!("unsupported template function `{other}`"), "use toBool, toInt or toFloat"));
            }
        };
        if !ok {
            return Err((
                format!("environment variable '{name}' cannot be converted by {pipe}"),
                "set the variable to a value of that type",
            ));
        }
    }
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DECK_KEY" => Some("sk-secret".into()),
            "DECK_N" => Some("12".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_records() {
        let r = render("a: Bearer ${{ env \"DECK_KEY\" }}\nb: ${{env \"DECK_N\" | toInt}}\n", &env).unwrap();
        assert_eq!(r.text, "a: Bearer sk-secret\nb: 12\n");
        assert_eq!(r.substitutions.len(), 2);
        assert_eq!(r.substitutions[0].name, "DECK_KEY");
    }

    #[test]
    fn decks_rules_are_errors_with_lines() {
        let errs = render("x: 1\na: ${{ env \"OPENAI_KEY\" }}\nb: ${{ env \"DECK_UNSET\" }}\n", &env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].what.contains("must be prefixed with 'DECK_'"));
        assert_eq!(errs[1].line, 3);
        assert!(errs[1].what.contains("'DECK_UNSET' present in state file but not set"));
    }

    #[test]
    fn bad_expressions() {
        assert!(render("a: ${{ env DECK_KEY }}", &env).is_err());
        assert!(render("a: ${{ env \"DECK_KEY\"", &env).is_err());
        assert!(render("a: ${{ env \"DECK_KEY\" | toInt }}", &env).is_err());
        assert!(render("a: ${{ lookup \"DECK_KEY\" }}", &env).is_err());
    }

    #[test]
    fn text_without_templates_is_unchanged() {
        let r = render("plain: text $ {{ }}\n", &env).unwrap();
        assert_eq!(r.text, "plain: text $ {{ }}\n");
    }
}
