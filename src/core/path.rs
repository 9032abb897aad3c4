//! Request paths as aigate reads them: normalised once, before routing, so that the path that
//! chose a route and its policies is the path that goes upstream.

/// Normalise a request path before routing, so that what is checked is what is forwarded:
/// percent-encoded unreserved characters are decoded (`%2E` → `.`), `.` and `..` segments are
/// resolved, and runs of `/` are merged. Encoded `/`, `?` and `#` stay encoded. Returns `None` for
/// paths that are not origin-form or that climb above the root.
pub fn normalize_path(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (h, l) = (
                bytes.get(i + 1).copied().and_then(super::query::hex),
                bytes.get(i + 2).copied().and_then(super::query::hex),
            );
            let (Some(h), Some(l)) = (h, l) else {
                return None;
            };
            let c = h << 4 | l;
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                decoded.push(c as char);
            } else {
                decoded.push('%');
                decoded.push(bytes[i + 1].to_ascii_uppercase() as char);
                decoded.push(bytes[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
        } else if b < 0x21 || b == 0x7f {
            return None;
        } else {
            decoded.push(b as char);
            i += 1;
        }
    }
    let trailing_slash = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalize_path("/anything").as_deref(), Some("/anything"));
        assert_eq!(normalize_path("//anything").as_deref(), Some("/anything"));
        assert_eq!(normalize_path("/anything/../admin").as_deref(), Some("/admin"));
        assert_eq!(normalize_path("/anything/%2e%2e/admin").as_deref(), Some("/admin"));
        assert_eq!(normalize_path("/%61nything").as_deref(), Some("/anything"));
        assert_eq!(normalize_path("/anything%2F..%2Fadmin").as_deref(), Some("/anything%2F..%2Fadmin"));
        assert_eq!(normalize_path("/a/./b/").as_deref(), Some("/a/b/"));
        assert_eq!(normalize_path("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(normalize_path("/").as_deref(), Some("/"));
        assert_eq!(normalize_path("/.."), None);
        assert_eq!(normalize_path("/%zz"), None);
        assert_eq!(normalize_path("http://x/anything"), None);
        assert_eq!(normalize_path("*"), None);
    }
}
