//! Reading Prometheus text exposition in tests.

/// The value of the sample `name{labels...}` whose labels include all of `want`.
pub fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (labels, v) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        if want.iter().all(|(k, v)| labels.split(',').any(|pair| pair == format!("{k}=\"{v}\""))) {
            let x: f64 = v.trim().parse().ok()?;
            total = Some(total.unwrap_or(0.0) + x);
        }
    }
    total
}

/// How many series (sample lines) the exposition has, all families together.
pub fn series(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).count()
}

/// Every distinct value of `label` among samples of `name`.
pub fn label_values(text: &str, name: &str, label: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| {
            let inner = l.split_once('{')?.1.split_once('}')?.0;
            inner
                .split(',')
                .find_map(|p| p.strip_prefix(&format!("{label}=\"")).map(|v| v.trim_end_matches('"').to_string()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
