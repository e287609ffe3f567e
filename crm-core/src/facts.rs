//! Facts the host reports: orders and refunds. Facts are idempotent by id.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::member::MemberId;

/// Largest order amount accepted (a guard against unit mix-ups and overflow).
pub const MAX_AMOUNT: i64 = 1_000_000_000;

/// Lifecycle of an order. Points are earned when it is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, not yet paid: no points yet.
    Placed,
    /// Paid: points are earned.
    #[default]
    Paid,
    /// Completed (delivered): points are earned.
    Completed,
    /// Cancelled: earns nothing; cancelling a paid order claws back its points.
    Cancelled,
}

impl OrderStatus {
    /// True when the order earns points.
    pub fn earns(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::Completed)
    }
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    pub sku: String,
    #[serde(default)]
    pub category: Option<String>,
    pub qty: u32,
    /// Unit price.
    pub price: Decimal,
}

/// An order reported by the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: String,
    pub member_id: MemberId,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub store: Option<String>,
    pub placed_at: DateTime<Utc>,
    #[serde(default)]
    pub paid_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub status: OrderStatus,
    /// Amount paid, in `currency`.
    pub amount: Decimal,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub items: Vec<OrderItem>,
}

impl Order {
    /// A paid order with no items: the shape of most imported histories.
    pub fn paid(
        id: impl Into<String>,
        member: impl Into<MemberId>,
        placed_at: DateTime<Utc>,
        amount: Decimal,
    ) -> Order {
        Order {
            id: id.into(),
            member_id: member.into(),
            channel: None,
            store: None,
            placed_at,
            paid_at: None,
            status: OrderStatus::Paid,
            amount,
            currency: None,
            items: Vec::new(),
        }
    }

    /// When the order earns: payment time, or placing time when not given.
    pub fn earned_at(&self) -> DateTime<Utc> {
        self.paid_at.unwrap_or(self.placed_at)
    }

    /// Validate the order against the programme currency.
    pub fn validate(&self, currency: &str) -> Result<()> {
        check_ref(&self.id, "order.id")?;
        // The member id's rule ([`MemberId::parse`]), checked in place.
        check_ref(self.member_id.as_str(), "order.member_id")?;
        check_amount(self.amount, "order.amount")?;
        if let Some(c) = &self.currency {
            if c != currency {
                return Err(CrmError::invalid("order.currency", format!("expected {currency}, got {c}")));
            }
        }
        if let Some(p) = self.paid_at {
            if p < self.placed_at {
                return Err(CrmError::invalid("order.paid_at", "must not be before placed_at"));
            }
        }
        for (i, item) in self.items.iter().enumerate() {
            check_ref(&item.sku, &format!("order.items[{i}].sku"))?;
            if item.qty == 0 {
                return Err(CrmError::invalid(format!("order.items[{i}].qty"), "must be at least 1"));
            }
            check_amount(item.price, &format!("order.items[{i}].price"))?;
        }
        Ok(())
    }

    /// Value of the lines (`qty * price`), used to spread the amount over lines.
    pub fn items_value(&self) -> Decimal {
        self.items.iter().map(|i| i.price * Decimal::from(i.qty)).sum()
    }
}

/// What a refund gives back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RefundScope {
    /// Everything not yet refunded.
    Full,
    /// A money amount.
    Amount { amount: Decimal },
    /// Returned items, valued at the order's price per unit (scaled to the amount paid).
    Items { items: Vec<ReturnedItem> },
}

/// A returned quantity of one sku.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnedItem {
    pub sku: String,
    pub qty: u32,
}

/// A refund or return against an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    pub id: String,
    pub order_id: String,
    pub at: DateTime<Utc>,
    pub scope: RefundScope,
}

/// Reject empty or oversized references.
pub(crate) fn check_ref(v: &str, field: &str) -> Result<()> {
    if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
        return Err(CrmError::invalid(field, "must be 1-128 printable characters"));
    }
    Ok(())
}

/// Reject negative, absurdly large, or over-precise amounts.
pub(crate) fn check_amount(v: Decimal, field: &str) -> Result<()> {
    if v.is_sign_negative() && !v.is_zero() {
        return Err(CrmError::invalid(field, "must not be negative"));
    }
    if v > Decimal::from(MAX_AMOUNT) {
        return Err(CrmError::invalid(field, format!("must be at most {MAX_AMOUNT}")));
    }
    if v.normalize().scale() > 4 {
        return Err(CrmError::invalid(field, "has more than 4 decimal places"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{d, utc};

    fn field(r: Result<()>) -> Option<String> {
        r.err().and_then(|e| e.field().map(str::to_string))
    }

    #[test]
    fn amounts_zero_negative_precision_and_size() {
        for ok in ["0", "0.00", "-0", "-0.00", "0.0001", "12.3450", "1.00000", "1000000000"] {
            assert!(check_amount(d(ok), "amount").is_ok(), "{ok}");
        }
        for bad in ["-0.01", "-1", "0.00001", "1000000000.01"] {
            assert_eq!(field(check_amount(d(bad), "order.amount")).as_deref(), Some("order.amount"), "{bad}");
        }
    }

    #[test]
    fn order_validation_names_the_field() {
        let t = utc("2024-02-29T23:59:59Z");
        let ok = Order::paid("o1", "m1", t, d("0"));
        assert!(ok.validate("CNY").is_ok());
        let mut o = ok.clone();
        o.amount = d("-5");
        assert_eq!(field(o.validate("CNY")).as_deref(), Some("order.amount"));
        let mut o = ok.clone();
        o.currency = Some("USD".into());
        assert_eq!(field(o.validate("CNY")).as_deref(), Some("order.currency"));
        let mut o = ok.clone();
        o.paid_at = Some(t - chrono::Duration::seconds(1));
        assert_eq!(field(o.validate("CNY")).as_deref(), Some("order.paid_at"));
        let mut o = ok.clone();
        o.paid_at = Some(t);
        assert!(o.validate("CNY").is_ok(), "paid at the instant it was placed");
        let mut o = ok.clone();
        o.items = vec![OrderItem { sku: "a".into(), category: None, qty: 0, price: d("1") }];
        assert_eq!(field(o.validate("CNY")).as_deref(), Some("order.items[0].qty"));
        let mut o = ok.clone();
        o.items = vec![OrderItem { sku: "a".into(), category: None, qty: 1, price: d("-1") }];
        assert_eq!(field(o.validate("CNY")).as_deref(), Some("order.items[0].price"));
        let mut o = ok;
        o.id = String::new();
        assert_eq!(field(o.validate("CNY")).as_deref(), Some("order.id"));
    }

    #[test]
    fn earned_at_is_the_payment_time_when_known() {
        let mut o = Order::paid("o1", "m1", utc("2024-01-31T23:00:00Z"), d("1"));
        assert_eq!(o.earned_at(), utc("2024-01-31T23:00:00Z"));
        o.paid_at = Some(utc("2024-02-01T00:00:00Z"));
        assert_eq!(o.earned_at(), utc("2024-02-01T00:00:00Z"));
    }

    #[test]
    fn status_earns_only_when_paid_or_completed() {
        assert!(OrderStatus::Paid.earns() && OrderStatus::Completed.earns());
        assert!(!OrderStatus::Placed.earns() && !OrderStatus::Cancelled.earns());
    }
}
