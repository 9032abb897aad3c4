//! Line numbers for places in a decK file (`plugins[1].config.key_names` → 14), so that problems
//! found after parsing can still point at a line.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    /// Index every mapping key and sequence item of `text`. A text that does not parse gives an
    /// empty index (the YAML error itself is reported elsewhere, with its own line).
    pub fn build(text: &str) -> LineIndex {
        let mut rx = Receiver::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut rx, false).is_err() {
            return LineIndex::default();
        }
        LineIndex { lines: rx.lines }
    }

    /// The line of `path`, or of its nearest indexed parent.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Receiver {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Receiver {
    /// The path of the value about to start, recording its line; `None` when the event is a key.
    fn value_path(&mut self, line: usize, scalar: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    // This event is a key.
                    let k = scalar.unwrap_or("?").to_string();
                    let full = join_key(path, &k);
                    self.lines.entry(full).or_insert(line);
                    *key = Some(k);
                    None
                }
                Some(k) => Some(join_key(path, &k)),
            },
            Some(Frame::Seq { path, index }) => {
                let full = format!("{path}[{index}]");
                *index += 1;
                self.lines.entry(full.clone()).or_insert(line);
                Some(full)
            }
        }
    }
}

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(s, ..) => {
                self.value_path(line, Some(&s));
            }
            Event::Alias(_) => {
                self.value_path(line, None);
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.value_path(line, None) {
                    self.stack.push(Frame::Map { path, key: None });
                } else {
                    // A complex key: track it so the structure stays balanced.
                    self.stack.push(Frame::Map { path: "?".into(), key: None });
                }
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(line, None).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_places() {
        let text = "_format_version: \"3.0\"\nservices:\n- name: a\n  url: http://x\n  routes:\n  - name: r\n    paths: [/x]\nplugins:\n- name: key-auth\n  config:\n    key_names: [apikey]\n";
        let idx = LineIndex::build(text);
        assert_eq!(idx.line("_format_version"), Some(1));
        assert_eq!(idx.line("services[0]"), Some(3));
        assert_eq!(idx.line("services[0].routes[0]"), Some(6));
        assert_eq!(idx.line("services[0].routes[0].paths"), Some(7));
        assert_eq!(idx.line("plugins[0].config.key_names"), Some(11));
        // Unknown deeper places fall back to the nearest parent.
        assert_eq!(idx.line("plugins[0].config.nope"), Some(10));
    }
}
