//! Anomalies: per-endpoint baselines with statistics a person can check by hand. Each event
//! says which baseline moved and by how much; at most one per kind, endpoint and window
//! (`anomaly_window_seconds`, aligned to traffic time). Baselines need `baseline_min_samples`
//! earlier exchanges. Exchanges older than the current window (late, or replayed) only join
//! the baseline.
//! - `rate_spike` (medium): requests in the current window > `rate_factor` x the mean per window
//!   since the endpoint was first seen (empty windows count), and >= `min_window_requests`;
//! - `error_burst` (high): 5xx share of the window above the earlier share by
//!   `error_rate_increase`, with >= `min_window_errors` 5xx;
//! - `response_size_jump` (medium): a response more than `size_z` standard deviations above the
//!   mean earlier size (the deviation floored at 10% of the mean, so constant sizes still
//!   allow small changes).
use super::{AnalyticsConfig, Facts, SecurityEvent, Severity, findings::Kind, state::EndpointState};

pub fn check(
    config: &AnalyticsConfig,
    ep: &mut EndpointState,
    facts: &Facts<'_>,
    endpoint: &str,
    out: &mut Vec<SecurityEvent>,
) {
    let len = config.anomaly_window_seconds.saturating_mul(1000).max(1);
    let ts = facts.ts_unix_ms;
    let start = ts - ts % len;
    let w = &mut ep.window;
    let error = facts.http_status.is_some_and(|s| s >= 500);
    if ep.count == 0 {
        w.start = start;
    } else if start < w.start {
        // Late (or replayed) traffic joins the baseline; it cannot make the current window
        // anomalous.
        w.before_count += 1;
        w.before_errors += u64::from(error);
        return;
    } else if start > w.start {
        w.before_count += w.count;
        w.before_errors += w.errors;
        w.before_windows += (start - w.start) / len;
        w.start = start;
        w.count = 0;
        w.errors = 0;
        w.reported.clear();
    }
    w.count += 1;
    w.errors += u64::from(error);
    let secs = config.anomaly_window_seconds;
    let mut emit = |w: &mut super::state::Window, kind, severity, reason: String| {
        if w.reported.insert(kind) {
            out.push(SecurityEvent::new(kind, severity, endpoint, None, reason));
        }
    };
    let trusted = w.before_count >= config.baseline_min_samples;
    if trusted && w.before_windows > 0 {
        let usual = w.before_count as f64 / w.before_windows as f64;
        if w.count >= config.min_window_requests && w.count as f64 > config.rate_factor * usual {
            let reason = format!(
                "{} requests in {secs} s, {:.1}x the usual {usual:.1} per {secs} s (over {} windows)",
                w.count,
                w.count as f64 / usual,
                w.before_windows
            );
            emit(w, Kind::RateSpike, Severity::Medium, reason);
        }
    }
    if trusted && w.errors >= config.min_window_errors {
        let now = w.errors as f64 / w.count as f64;
        let usual = w.before_errors as f64 / w.before_count as f64;
        if now - usual >= config.error_rate_increase {
            let reason = format!(
                "5xx in {} of {} responses ({:.0}%) in {secs} s, usually {:.1}% over {} exchanges",
                w.errors,
                w.count,
                now * 100.0,
                usual * 100.0,
                w.before_count
            );
            emit(w, Kind::ErrorBurst, Severity::High, reason);
        }
    }
    if let Some(size) = facts.response_size
        && ep.size_n >= config.baseline_min_samples
    {
        let sd = ep.size_sd().max(ep.size_mean * 0.1).max(1.0);
        let z = (size as f64 - ep.size_mean) / sd;
        if z > config.size_z {
            let reason = format!(
                "response of {size} B, usually {:.0} B \u{b1} {:.0} B over {} responses (z = {z:.1})",
                ep.size_mean,
                ep.size_sd(),
                ep.size_n
            );
            emit(&mut ep.window, Kind::ResponseSizeJump, Severity::Medium, reason);
        }
    }
}
