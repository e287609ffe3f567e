//! Money conversions shared by every binding, so a float or a string becomes
//! the same `Decimal` in Rust, Python and Node.
//!
//! ```
//! use crm_core::money;
//! assert_eq!(money::from_f64(19.999, "CNY", "amount").unwrap().to_string(), "20.00");
//! assert_eq!(money::from_f64(1234.5, "JPY", "amount").unwrap().to_string(), "1235");
//! assert!(money::from_f64(f64::NAN, "CNY", "amount").is_err());
//! assert_eq!(money::parse("12.50", "amount").unwrap().to_string(), "12.50");
//! ```

use std::str::FromStr;

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::{CrmError, Result};

/// Digits after the decimal point of a currency's minor unit (ISO 4217).
pub fn minor_unit(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" | "RWF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// A binary float becomes money by one rule everywhere: it is read as the
/// shortest decimal that round-trips, then rounded half away from zero to
/// the currency's minor unit. NaN and infinities are rejected.
pub fn from_f64(value: f64, currency: &str, field: &str) -> Result<Decimal> {
    if !value.is_finite() {
        return Err(CrmError::invalid(field, "must be a finite number"));
    }
    let d = Decimal::from_str(&value.to_string())
        .ok()
        .or_else(|| Decimal::from_f64(value))
        .ok_or_else(|| CrmError::invalid(field, "is out of range"))?;
    Ok(d.round_dp_with_strategy(minor_unit(currency), RoundingStrategy::MidpointAwayFromZero))
}

/// Parse a decimal string (`"12.50"`, `"-3"`, `"1e3"` is rejected).
pub fn parse(text: &str, field: &str) -> Result<Decimal> {
    let t = text.trim();
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+') {
        return Err(CrmError::invalid(field, format!("{text:?} is not a decimal number")));
    }
    Decimal::from_str(t).map_err(|_| CrmError::invalid(field, format!("{text:?} is not a decimal number")))
}
