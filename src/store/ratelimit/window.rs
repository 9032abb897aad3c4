//! Windows of time counters are kept in: calendar periods aligned to UTC (Kong's rate-limiting:
//! a minute starts at :00, a day at midnight UTC, a month on the 1st), and fixed-size windows
//! aligned to the Unix epoch (Kong's ai-rate-limiting-advanced: `floor(now / size) * size`),
//! with the sliding-window weight of the previous one.

use crate::core::calendar::{civil_from_days, days_from_civil};

/// A window of time, `[start_ms, end_ms)` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    pub fn len_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    /// The window of the same length just before this one.
    pub fn previous(&self) -> Window {
        Window { start_ms: self.start_ms - self.len_ms(), end_ms: self.start_ms }
    }

    /// Whole seconds (at least 1) until the window ends.
    pub fn reset_secs(&self, now_ms: i64) -> u64 {
        ceil_secs(self.end_ms - now_ms).max(1)
    }
}

/// Milliseconds to whole seconds, rounded up.
pub fn ceil_secs(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000)
}

/// Kong's rate-limiting periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

impl Period {
    pub const ALL: [Period; 6] =
        [Period::Second, Period::Minute, Period::Hour, Period::Day, Period::Month, Period::Year];

    /// The config field and log name: `minute`.
    pub fn name(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// As Kong's headers spell it: `X-RateLimit-Limit-Minute`.
    pub fn header_name(self) -> &'static str {
        match self {
            Period::Second => "Second",
            Period::Minute => "Minute",
            Period::Hour => "Hour",
            Period::Day => "Day",
            Period::Month => "Month",
            Period::Year => "Year",
        }
    }

    /// The calendar window (UTC) holding `now_ms`.
    pub fn window(self, now_ms: i64) -> Window {
        let secs = now_ms.div_euclid(1000);
        let fixed = |size: i64| {
            let start = secs.div_euclid(size) * size;
            Window { start_ms: start * 1000, end_ms: (start + size) * 1000 }
        };
        match self {
            Period::Second => fixed(1),
            Period::Minute => fixed(60),
            Period::Hour => fixed(3600),
            Period::Day => fixed(86_400),
            Period::Month | Period::Year => {
                let (y, m, _) = civil_from_days(secs.div_euclid(86_400));
                let (start, end) = if self == Period::Month {
                    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                    (days_from_civil(y, m, 1), days_from_civil(ny, nm, 1))
                } else {
                    (days_from_civil(y, 1, 1), days_from_civil(y + 1, 1, 1))
                };
                Window { start_ms: start * 86_400_000, end_ms: end * 86_400_000 }
            }
        }
    }
}

/// The window of `size_secs` seconds, aligned to the Unix epoch, holding `now_ms`.
pub fn epoch_window(size_secs: u64, now_ms: i64) -> Window {
    let size = (size_secs.max(1) as i64) * 1000;
    let start = now_ms.div_euclid(size) * size;
    Window { start_ms: start, end_ms: start + size }
}

/// How much of the previous window still counts in a sliding window at `now_ms`:
/// `(size - elapsed) / size` (Kong's formula; 1 at the start of a window, 0 at its end).
pub fn sliding_weight(current: &Window, now_ms: i64) -> f64 {
    let len = current.len_ms().max(1) as f64;
    ((current.end_ms - now_ms).clamp(0, current.len_ms()) as f64) / len
}

/// Seconds until a sliding estimate `prev * weight + cur` falls under `limit` with no new use:
/// during this window the previous one's share shrinks; after it ends, this one becomes the
/// previous one and shrinks in turn. At least 1, at most the rest of this window plus a whole one.
pub fn sliding_reset_secs(current: &Window, now_ms: i64, prev: f64, cur: f64, limit: f64) -> u64 {
    let len = current.len_ms().max(1) as f64;
    let left = (current.end_ms - now_ms).max(0) as f64;
    let ms = if cur < limit {
        // prev * (left - t) / len + cur < limit  ⇔  t > left - (limit - cur) * len / prev
        if prev <= 0.0 {
            0.0
        } else {
            (left - (limit - cur) * len / prev).max(0.0)
        }
    } else {
        // After the window ends: cur * (len - e) / len < limit  ⇔  e > len * (1 - limit / cur)
        left + (len * (1.0 - limit / cur)).clamp(0.0, len)
    };
    ceil_secs(ms.ceil() as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-26T09:35:06.123Z
    const NOW: i64 = 1_795_685_706_123;

    #[test]
    fn calendar_windows_are_utc_aligned() {
        let w = Period::Second.window(NOW);
        assert_eq!((w.start_ms, w.end_ms), (1_795_685_706_000, 1_795_685_707_000));
        let w = Period::Minute.window(NOW);
        assert_eq!((w.start_ms, w.end_ms), (1_795_685_700_000, 1_795_685_760_000));
        assert_eq!(w.reset_secs(NOW), 54);
        let w = Period::Hour.window(NOW);
        assert_eq!(w.start_ms, 1_795_683_600_000);
        let w = Period::Day.window(NOW);
        assert_eq!(w.start_ms, 1_795_651_200_000); // 2026-11-26T00:00Z
        let w = Period::Month.window(NOW);
        assert_eq!(w.start_ms, days_from_civil(2026, 11, 1) * 86_400_000);
        assert_eq!(w.end_ms, days_from_civil(2026, 12, 1) * 86_400_000);
        assert_eq!(w.len_ms(), 30 * 86_400_000);
        let w = Period::Year.window(NOW);
        assert_eq!(w.start_ms, days_from_civil(2026, 1, 1) * 86_400_000);
        assert_eq!(w.end_ms, days_from_civil(2027, 1, 1) * 86_400_000);
        // December rolls into January; February in a leap year has 29 days.
        let dec = days_from_civil(2026, 12, 31) * 86_400_000;
        assert_eq!(Period::Month.window(dec).end_ms, days_from_civil(2027, 1, 1) * 86_400_000);
        let feb = days_from_civil(2028, 2, 10) * 86_400_000;
        assert_eq!(Period::Month.window(feb).len_ms(), 29 * 86_400_000);
    }

    #[test]
    fn epoch_windows_and_the_sliding_weight() {
        let w = epoch_window(60, NOW);
        assert_eq!(w, Period::Minute.window(NOW));
        let w = epoch_window(180, NOW);
        assert_eq!(w.start_ms % 180_000, 0);
        assert!(w.start_ms <= NOW && NOW < w.end_ms);
        assert_eq!(w.previous().end_ms, w.start_ms);
        // Kong's README example: 30 s into a 60 s window, the previous window counts half.
        let w = epoch_window(60, 30_000);
        assert_eq!(sliding_weight(&w, 30_000), 0.5);
        assert_eq!(20.0 * sliding_weight(&w, 30_000) + 10.0, 20.0);
        assert_eq!(sliding_weight(&w, 0), 1.0);
    }

    #[test]
    fn sliding_reset_is_when_the_estimate_falls_under_the_limit() {
        let w = epoch_window(60, 0);
        // 30 s in, prev 100 (weighs 50), cur 0, limit 40: prev*(30-t)/60 < 40 ⇒ t > 6 s.
        assert_eq!(sliding_reset_secs(&w, 30_000, 100.0, 0.0, 40.0), 6);
        // Already under: at least one second.
        assert_eq!(sliding_reset_secs(&w, 30_000, 10.0, 0.0, 40.0), 1);
        // The current window alone is over: its end (30 s) plus 60 * (1 - 40/80) = 30 s.
        assert_eq!(sliding_reset_secs(&w, 30_000, 0.0, 80.0, 40.0), 60);
        // Never beyond the rest of the window plus a whole one.
        assert_eq!(sliding_reset_secs(&w, 30_000, 0.0, 1e12, 1.0), 90);
    }
}
