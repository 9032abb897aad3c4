//! rate-limiting (Kong OSS): at most N requests per second, minute, hour, day, month and/or
//! year, per consumer (or credential, IP, service, header value, path), counted in this
//! process (`policy: local`) or across gateways in Redis (`policy: redis`). Windows are
//! calendar periods in UTC, as Kong's; a refused request is not counted. Kong's answer (429
//! `API rate limit exceeded`) and headers (`RateLimit-*`, `X-RateLimit-*-<Period>`,
//! `Retry-After`).

mod schema;

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use smallvec::SmallVec;

pub use schema::RateLimitingSchema;

use super::limits::redis_record::OssRedisSchema;
use super::limits::{
    configured_number, error_code, HeaderBuilder, IdKind, Identifier, Refusal, SubjectCache, Verdict, Who,
};
use super::{CompileContext, ConfigIssue};
use crate::core::ConsumerId;
use crate::store::ratelimit::{CounterId, Counters, Period, Slot, Subject, SyncMode, Unavailable, Used};
use crate::telemetry::metrics::LimitMetrics;

pub const NAME: &str = "rate-limiting";

pub struct RateLimiting {
    /// The configured periods, shortest first, with their limits.
    pub limits: Vec<(Period, f64)>,
    /// Each limit as its headers' value, built once.
    limit_values: Vec<HeaderValue>,
    pub identifier: Identifier,
    /// Consumers' subjects, by consumer.
    subjects: SubjectCache,
    /// Decisions and remaining requests per consumer (filled by the proxy as it counts them).
    pub metrics: LimitMetrics,
    counters: Arc<dyn Counters>,
    /// The plugin instance's counters namespace (its id, or its scope).
    namespace: String,
    pub fault_tolerant: bool,
    pub hide_client_headers: bool,
    pub error_code: u16,
    pub error_message: String,
}

/// Kong's `X-RateLimit-Limit-<Period>` and `X-RateLimit-Remaining-<Period>`.
fn period_headers(p: Period) -> (HeaderName, HeaderName) {
    let (limit, remaining) = match p {
        Period::Second => ("x-ratelimit-limit-second", "x-ratelimit-remaining-second"),
        Period::Minute => ("x-ratelimit-limit-minute", "x-ratelimit-remaining-minute"),
        Period::Hour => ("x-ratelimit-limit-hour", "x-ratelimit-remaining-hour"),
        Period::Day => ("x-ratelimit-limit-day", "x-ratelimit-remaining-day"),
        Period::Month => ("x-ratelimit-limit-month", "x-ratelimit-remaining-month"),
        Period::Year => ("x-ratelimit-limit-year", "x-ratelimit-remaining-year"),
    };
    (HeaderName::from_static(limit), HeaderName::from_static(remaining))
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// A deprecated flat field and its `redis.*` twin: Kong refuses both set to different values.
fn alias<T: PartialEq + Clone>(issues: &mut Vec<ConfigIssue>, flat: &Option<T>, nested: &mut Option<T>, name: &str) {
    match (flat, nested.as_ref()) {
        (Some(f), Some(n)) if f != n => issues.push(ConfigIssue::new(
            format!("redis_{name}"),
            format!("redis_{name} (deprecated) and redis.{name} differ"),
            format!("keep only redis.{name}"),
        )),
        (Some(f), None) => *nested = Some(f.clone()),
        _ => {}
    }
}

impl RateLimiting {
    pub fn compile(s: RateLimitingSchema, cx: &CompileContext<'_>) -> Result<RateLimiting, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let configured = [s.second, s.minute, s.hour, s.day, s.month, s.year];
        let mut limits = Vec::new();
        for (p, v) in Period::ALL.iter().zip(configured) {
            match v {
                Some(v) if v > 0.0 && v.is_finite() => limits.push((*p, v)),
                Some(v) => issues.push(ConfigIssue::new(
                    p.name(),
                    format!("{} must be greater than 0 (got {v})", p.name()),
                    "give the number of requests allowed in the period",
                )),
                None => {}
            }
        }
        if limits.is_empty() && issues.is_empty() {
            issues.push(ConfigIssue::new(
                "",
                "at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'",
                "set a limit, such as minute: 60",
            ));
        }
        // Kong: a longer period may not allow fewer requests than a shorter one.
        for (i, (lower, lv)) in limits.iter().enumerate() {
            for (upper, uv) in &limits[i + 1..] {
                if uv < lv {
                    issues.push(ConfigIssue::new(
                        upper.name(),
                        format!(
                            "The limit for {}({uv:.1}) cannot be lower than the limit for {}({lv:.1})",
                            upper.name(),
                            lower.name()
                        ),
                        "make longer periods allow at least as many requests as shorter ones",
                    ));
                }
            }
        }
        let identifier = Identifier::compile(
            "limit_by",
            s.limit_by.as_deref(),
            s.header_name.as_deref(),
            s.path.as_deref(),
            &mut issues,
        );
        let mut redis = s.redis.clone().unwrap_or_default();
        alias(&mut issues, &s.redis_host, &mut redis.host, "host");
        alias(&mut issues, &s.redis_port, &mut redis.port, "port");
        alias(&mut issues, &s.redis_password, &mut redis.password, "password");
        alias(&mut issues, &s.redis_username, &mut redis.username, "username");
        alias(&mut issues, &s.redis_ssl, &mut redis.ssl, "ssl");
        alias(&mut issues, &s.redis_ssl_verify, &mut redis.ssl_verify, "ssl_verify");
        alias(&mut issues, &s.redis_server_name, &mut redis.server_name, "server_name");
        alias(&mut issues, &s.redis_timeout, &mut redis.timeout, "timeout");
        alias(&mut issues, &s.redis_database, &mut redis.database, "database");
        let sync_rate = s.sync_rate.unwrap_or(-1.0);
        let counters = match s.policy.as_deref().unwrap_or("local") {
            "local" | "" => {
                if sync_rate != -1.0 {
                    issues.push(ConfigIssue::new(
                        "sync_rate",
                        "sync_rate can only be used with the redis policy",
                        "remove sync_rate or set it to -1",
                    ));
                }
                Some(cx.counters.local())
            }
            "redis" => counters_on_redis(&redis, sync_rate, cx, &mut issues),
            "cluster" => {
                issues.push(ConfigIssue::new(
                    "policy",
                    "policy cluster keeps counters in Kong's database, which aigate does not have",
                    "use policy: redis to share limits between gateways, or local",
                ));
                None
            }
            other => {
                issues.push(ConfigIssue::new(
                    "policy",
                    format!("`{other}` is not one of local, redis"),
                    "use local or redis",
                ));
                None
            }
        };
        let error_code = error_code(s.error_code, &mut issues);
        match counters {
            Some(counters) if issues.is_empty() => Ok(RateLimiting {
                limit_values: limits.iter().map(|(_, v)| configured_number(*v)).collect(),
                limits,
                identifier,
                subjects: SubjectCache::new(cx.consumers.list.len()),
                metrics: LimitMetrics::new(cx.consumers.list.len()),
                counters,
                namespace: cx.instance.to_string(),
                fault_tolerant: s.fault_tolerant.unwrap_or(true),
                hide_client_headers: s.hide_client_headers.unwrap_or(false),
                error_code,
                error_message: s.error_message.unwrap_or_else(|| "API rate limit exceeded".into()),
            }),
            _ => Err(issues),
        }
    }

    /// The windows' names, in the order of [`RateLimiting::remaining_now`]; none when the
    /// plugin does not count by consumer (a consumer has no count of its own to show then).
    pub fn window_labels(&self) -> Vec<&'static str> {
        if self.identifier != Identifier::Consumer {
            return Vec::new();
        }
        self.limits.iter().map(|(p, _)| p.name()).collect()
    }

    fn subject(&self, kind: IdKind, id: &str, consumer: Option<ConsumerId>) -> Subject {
        let digest = || Subject::of(&[self.namespace.as_bytes(), kind.tag(), id.as_bytes()]);
        match consumer {
            Some(c) if kind == IdKind::Consumer => self.subjects.get(c.index(), digest),
            _ => digest(),
        }
    }

    fn slots(&self, subject: Subject, now_ms: i64) -> SmallVec<[Slot; 6]> {
        self.limits
            .iter()
            .map(|(p, limit)| Slot {
                current: CounterId::fixed(subject, p.window(now_ms)),
                previous: None,
                limit: *limit,
            })
            .collect()
    }

    /// Count the request against every period; refuse it (uncounted) when one is used up.
    pub async fn admit(&self, who: &Who<'_>, now_ms: i64) -> Result<Verdict, Unavailable> {
        let (kind, id) = self.identifier.of(who);
        let slots = self.slots(self.subject(kind, &id, who.consumer_index), now_ms);
        let checked = match self.counters.admit_now(&slots, 1, now_ms, self.fault_tolerant) {
            Some(checked) => checked?,
            None => self.counters.admit(&slots, 1, now_ms, self.fault_tolerant).await?,
        };
        let mut v = self.verdict(&checked.used, checked.refused, now_ms);
        v.degraded = checked.degraded;
        Ok(v)
    }

    /// What a consumer (its index and id) has left in each window now, as this process sees
    /// it, in the order of [`RateLimiting::window_labels`] (`None` unless counted by consumer).
    pub fn remaining_now(&self, consumer: ConsumerId, id: &str, now_ms: i64) -> Option<SmallVec<[f64; 8]>> {
        if self.identifier != Identifier::Consumer {
            return None;
        }
        let slots = self.slots(self.subject(IdKind::Consumer, id, Some(consumer)), now_ms);
        let used = self.counters.peek(&slots, now_ms);
        Some(self.limits.iter().zip(&used).map(|((_, limit), u)| (limit - u.current as f64).max(0.0)).collect())
    }

    /// Kong's headers and answer from the counts before this request.
    fn verdict(&self, used: &[Used], refused: Option<usize>, now_ms: i64) -> Verdict {
        let mut v = Verdict::default();
        let mut headers = if self.hide_client_headers {
            HeaderBuilder::default()
        } else {
            HeaderBuilder::with_capacity(2 * self.limits.len() + 4)
        };
        // The RateLimit-* window: the least remaining; on a tie, the longer period.
        let mut chosen: Option<(Period, usize, f64)> = None;
        for (i, ((p, limit), u)) in self.limits.iter().zip(used).enumerate() {
            let remaining = limit - u.current as f64;
            // This request counts, unless another period refused it.
            let counted = refused.is_none() || refused == Some(i);
            let shown = (if counted { remaining - 1.0 } else { remaining }).max(0.0);
            if chosen.is_none_or(|(_, _, r)| shown <= r) {
                chosen = Some((*p, i, shown));
            }
            if !self.hide_client_headers {
                let (lh, rh) = period_headers(*p);
                headers.value(lh, self.limit_values[i].clone());
                headers.number(rh, shown);
            }
        }
        let reset = chosen.map_or(1, |(p, _, _)| p.window(now_ms).reset_secs(now_ms));
        if let (false, Some((_, i, shown))) = (self.hide_client_headers, chosen) {
            headers.value(RATELIMIT_LIMIT, self.limit_values[i].clone());
            headers.number(RATELIMIT_REMAINING, shown);
            headers.seconds(RATELIMIT_RESET, reset);
        }
        if let Some(i) = refused {
            if !self.hide_client_headers {
                headers.seconds(http::header::RETRY_AFTER, reset);
            }
            v.refused = Some(Refusal {
                status: self.error_code,
                message: self.error_message.clone(),
                with_request_id: true,
                plugin: NAME,
                window: self.limits.get(i).map_or("", |(p, _)| p.name()).to_string(),
            });
        }
        v.headers = headers.finish();
        v
    }
}

fn counters_on_redis(
    redis: &OssRedisSchema,
    sync_rate: f64,
    cx: &CompileContext<'_>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Arc<dyn Counters>> {
    let mode = if sync_rate == -1.0 {
        SyncMode::Synchronous
    } else if sync_rate >= 0.02 && sync_rate.is_finite() {
        SyncMode::Periodic(std::time::Duration::from_secs_f64(sync_rate))
    } else {
        issues.push(ConfigIssue::new(
            "sync_rate",
            "sync_rate must be greater than 0.02, or -1 to disable",
            "use -1 (synchronous) or a number of seconds such as 1",
        ));
        SyncMode::Synchronous
    };
    let endpoint = redis.endpoint("redis", cx.trusted_ca, issues)?;
    Some(cx.counters.redis(&endpoint, mode))
}

#[cfg(test)]
mod tests;
