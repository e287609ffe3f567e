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

/// A binary float as money only when it is already exact: its shortest
/// decimal form has no more digits than the currency's minor unit (`12.5`
/// yes, `0.1 + 0.2` or `19.999` no), and an integral value is within 2^53
/// (beyond it the float may not be the integer the caller meant). For hosts
/// whose numbers are floats (JavaScript) and that must not be rounded silently.
pub fn exact_from_f64(value: f64, currency: &str, field: &str) -> Result<Decimal> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    let rounded = from_f64(value, currency, field)?;
    if value.fract() == 0.0 && value.abs() > MAX_SAFE {
        return Err(CrmError::invalid(field, format!("{value} is not a safe integer; pass a decimal string")));
    }
    let exact = parse(&format!("{value}"), field)?;
    if exact != rounded {
        let places = minor_unit(currency);
        return Err(CrmError::invalid(
            field,
            format!("{value} is not exact in {currency} ({places} decimal places); pass a decimal string"),
        ));
    }
    Ok(exact)
}

/// Parse a decimal string (`"12.50"`, `"-3"`, `"1e3"` is rejected).
pub fn parse(text: &str, field: &str) -> Result<Decimal> {
    let t = text.trim();
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+') {
        return Err(CrmError::invalid(field, format!("{text:?} is not a decimal number")));
    }
    Decimal::from_str(t).map_err(|_| CrmError::invalid(field, format!("{text:?} is not a decimal number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_floats_only() {
        assert_eq!(exact_from_f64(12.5, "CNY", "amount").unwrap().to_string(), "12.5");
        assert_eq!(exact_from_f64(1234.0, "JPY", "amount").unwrap().to_string(), "1234");
        for (v, cur) in [(0.1 + 0.2, "CNY"), (19.999, "USD"), (12.5, "JPY"), (9.007_199_254_740_992e15, "CNY")] {
            let e = exact_from_f64(v, cur, "amount").unwrap_err();
            assert_eq!(e.field(), Some("amount"), "{v} {cur}");
        }
        assert!(exact_from_f64(f64::INFINITY, "CNY", "amount").is_err());
    }

    fn f(v: f64, currency: &str) -> String {
        from_f64(v, currency, "amount").unwrap().to_string()
    }

    #[test]
    fn floats_round_half_away_from_zero_to_the_minor_unit() {
        assert_eq!(f(0.125, "CNY"), "0.13");
        assert_eq!(f(-0.125, "CNY"), "-0.13");
        assert_eq!(f(2.675, "CNY"), "2.68"); // the shortest decimal, not 2.67499999…
        assert_eq!(f(0.5, "JPY"), "1");
        assert_eq!(f(-0.5, "JPY"), "-1");
        assert_eq!(f(1.0005, "KWD"), "1.001");
        // Zero stays zero (whole floats keep their own scale: 0.0 -> "0").
        assert_eq!(from_f64(0.0, "CNY", "a").unwrap(), Decimal::ZERO);
        assert_eq!(from_f64(-0.0, "CNY", "a").unwrap(), Decimal::ZERO);
    }

    #[test]
    fn non_finite_and_huge_floats_are_refused_with_the_field() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
            let e = from_f64(v, "CNY", "order.amount").unwrap_err();
            assert_eq!(e.field(), Some("order.amount"), "{v}");
        }
    }

    #[test]
    fn parse_accepts_plain_decimals_only() {
        assert_eq!(parse(" 12.50 ", "a").unwrap().to_string(), "12.50");
        assert_eq!(parse("-3", "a").unwrap().to_string(), "-3");
        assert_eq!(parse("0", "a").unwrap(), Decimal::ZERO);
        for bad in ["", "1e3", "abc", "1,5", "--1", "1.2.3", "NaN"] {
            assert_eq!(parse(bad, "amount").unwrap_err().field(), Some("amount"), "{bad:?}");
        }
    }

    #[test]
    fn minor_units() {
        assert_eq!((minor_unit("CNY"), minor_unit("JPY"), minor_unit("KWD")), (2, 0, 3));
    }
}
