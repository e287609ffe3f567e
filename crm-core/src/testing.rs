//! Literals for the unit tests: instants, amounts and the zone most of them
//! use, written once instead of in every module's tests.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use std::str::FromStr;

/// An RFC 3339 instant (`"2024-02-29T12:00:00Z"`, any offset) in UTC.
pub(crate) fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A decimal literal (`"12.50"`).
pub(crate) fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Asia/Shanghai: UTC+8 all year, so local dates differ from UTC ones in the evening.
pub(crate) fn sh() -> Tz {
    "Asia/Shanghai".parse().unwrap()
}
