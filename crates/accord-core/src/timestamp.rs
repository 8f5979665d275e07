//! RFC 3339 UTC timestamps in the one fixed form Accord signs:
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, always six digits, always `Z`).
//!
//! A single spelling per instant keeps signed bytes reproducible, and the fixed
//! width makes byte order equal time order.

use std::fmt;

use time::{Date, Month, OffsetDateTime, Time};

/// A validated timestamp.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(String);

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// Not `YYYY-MM-DDTHH:MM:SS.ffffffZ`, or not a real date/time.
    #[error("timestamp {0:?} is not RFC 3339 UTC in the form YYYY-MM-DDTHH:MM:SS.ffffffZ")]
    Syntax(String),
    /// Outside years 0001–9999.
    #[error("time is outside the years 0001-9999")]
    OutOfRange,
}

impl Timestamp {
    /// From microseconds since the Unix epoch (the caller reads the clock;
    /// the core never does).
    pub fn from_unix_micros(micros: i64) -> Result<Self, TimestampError> {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000)
            .map_err(|_| TimestampError::OutOfRange)?;
        if !(1..=9999).contains(&dt.year()) {
            return Err(TimestampError::OutOfRange);
        }
        Ok(Timestamp(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            dt.month() as u8,
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.microsecond()
        )))
    }

    /// Parses the fixed form, checking that the date and time exist.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let err = || TimestampError::Syntax(s.chars().take(40).collect());
        let b = s.as_bytes();
        if b.len() != 27 {
            return Err(err());
        }
        let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
        if !shape_ok {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> u32 {
            b[r].iter()
                .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'))
        };
        let month = Month::try_from(num(5..7) as u8).map_err(|_| err())?;
        Date::from_calendar_date(num(0..4) as i32, month, num(8..10) as u8).map_err(|_| err())?;
        Time::from_hms_micro(
            num(11..13) as u8,
            num(14..16) as u8,
            num(17..19) as u8,
            num(20..26),
        )
        .map_err(|_| err())?;
        if num(0..4) == 0 {
            return Err(TimestampError::OutOfRange);
        }
        Ok(Timestamp(s.to_owned()))
    }

    /// The RFC 3339 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(&self) -> i64 {
        let b = self.0.as_bytes();
        let num = |r: std::ops::Range<usize>| -> u32 {
            b[r].iter()
                .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'))
        };
        // Parsed and validated on construction, so these cannot fail.
        let date = Month::try_from(num(5..7) as u8)
            .ok()
            .and_then(|m| Date::from_calendar_date(num(0..4) as i32, m, num(8..10) as u8).ok());
        let time = Time::from_hms_micro(
            num(11..13) as u8,
            num(14..16) as u8,
            num(17..19) as u8,
            num(20..26),
        )
        .ok();
        match (date, time) {
            (Some(d), Some(t)) => {
                (d.with_time(t).assume_utc().unix_timestamp_nanos() / 1000) as i64
            }
            _ => 0,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let t = Timestamp::from_unix_micros(1_795_000_000_123_456).unwrap();
        assert_eq!(t.as_str(), "2026-11-18T11:06:40.123456Z");
        assert_eq!(Timestamp::parse(t.as_str()).unwrap(), t);
        assert_eq!(t.unix_micros(), 1_795_000_000_123_456);
        for bad in [
            "2026-11-18T08:26:40Z",
            "2026-11-18T08:26:40.123456+00:00",
            "2026-02-30T08:26:40.123456Z",
            "2026-11-18t08:26:40.123456Z",
            "2026-11-18T24:00:00.000000Z",
            "0000-01-01T00:00:00.000000Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
