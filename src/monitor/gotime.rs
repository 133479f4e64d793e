//! Times and durations written the way nats-server's JSON writes them: Go's `time.Time`
//! (RFC 3339 with nanoseconds, trailing zeros dropped, local time), its `myUptime` form
//! (`1d2h3m4s`) and `time.Duration.String()` (`595µs`).

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local, SecondsFormat, Utc};

/// Go's `time.Time` in JSON (`RFC3339Nano`) in the local time zone: `2026-12-07T09:23:40.0605Z`
/// or `...+01:00`.
pub fn rfc3339(time: SystemTime) -> String {
    let local: DateTime<Local> = time.into();
    trim_fraction(local.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

/// The same in UTC (nats-server's `now` fields are `time.Now().UTC()`).
pub fn rfc3339_utc(time: SystemTime) -> String {
    let utc: DateTime<Utc> = time.into();
    trim_fraction(utc.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

/// Go's `RFC3339Nano` drops the fraction's trailing zeros (and the dot with them); chrono
/// always writes nine digits.
fn trim_fraction(text: String) -> String {
    let Some(dot) = text.find('.') else {
        return text;
    };
    let zone = text[dot..]
        .find(['Z', '+', '-'])
        .map_or(text.len(), |at| dot + at);
    let digits = text[dot + 1..zone].trim_end_matches('0');
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..dot]);
    if !digits.is_empty() {
        out.push('.');
        out.push_str(digits);
    }
    out.push_str(&text[zone..]);
    out
}

/// nats-server's `myUptime`: whole seconds as `Ns`, `NmNs`, `NhNmNs`, `NdNhNmNs`, `NyNdNhNmNs`.
pub fn uptime(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    let years = days / 365;
    if years > 0 {
        format!(
            "{years}y{}d{}h{}m{}s",
            days % 365,
            hours % 24,
            minutes % 60,
            seconds % 60
        )
    } else if days > 0 {
        format!("{days}d{}h{}m{}s", hours % 24, minutes % 60, seconds % 60)
    } else if hours > 0 {
        format!("{hours}h{}m{}s", minutes % 60, seconds % 60)
    } else if minutes > 0 {
        format!("{minutes}m{}s", seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

/// A connection's round trip as nats-server's `/connz` writes it (`getRTT().String()`):
/// truncated to microseconds between 1 µs and 1 ms.
pub fn rtt(nanos: u64) -> String {
    let nanos = if nanos > 1_000 && nanos < 1_000_000 {
        nanos - nanos % 1_000
    } else {
        nanos
    };
    crate::config::go::format_duration(nanos.min(i64::MAX as u64) as i64)
}

/// `later - earlier`, zero when the clock went backwards.
pub fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_trimmed_as_go_does() {
        assert_eq!(
            trim_fraction("2026-12-07T09:23:40.060524664Z".into()),
            "2026-12-07T09:23:40.060524664Z"
        );
        assert_eq!(
            trim_fraction("2026-12-07T09:23:40.060500000+01:00".into()),
            "2026-12-07T09:23:40.0605+01:00"
        );
        assert_eq!(
            trim_fraction("2026-12-07T09:23:40.000000000-05:00".into()),
            "2026-12-07T09:23:40-05:00"
        );
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(rfc3339_utc(epoch), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn uptime_is_my_uptime() {
        assert_eq!(uptime(Duration::from_millis(999)), "0s");
        assert_eq!(uptime(Duration::from_secs(61)), "1m1s");
        assert_eq!(uptime(Duration::from_secs(3_600)), "1h0m0s");
        assert_eq!(uptime(Duration::from_secs(90_061)), "1d1h1m1s");
        assert_eq!(uptime(Duration::from_secs(366 * 86_400)), "1y1d0h0m0s");
    }

    #[test]
    fn rtt_is_truncated_to_microseconds_below_a_millisecond() {
        assert_eq!(rtt(0), "0s");
        assert_eq!(rtt(595_123), "595µs");
        assert_eq!(rtt(999), "999ns");
        assert_eq!(rtt(1_234_567), "1.234567ms");
    }
}
