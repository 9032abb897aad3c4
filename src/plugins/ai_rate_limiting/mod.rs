//! ai-rate-limiting-advanced (Kong Enterprise's schema, provider mode): token and cost budgets
//! per consumer (or credential, IP, service, header value, path) and LLM provider, in sliding
//! or fixed windows of any number of seconds. A request is admitted while every budget of every
//! configured provider is under its limit; what it used — the provider's reported usage, by
//! `tokens_count_strategy`, or its cost from the target's `input_cost`/`output_cost` — is
//! charged to its provider's budgets when the answer completes. Kong's `X-AI-RateLimit-*`
//! headers and 429 answer.

mod schema;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use smallvec::SmallVec;

pub use schema::AiRateLimitingSchema;

use super::limits::{
    configured_header_name, configured_number, error_code, interned, HeaderBuilder, IdKind, Identifier, Refusal,
    SubjectCache, Verdict, Who,
};
use super::{unsupported_unless_default, CompileContext, ConfigIssue};
use crate::ai::response::Usage;
use crate::core::ConsumerId;
use crate::store::ratelimit::window::{epoch_window, sliding_reset_secs, sliding_weight};
use crate::store::ratelimit::{CounterId, Counters, Slot, Subject, SyncMode, Unavailable, Used};
use crate::telemetry::metrics::LimitMetrics;

pub const NAME: &str = "ai-rate-limiting-advanced";

/// Cost budgets are counted in millionths of the configured unit, exactly.
const MICRO: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    Sliding,
    Fixed,
}

/// What a request is charged (`tokens_count_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountStrategy {
    TotalTokens,
    PromptTokens,
    CompletionTokens,
    Cost,
}

/// One budget of a provider: `limit` per `size_secs`.
pub struct WindowLimit {
    pub size_secs: u64,
    pub limit: f64,
    /// `minute-openai`: the suffix of its headers, and its metric and log label.
    pub label: Bytes,
    headers: [HeaderName; 4],
    /// The limit as its header's value, built once.
    limit_value: HeaderValue,
}

pub struct ProviderLimits {
    pub provider: String,
    pub windows: Vec<WindowLimit>,
}

pub struct AiRateLimiting {
    pub providers: Vec<ProviderLimits>,
    pub window_type: WindowType,
    pub strategy: CountStrategy,
    pub identifier: Identifier,
    counters: Arc<dyn Counters>,
    namespace: String,
    /// Consumers' subjects, by provider then consumer.
    subjects: SubjectCache,
    consumer_count: usize,
    /// Decisions and remaining budgets per consumer (filled by the proxy as it counts them).
    pub metrics: LimitMetrics,
    pub hide_client_headers: bool,
    retry_after_jitter_max: u64,
    pub error_code: u16,
    error_message: String,
    error_hide_providers: bool,
}

/// Whom an admitted request is charged to when its answer completes: its subject per
/// provider, in the order of `llm_providers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    subjects: SmallVec<[Subject; 2]>,
}

const PROVIDERS: &[&str] =
    &["anthropic", "azure", "bedrock", "cohere", "gemini", "huggingface", "llama2", "mistral", "openai"];

/// Kong's name of a window size: `minute` for 60, the number of seconds otherwise.
fn window_label(size: u64) -> String {
    match size {
        1 => "second".into(),
        60 => "minute".into(),
        3600 => "hour".into(),
        86_400 => "day".into(),
        2_592_000 => "month".into(),
        31_536_000 => "year".into(),
        n => n.to_string(),
    }
}

impl AiRateLimiting {
    pub fn compile(s: AiRateLimitingSchema, cx: &CompileContext<'_>) -> Result<AiRateLimiting, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        unsupported_unless_default(&mut issues, "policies", &s.policies, |v| {
            v.is_null() || v.as_sequence().is_some_and(|s| s.is_empty())
        });
        for (name, v) in [
            ("request_prompt_count_function", &s.request_prompt_count_function),
            ("custom_cost_count_function", &s.custom_cost_count_function),
        ] {
            if v.as_deref().is_some_and(|f| !f.is_empty()) {
                issues.push(ConfigIssue::new(
                    name,
                    format!("`{name}` (Lua code) is not supported by aigate"),
                    "remove it; count tokens or cost with tokens_count_strategy",
                ));
            }
        }
        // Usage is read in the format the provider answered in, whatever this says (Kong 3.13
        // added `anthropic`).
        if let Some(f) = s.llm_format.as_deref().filter(|f| !matches!(*f, "openai" | "anthropic")) {
            issues.push(ConfigIssue::new(
                "llm_format",
                format!("llm_format `{f}` is not supported"),
                "use openai or anthropic",
            ));
        }
        let providers = compile_providers(s.llm_providers.as_deref().unwrap_or_default(), &mut issues);
        let window_type = match s.window_type.as_deref().unwrap_or("sliding") {
            "sliding" => WindowType::Sliding,
            "fixed" => WindowType::Fixed,
            other => {
                issues.push(ConfigIssue::new(
                    "window_type",
                    format!("`{other}` is not one of sliding, fixed"),
                    "use sliding or fixed",
                ));
                WindowType::Sliding
            }
        };
        let strategy = match s.tokens_count_strategy.as_deref().unwrap_or("total_tokens") {
            "total_tokens" => CountStrategy::TotalTokens,
            "prompt_tokens" => CountStrategy::PromptTokens,
            "completion_tokens" => CountStrategy::CompletionTokens,
            "cost" => CountStrategy::Cost,
            other => {
                issues.push(ConfigIssue::new(
                    "tokens_count_strategy",
                    format!("`{other}` is not one of total_tokens, prompt_tokens, completion_tokens, cost"),
                    "use total_tokens, prompt_tokens, completion_tokens or cost",
                ));
                CountStrategy::TotalTokens
            }
        };
        let identifier = Identifier::compile(
            "identifier",
            s.identifier.as_deref(),
            s.header_name.as_deref(),
            s.path.as_deref(),
            &mut issues,
        );
        let counters = compile_strategy(&s, cx, &mut issues);
        let jitter = s.retry_after_jitter_max.unwrap_or(0.0);
        if !(jitter >= 0.0 && jitter.is_finite()) {
            issues.push(ConfigIssue::new(
                "retry_after_jitter_max",
                "Non-negative retry_after_jitter_max value is expected",
                "use 0 or a number of seconds",
            ));
        }
        let error_code = error_code(s.error_code, &mut issues);
        match counters {
            Some(counters) if issues.is_empty() => Ok(AiRateLimiting {
                subjects: SubjectCache::new(providers.len() * cx.consumers.list.len()),
                consumer_count: cx.consumers.list.len(),
                metrics: LimitMetrics::new(cx.consumers.list.len()),
                providers,
                window_type,
                strategy,
                identifier,
                counters,
                namespace: s.namespace.filter(|n| !n.is_empty()).unwrap_or_else(|| cx.instance.to_string()),
                hide_client_headers: s.hide_client_headers.unwrap_or(false),
                retry_after_jitter_max: jitter as u64,
                error_code,
                error_message: s
                    .error_message
                    .unwrap_or_else(|| "AI token rate limit exceeded for provider(s): ".into()),
                error_hide_providers: s.error_hide_providers.unwrap_or(false),
            }),
            _ => Err(issues),
        }
    }

    /// Budgets are counted in tokens, or in micro-units of cost.
    fn scale(&self) -> f64 {
        if self.strategy == CountStrategy::Cost {
            MICRO
        } else {
            1.0
        }
    }

    /// The windows' names (`minute-openai`), in the order of [`AiRateLimiting::remaining_now`];
    /// none when the plugin does not count by consumer.
    pub fn window_labels(&self) -> Vec<&str> {
        if self.identifier != Identifier::Consumer {
            return Vec::new();
        }
        self.providers
            .iter()
            .flat_map(|p| p.windows.iter().map(|w| std::str::from_utf8(&w.label).unwrap_or("")))
            .collect()
    }

    /// What a consumer (its index and id) has left in each budget now, as this process sees
    /// it, in the order of [`AiRateLimiting::window_labels`] (`None` unless counted by
    /// consumer).
    pub fn remaining_now(&self, consumer: ConsumerId, id: &str, now_ms: i64) -> Option<SmallVec<[f64; 8]>> {
        if self.identifier != Identifier::Consumer {
            return None;
        }
        let who = Who {
            consumer: Some(id),
            consumer_index: Some(consumer),
            credential: None,
            client_ip: None,
            service: "",
            headers: &http::HeaderMap::new(),
            path: "",
        };
        let slots = self.slots(&self.ticket(&who), now_ms);
        let used = self.counters.peek(&slots, now_ms);
        let windows = self.providers.iter().flat_map(|p| p.windows.iter());
        Some(windows.zip(&slots).zip(&used).map(|((w, slot), u)| self.shown(w, u.estimate(slot))).collect())
    }

    /// A budget's remaining as the headers and metrics show it (whole tokens; cost as is).
    fn shown(&self, w: &WindowLimit, used: f64) -> f64 {
        let remaining = (w.limit - used / self.scale()).max(0.0);
        if self.strategy == CountStrategy::Cost {
            remaining
        } else {
            remaining.floor()
        }
    }

    /// Whom the request counts as, under each provider.
    fn ticket(&self, who: &Who<'_>) -> Ticket {
        let (kind, id) = self.identifier.of(who);
        let subjects = self.providers.iter().enumerate().map(|(i, p)| {
            let digest = || Subject::of(&[self.namespace.as_bytes(), p.provider.as_bytes(), kind.tag(), id.as_bytes()]);
            match who.consumer_index {
                Some(c) if kind == IdKind::Consumer && c.index() < self.consumer_count => {
                    self.subjects.get(i * self.consumer_count + c.index(), digest)
                }
                _ => digest(),
            }
        });
        Ticket { subjects: subjects.collect() }
    }

    fn counter(&self, subject: Subject, size_secs: u64, now_ms: i64) -> CounterId {
        let w = epoch_window(size_secs, now_ms);
        match self.window_type {
            WindowType::Sliding => CounterId::sliding(subject, w),
            WindowType::Fixed => CounterId::fixed(subject, w),
        }
    }

    /// Every budget of every provider, in order.
    fn slots(&self, ticket: &Ticket, now_ms: i64) -> SmallVec<[Slot; 4]> {
        let mut slots = SmallVec::new();
        for (p, subject) in self.providers.iter().zip(&ticket.subjects) {
            let subject = *subject;
            for w in &p.windows {
                let current = self.counter(subject, w.size_secs, now_ms);
                let previous = (self.window_type == WindowType::Sliding).then(|| {
                    let prev = CounterId::sliding(subject, current.window.previous());
                    (prev, sliding_weight(&current.window, now_ms))
                });
                slots.push(Slot { current, previous, limit: w.limit * self.scale() });
            }
        }
        slots
    }

    /// Admit the request while every budget is under its limit (nothing is added now: what
    /// it uses is charged when its answer completes).
    pub async fn admit(&self, who: &Who<'_>, now_ms: i64) -> Result<(Verdict, Ticket), Unavailable> {
        let ticket = self.ticket(who);
        let slots = self.slots(&ticket, now_ms);
        // Kong falls back to this node's counters when Redis fails: always fault tolerant.
        let checked = match self.counters.admit_now(&slots, 0, now_ms, true) {
            Some(checked) => checked?,
            None => self.counters.admit(&slots, 0, now_ms, true).await?,
        };
        let mut v = self.verdict(&slots, &checked.used, now_ms);
        v.degraded = checked.degraded;
        Ok((v, ticket))
    }

    fn verdict(&self, slots: &[Slot], used: &[Used], now_ms: i64) -> Verdict {
        let mut v = Verdict::default();
        let mut headers = if self.hide_client_headers {
            HeaderBuilder::default()
        } else {
            HeaderBuilder::with_capacity(2 * slots.len())
        };
        let mut denied: Vec<&str> = Vec::new();
        let (mut reset_max, mut retry_max) = (0u64, 0u64);
        let mut first_refused: Option<&WindowLimit> = None;
        let windows = self.providers.iter().flat_map(|p| p.windows.iter().map(move |w| (p, w)));
        for (((p, w), slot), u) in windows.zip(slots).zip(used) {
            let shown = self.shown(w, u.estimate(slot));
            if !self.hide_client_headers {
                headers.value(w.headers[0].clone(), w.limit_value.clone());
                headers.number(w.headers[1].clone(), shown);
            }
            if u.estimate(slot) < slot.limit {
                continue;
            }
            first_refused.get_or_insert(w);
            if !denied.contains(&p.provider.as_str()) {
                denied.push(&p.provider);
            }
            let reset = match slot.previous {
                Some((_, _)) => {
                    sliding_reset_secs(&slot.current.window, now_ms, u.previous as f64, u.current as f64, slot.limit)
                }
                None => slot.current.window.reset_secs(now_ms),
            };
            let retry = reset + self.jitter();
            reset_max = reset_max.max(reset);
            retry_max = retry_max.max(retry);
            if !self.hide_client_headers {
                headers.seconds(w.headers[2].clone(), reset);
                headers.seconds(w.headers[3].clone(), retry);
            }
        }
        if let Some(w) = first_refused {
            // Kong sends these two even with hide_client_headers.
            headers.seconds(HeaderName::from_static("x-ai-ratelimit-reset"), reset_max);
            headers.seconds(HeaderName::from_static("x-ai-ratelimit-retry-after"), retry_max);
            let message = if self.error_hide_providers {
                self.error_message.clone()
            } else {
                format!("{}{}", self.error_message, denied.join(", "))
            };
            v.refused = Some(Refusal {
                status: self.error_code,
                message,
                with_request_id: false,
                plugin: NAME,
                window: String::from_utf8_lossy(&w.label).into_owned(),
            });
        }
        v.headers = headers.finish();
        v
    }

    fn jitter(&self) -> u64 {
        if self.retry_after_jitter_max == 0 {
            return 0;
        }
        let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
        r % (self.retry_after_jitter_max + 1)
    }

    /// What a request used, in the budgets' unit: tokens, or micro-units of cost (the prices
    /// are per million tokens, so tokens × price is the cost in millionths, exactly).
    pub fn amount(&self, usage: &Usage, input_cost: Option<f64>, output_cost: Option<f64>) -> i64 {
        let n = match self.strategy {
            CountStrategy::TotalTokens => usage.total as f64,
            CountStrategy::PromptTokens => usage.input as f64,
            CountStrategy::CompletionTokens => usage.output as f64,
            CountStrategy::Cost => match (input_cost, output_cost) {
                (Some(i), Some(o)) => usage.input as f64 * i + usage.output as f64 * o,
                _ => 0.0,
            },
        };
        n.round().min(i64::MAX as f64) as i64
    }

    /// Charge what a request used to `provider`'s budgets (the windows current now).
    pub fn charge(&self, ticket: &Ticket, provider: &str, amount: i64, now_ms: i64) {
        if amount <= 0 {
            return;
        }
        let Some((p, subject)) = self.providers.iter().zip(&ticket.subjects).find(|(p, _)| p.provider == provider)
        else {
            return;
        };
        let ids: SmallVec<[CounterId; 4]> =
            p.windows.iter().map(|w| self.counter(*subject, w.size_secs, now_ms)).collect();
        self.counters.charge(&ids, amount, now_ms);
    }

    /// Whether this plugin counts cost (the route's targets must then have prices).
    pub fn counts_cost(&self) -> bool {
        self.strategy == CountStrategy::Cost
    }
}

fn compile_providers(list: &[schema::ProviderSchema], issues: &mut Vec<ConfigIssue>) -> Vec<ProviderLimits> {
    if list.is_empty() {
        issues.push(ConfigIssue::new(
            "llm_providers",
            "llm_providers is required",
            "give at least one provider with its limits and window sizes",
        ));
    }
    let mut out: Vec<ProviderLimits> = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let at = format!("llm_providers[{i}]");
        match p.name.as_str() {
            "requestPrompt" | "customCost" => issues.push(ConfigIssue::new(
                format!("{at}.name"),
                format!("provider `{}` needs a Lua function, which aigate does not run", p.name),
                "count tokens or cost of a named provider instead",
            )),
            name if PROVIDERS.contains(&name) => {}
            other => issues.push(ConfigIssue::new(
                format!("{at}.name"),
                format!("`{other}` is not a provider"),
                format!("use one of {}", PROVIDERS.join(", ")),
            )),
        }
        if out.iter().any(|o| o.provider == p.name) {
            issues.push(ConfigIssue::new(
                format!("{at}.name"),
                format!("Provider '{}' is not unique", p.name),
                "list each provider once, with all its windows",
            ));
        }
        let (limits, sizes) = (p.limit.values(), p.window_size.values());
        if limits.len() != sizes.len() || limits.is_empty() {
            issues.push(ConfigIssue::new(
                at.clone(),
                "There must be a matching number of window limits and sizes specified",
                "give as many limits as window sizes",
            ));
            continue;
        }
        let mut windows = Vec::new();
        for (j, (limit, size)) in limits.into_iter().zip(sizes).enumerate() {
            if !(limit > 0.0 && limit.is_finite()) {
                issues.push(ConfigIssue::new(
                    format!("{at}.limit[{j}]"),
                    format!("limit {limit} must be greater than 0"),
                    "give the tokens (or cost) allowed per window",
                ));
            }
            if !(size >= 1.0 && size.fract() == 0.0 && size <= 31_536_000.0 * 10.0) {
                issues.push(ConfigIssue::new(
                    format!("{at}.window_size[{j}]"),
                    format!("window_size {size} is not a whole number of seconds"),
                    "give seconds, such as 60 or 86400",
                ));
                continue;
            }
            let size = size as u64;
            let label = format!("{}-{}", window_label(size), p.name);
            let h = |base: &str| {
                configured_header_name(&format!("X-AI-RateLimit-{base}-{label}"))
                    .unwrap_or(HeaderName::from_static("x-ai-ratelimit"))
            };
            windows.push(WindowLimit {
                size_secs: size,
                limit,
                headers: [h("Limit"), h("Remaining"), h("Reset"), h("Retry-After")],
                limit_value: configured_number(limit),
                label: interned(label),
            });
        }
        out.push(ProviderLimits { provider: p.name.clone(), windows });
    }
    out
}

fn compile_strategy(
    s: &AiRateLimitingSchema,
    cx: &CompileContext<'_>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Arc<dyn Counters>> {
    let sync_rate = s.sync_rate;
    if let Some(r) = sync_rate {
        if (r > 0.0 && r < 0.02) || r < -1.0 || !r.is_finite() || (r < 0.0 && r != -1.0) {
            issues.push(ConfigIssue::new(
                "sync_rate",
                "Config option 'sync_rate' must not be a decimal between 0 and 0.02",
                "use 0 (synchronous), -1 (this node only) or seconds from 0.02",
            ));
            return None;
        }
    }
    match s.strategy.as_deref().unwrap_or("local") {
        "local" => {
            if sync_rate.is_some_and(|r| r > -1.0) {
                issues.push(ConfigIssue::new(
                    "sync_rate",
                    "sync_rate cannot be configured when using a local strategy",
                    "remove sync_rate, or use strategy: redis",
                ));
            }
            Some(cx.counters.local())
        }
        "redis" => {
            let Some(rate) = sync_rate else {
                issues.push(ConfigIssue::new(
                    "sync_rate",
                    "sync_rate is required if not using a local strategy",
                    "use 0 (synchronous), -1 (this node only) or seconds such as 1",
                ));
                return None;
            };
            let endpoint = s.redis.clone().unwrap_or_default().endpoint("redis", cx.trusted_ca, issues)?;
            Some(if rate == -1.0 {
                // "ignores sync behavior entirely and only stores counters in node memory"
                cx.counters.local()
            } else if rate == 0.0 {
                cx.counters.redis(&endpoint, SyncMode::Synchronous)
            } else {
                cx.counters.redis(&endpoint, SyncMode::Periodic(std::time::Duration::from_secs_f64(rate)))
            })
        }
        "cluster" => {
            issues.push(ConfigIssue::new(
                "strategy",
                "strategy cluster keeps counters in Kong's database, which aigate does not have",
                "use strategy: redis to share budgets between gateways, or local",
            ));
            None
        }
        other => {
            issues.push(ConfigIssue::new(
                "strategy",
                format!("`{other}` is not one of local, redis"),
                "use local or redis",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests;
