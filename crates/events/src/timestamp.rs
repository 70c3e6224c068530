//! Event times as text: RFC 3339 in UTC, as ngrok's events and API write them.
//!
//! [`Rfc3339`] writes straight into a formatter or serializer (no intermediate `String`),
//! since traffic events carry several times each; the `time` crate's formatter stays the
//! reference (and handles years outside 0–9999, which never occur in practice).

use std::fmt;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known;

/// A time as RFC 3339 in UTC, with fractional seconds when there are any (trailing zeros
/// trimmed): `2023-11-14T22:13:20.25Z`.
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339(pub OffsetDateTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        if !(0..=9999).contains(&t.year()) {
            return f.write_str(&t.format(&well_known::Rfc3339).unwrap_or_default());
        }
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let mut nanos = t.nanosecond();
        if nanos > 0 {
            let mut digits = 9;
            while nanos.is_multiple_of(10) {
                nanos /= 10;
                digits -= 1;
            }
            write!(f, ".{nanos:0digits$}")?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `t` as RFC 3339 in UTC, whole seconds: `2026-01-02T03:04:05Z` (envelope timestamps,
/// session times).
pub fn whole_seconds(t: OffsetDateTime) -> String {
    Rfc3339(t.replace_nanosecond(0).unwrap_or(t)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// The `time` crate's RFC 3339 text of `t` in UTC.
    fn reference(t: OffsetDateTime) -> String {
        t.to_offset(time::UtcOffset::UTC)
            .format(&well_known::Rfc3339)
            .unwrap_or_default()
    }

    #[test]
    fn writes_what_the_time_crate_formats() {
        for nanos in [
            0,
            1_700_000_000_000_000_000,
            1_700_000_000_250_000_000,
            1_700_000_000_000_000_001,
            1_700_000_000_123_456_789,
            1_700_000_000_100_000_000,
            -86_400_000_000_000,
            253_402_300_799_999_999_999, // 9999-12-31T23:59:59.999999999Z
        ] {
            let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            assert_eq!(Rfc3339(t).to_string(), reference(t), "{nanos}");
            if t.year() < 9999 {
                let east = t.to_offset(time::UtcOffset::from_hms(5, 30, 0).unwrap());
                assert_eq!(Rfc3339(east).to_string(), reference(t), "{nanos} (+05:30)");
            }
        }
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_250_000_000).unwrap();
        assert_eq!(Rfc3339(t).to_string(), "2023-11-14T22:13:20.25Z");
        assert_eq!(
            serde_json::to_string(&Rfc3339(t)).unwrap(),
            "\"2023-11-14T22:13:20.25Z\""
        );
    }

    #[test]
    fn whole_seconds_drop_the_fraction() {
        assert_eq!(
            whole_seconds(datetime!(2026-01-02 03:04:05.678 UTC)),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(
            whole_seconds(datetime!(0999-12-31 23:59:59 UTC)),
            "0999-12-31T23:59:59Z"
        );
        // Before year 0: the `time` crate's answer.
        let far = OffsetDateTime::from_unix_timestamp(-62_200_000_000).unwrap();
        assert!(far.year() < 0);
        assert_eq!(
            whole_seconds(far),
            reference(far.replace_nanosecond(0).unwrap())
        );
    }
}
