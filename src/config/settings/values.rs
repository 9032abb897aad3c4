//! How each kind of setting is read and what range it must be in. An error reads
//! `what is wrong (fix: how)`; [`problem`] turns it into a [`Problem`] naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::AccessLogTarget;
use crate::core::net::IpBlocks;
use crate::core::problems::Problem;
use crate::core::Secret;

/// Pingora's HTTP/1 parser refuses heads over this many bytes (with an empty 400).
const PARSER_MAX_HEAD: usize = 1_048_575;
/// ... and heads with more header fields than this.
const PARSER_MAX_HEADERS: usize = 256;

/// The settings text as a mapping (empty text is an empty one), or (line, what, fix).
pub(super) fn mapping(text: &str) -> Result<serde_yaml::Mapping, (Option<usize>, String, &'static str)> {
    if text.trim().is_empty() {
        return Ok(serde_yaml::Mapping::new());
    }
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(serde_yaml::Value::Mapping(m)) => Ok(m),
        Ok(serde_yaml::Value::Null) => Ok(serde_yaml::Mapping::new()),
        Ok(_) => Err((
            None,
            "the settings file must be a YAML mapping of `key: value`".into(),
            "see the configuration reference in README.md",
        )),
        Err(e) => Err((e.location().map(|l| l.line()), format!("invalid YAML: {e}"), "fix the YAML syntax")),
    }
}

/// A problem with `key`, from a reading error (`what (fix: how)`).
pub(super) fn problem(file: &Path, key: &str, message: &str) -> Problem {
    let (what, fix) = match message.strip_suffix(')').and_then(|m| m.split_once(" (fix: ")) {
        Some((what, fix)) => (what, fix),
        None => (message, "see the configuration reference in README.md for the accepted keys and values"),
    };
    let what = if what.contains(key) { what.to_string() } else { format!("{key}: {what}") };
    Problem::new(file, None, what, fix)
}

/// The field names of a struct that derives `Deserialize`: the keys it reads, taken from the
/// derive itself so no list is written twice.
pub(super) fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Names<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("names taken"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(Names(&mut names));
    names
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    // kong.conf allows flags after the address ("0.0.0.0:8000 reuseport"); none are supported.
    let mut parts = s.split_whitespace();
    let addr = parts.next().unwrap_or("");
    if let Some(flag) = parts.next() {
        return Err(format!("`{s}`: the listen flag `{flag}` is not supported"));
    }
    addr.parse::<SocketAddr>().map_err(|_| format!("`{addr}` is not an ip:port address"))
}

/// `ip:port`, a list of them, or a comma-separated string.
pub(super) fn listen_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let (ok, bad): (Vec<_>, Vec<_>) =
        OneOrMany::deserialize(d)?.into_vec().iter().map(|l| parse_listen(l)).partition(Result::is_ok);
    if !bad.is_empty() {
        let bad: Vec<String> = bad.into_iter().filter_map(Result::err).collect();
        return Err(de::Error::custom(format!("{} (fix: write host:port, for example 0.0.0.0:8000)", bad.join("; "))));
    }
    if ok.is_empty() {
        return Err(de::Error::custom("proxy_listen is empty (fix: give at least one host:port)"));
    }
    Ok(ok.into_iter().filter_map(Result::ok).collect())
}

/// `ip:port` or `off`.
pub(super) fn listen_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim() == "off" {
        return Ok(None);
    }
    parse_listen(&s)
        .map(Some)
        .map_err(|e| de::Error::custom(format!("{e} (fix: write host:port (for example 127.0.0.1:8100) or off)")))
}

/// One path or a list (or a comma-separated string).
pub(super) fn path_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    Ok(OneOrMany::deserialize(d)?.into_vec().into_iter().map(PathBuf::from).collect())
}

/// Host names (or IP addresses) as they appear in URLs: one or a list, none empty, no
/// scheme, port or path.
pub(super) fn host_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let hosts = OneOrMany::deserialize(d)?.into_vec();
    for h in &hosts {
        let bracketed = h.starts_with('[') && h.ends_with(']') && h.len() > 2;
        let plain = (!h.is_empty() && !h.contains(['/', ':', ' ', '@', '[', ']'])) || bracketed;
        if !plain {
            return Err(de::Error::custom(format!(
                "`{h}` is not a host name (fix: write the host alone, e.g. 127.0.0.1 or idp.test)"
            )));
        }
    }
    Ok(hosts)
}

pub(super) fn threads<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let t = usize::deserialize(d)?;
    if t == 0 || t > 1024 {
        return Err(de::Error::custom(format!(
            "threads: {t} is out of range (fix: use a number from 1 to 1024, or leave it unset for one per CPU)"
        )));
    }
    Ok(t)
}

pub(super) fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

pub(super) fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

pub(super) fn seconds_at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(|s| Duration::from_secs(s.max(1)))
}

pub(super) fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    usize::deserialize(d).map(|n| n.max(1))
}

/// Milliseconds, more than 0, rounded up to whole seconds (Pingora's timer is in seconds).
pub(super) fn header_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match u64::deserialize(d)? {
        0 => Err(de::Error::custom(
            "client_header_timeout must be above 0 (fix: use milliseconds such as 60000 (rounded up to whole seconds))",
        )),
        n => Ok(Duration::from_secs(n.div_ceil(1000))),
    }
}

pub(super) fn max_fails<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(de::Error::custom("llm_target_max_fails must be at least 1 (fix: use a small number such as 3)")),
        n => Ok(n),
    }
}

pub(super) fn header_count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if !(1..=PARSER_MAX_HEADERS).contains(&n) {
        return Err(de::Error::custom(format!(
            "max_request_headers must be between 1 and {PARSER_MAX_HEADERS} (fix: use a count such as 100 (more are \
             refused by the HTTP parser itself))"
        )));
    }
    Ok(n)
}

pub(super) fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];
    let level = String::deserialize(d)?;
    let l = level.trim().to_ascii_lowercase();
    if LEVELS.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(de::Error::custom(format!(
            "log_level: `{level}` is not a level (fix: use one of error, warn, info, debug, trace, off)"
        )))
    }
}

/// `off`, `stdout`, or a file path.
pub(super) fn access_log<'de, D: Deserializer<'de>>(d: D) -> Result<AccessLogTarget, D::Error> {
    let log = String::deserialize(d)?;
    Ok(match log.trim() {
        "off" | "" => AccessLogTarget::Off,
        "stdout" | "-" | "/dev/stdout" => AccessLogTarget::Stdout,
        p => AccessLogTarget::File(PathBuf::from(p)),
    })
}

/// A size in bytes: a number, or a string with a `k`/`m`/`g` suffix (`8m`, `512k`), as in
/// kong.conf.
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::Number(n) => {
            n.as_u64().ok_or_else(|| de::Error::custom(format!("expected a positive whole number of bytes, got {n}")))
        }
        serde_yaml::Value::String(s) => parse_byte_size(&s).map_err(de::Error::custom),
        other => Err(de::Error::custom(format!("expected a size such as 8m or 1048576, got {other:?}"))),
    }
}

pub(super) fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'k') => (&t[..t.len() - 1], 1024),
        Some(b'm') => (&t[..t.len() - 1], 1024 * 1024),
        Some(b'g') => (&t[..t.len() - 1], 1024 * 1024 * 1024),
        _ => (t.as_str(), 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size; write bytes (1048576) or a number with k, m or g (8m)"))
}

pub(super) fn size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    byte_size(d).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

pub(super) fn size_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    byte_size(d)
}

/// Addresses and CIDR blocks: a list, or a comma-separated string as in kong.conf.
pub(super) fn trusted_ips<'de, D: Deserializer<'de>>(d: D) -> Result<IpBlocks, D::Error> {
    let entries = OneOrMany::deserialize(d)?.into_vec();
    IpBlocks::parse(entries.iter().map(String::as_str)).map_err(|bad| {
        de::Error::custom(format!(
            "trusted_ips: {} (fix: list addresses or CIDR blocks such as 10.0.0.0/8; 0.0.0.0/0 and ::/0 trust everyone)",
            bad.join("; ")
        ))
    })
}

pub(super) fn body_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match byte_size(d)? {
        0 => Err(de::Error::custom("max_request_body_size must be above 0 (fix: use a size such as 8m)")),
        n => Ok(n),
    }
}

pub(super) fn read_buffer_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    buffer_size(
        d,
        "client_read_buffer_size must be at most 1m (fix: use a size such as 16k (0 reads straight from the socket))",
    )
}

pub(super) fn write_buffer_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    buffer_size(
        d,
        "client_write_buffer_size must be at most 1m (fix: use a size such as 4k (0 writes straight to the socket))",
    )
}

/// A connection buffer's size: at most 1 MiB (one is kept per client connection).
fn buffer_size<'de, D: Deserializer<'de>>(d: D, too_large: &str) -> Result<usize, D::Error> {
    match usize::try_from(byte_size(d)?) {
        Ok(n) if n <= 1024 * 1024 => Ok(n),
        _ => Err(de::Error::custom(too_large)),
    }
}

pub(super) fn header_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match usize::try_from(byte_size(d)?) {
        Ok(n) if (1024..=PARSER_MAX_HEAD).contains(&n) => Ok(n),
        _ => Err(de::Error::custom(
            "max_request_header_size must be between 1k and 1023k (fix: use a size such as 32k (larger heads are \
             refused by the HTTP parser itself))",
        )),
    }
}

/// `cluster_secret`: at least 32 bytes, so the MCP session tags it keys cannot be guessed.
pub(super) fn cluster_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() < 32 {
        return Err(de::Error::custom(
            "cluster_secret is shorter than 32 bytes (fix: use a random value, e.g. `openssl rand -hex 32`)",
        ));
    }
    Ok(Some(Secret::new(s)))
}

/// A secret of at least 16 characters that a header can carry.
pub(super) fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() < 16 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(de::Error::custom(
            "the token must be at least 16 visible ASCII characters (fix: use a long random value, e.g. openssl rand -hex 24)",
        ));
    }
    Ok(Some(Secret::new(s)))
}
