//! Go-style duration text (`10s`, `1m30s`, `500ms`, `1.5h`), as ngrok's config file writes
//! `connect_timeout`, `heartbeat_interval` and `heartbeat_tolerance`.
//!
//! Pure parsing: no clock, no IO. Negative durations, unknown units, missing units and values
//! beyond Go's `time.Duration` range (`i64` nanoseconds, about 292 years) are refused.

use std::time::Duration;

/// The largest duration Go's `time.Duration` can hold, in nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Units Go accepts, longest spelling first where one is a prefix of another.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

/// Parses a Go-style duration: a sequence of decimal numbers, each with an optional fraction
/// and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), such as `10s`, `1m30s`, `500ms`, `1.5h`.
/// A bare `0` is zero. Fractions finer than a nanosecond are truncated, as Go does.
///
/// ```
/// use std::time::Duration;
/// use warren_agent::config::parse_duration;
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse_duration("-1s").is_err());
/// assert!(parse_duration("10").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.strip_prefix('+').unwrap_or(text);
    if s.starts_with('-') {
        return Err(format!("`{text}`: negative durations are not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration (write e.g. `10s`)".to_owned());
    }
    let invalid = || format!("`{text}` is not a duration (write e.g. `10s`, `1m30s`, `500ms`)");
    let overflow = || format!("`{text}` is too long a duration");
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        // Whole part.
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (whole, after) = rest.split_at(whole_len);
        // Fraction.
        let (frac, after) = match after.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or dot.
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!(
                "`{text}`: missing unit (use `ns`, `us`, `ms`, `s`, `m` or `h`)"
            ));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use `ns`, `us`, `ms`, `s`, `m` or `h`)"
            ));
        };
        // Leading zeros cannot overflow; anything longer than 39 significant digits would.
        let whole = whole.trim_start_matches('0');
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| overflow())?
        };
        let mut amount = whole.checked_mul(scale).ok_or_else(overflow)?;
        // At most 18 fraction digits matter: the smallest unit is 1 ns and the largest is
        // 3.6e12 ns, so further digits are below a nanosecond.
        let frac = &frac[..frac.len().min(18)];
        if !frac.is_empty() {
            let digits: u128 = frac.parse().map_err(|_| invalid())?;
            let denominator = 10u128.pow(frac.len() as u32);
            amount = amount
                .checked_add(digits * scale / denominator)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(amount).ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| overflow())?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| overflow())?;
    Ok(Duration::new(secs, nanos))
}
