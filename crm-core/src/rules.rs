//! Earn rules: how many points an order earns under one rule.
//!
//! `points = round(amount × points_per_unit × factors)`, rounded once per order
//! with the rule's explicit rounding mode, then capped per order. Category
//! multipliers apply per line: the order amount is spread over the lines in
//! proportion to `qty × price`, so discounts and shipping are shared fairly.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::facts::Order;
use crate::program::{Condition, EarnRule, Stacking};
use crate::segment::Rule;
use crate::state::MemberState;
use crate::time::local_date;

/// Answers segment conditions: does the member match the rule at the instant?
pub type SegmentCheck<'a> = &'a dyn Fn(&Rule, DateTime<Utc>) -> bool;

/// Does an order-level condition hold for this order and member?
fn holds(
    cond: &Condition,
    order: &Order,
    member: &MemberState,
    tz: Tz,
    t: DateTime<Utc>,
    segment: SegmentCheck<'_>,
) -> bool {
    match cond {
        Condition::Channel { channels } => order.channel.as_ref().is_some_and(|c| channels.contains(c)),
        Condition::Store { stores } => order.store.as_ref().is_some_and(|s| stores.contains(s)),
        Condition::Category { .. } => false,
        Condition::BirthdayMonth => {
            let zone = member.profile.timezone.unwrap_or(tz);
            member.profile.birthday.is_some_and(|b| b.month() == local_date(zone, t).month())
        }
        Condition::MemberDay { day } => {
            let d = local_date(tz, t);
            d.day() == (*day).min(days_in_month(d))
        }
        Condition::DateRange { from, to } => *from <= t && t < *to,
        Condition::Tag { tag } => member.tags.contains(tag),
        Condition::Segment { rule } => segment(rule, t),
    }
}

fn days_in_month(d: NaiveDate) -> u32 {
    let next = crate::time::first_of_month_after(d, 1);
    (next - chrono::Days::new(1)).day()
}

fn combine(stacking: Stacking, factors: impl Iterator<Item = Decimal>) -> Decimal {
    match stacking {
        Stacking::Multiply => factors.fold(Decimal::ONE, |acc, f| acc.checked_mul(f).unwrap_or(Decimal::MAX)),
        Stacking::Highest => factors.fold(Decimal::ONE, Decimal::max),
    }
}

/// Points one rule awards for an order, after rounding and the per-order cap
/// (day and month caps depend on the member's usage and are applied by the caller).
/// `tier_factor` is the member's tier multiplier, when the rule takes it: one
/// more order-level factor, stacked like the others.
pub fn order_points(rule: &EarnRule, order: &Order, member: &MemberState, tz: Tz, tier_factor: Option<Decimal>) -> i64 {
    order_points_with(rule, order, member, tz, tier_factor, &|_, _| false)
}

/// [`order_points`] with segment conditions answered by `segment` (the
/// engine passes the member's fields under the programme; without it a
/// segment condition never holds).
pub fn order_points_with(
    rule: &EarnRule,
    order: &Order,
    member: &MemberState,
    tz: Tz,
    tier_factor: Option<Decimal>,
    segment: SegmentCheck<'_>,
) -> i64 {
    let t = order.earned_at();
    let mut order_factors: Vec<Decimal> =
        rule.multipliers.iter().filter(|m| holds(&m.when, order, member, tz, t, segment)).map(|m| m.factor).collect();
    if let Some(f) = tier_factor.filter(|_| rule.tier_multiplier) {
        order_factors.push(f);
    }
    let has_line_rules = rule.multipliers.iter().any(|m| matches!(m.when, Condition::Category { .. }));
    let items_value = order.items_value();
    let raw = if !has_line_rules || items_value.is_zero() {
        mul(order.amount, rule.points_per_unit, combine(rule.stacking, order_factors.iter().copied()))
    } else {
        // Σ(line value × line factor) first, one division last: dividing per
        // line would lose exactness (three thirds summing to 0.999…).
        let weighted = order.items.iter().fold(Decimal::ZERO, |acc, item| {
            let line_value = item.price * Decimal::from(item.qty);
            let line_factors = rule.multipliers.iter().filter_map(|m| match &m.when {
                Condition::Category { categories }
                    if item.category.as_ref().is_some_and(|c| categories.contains(c)) =>
                {
                    Some(m.factor)
                }
                _ => None,
            });
            let factor = combine(rule.stacking, order_factors.iter().copied().chain(line_factors));
            acc.saturating_add(line_value.checked_mul(factor).unwrap_or(Decimal::MAX))
        });
        mul(order.amount, rule.points_per_unit, weighted).checked_div(items_value).unwrap_or(Decimal::MAX)
    };
    let points = rule.rounding.apply(raw).max(0);
    rule.per_order_cap.map_or(points, |cap| points.min(cap))
}

fn mul(a: Decimal, b: Decimal, c: Decimal) -> Decimal {
    a.checked_mul(b).and_then(|x| x.checked_mul(c)).unwrap_or(Decimal::MAX)
}

/// Apply the rule's day and month caps given what the member already earned
/// from it (`used_day`, `used_month`).
pub fn apply_period_caps(rule: &EarnRule, points: i64, used_day: i64, used_month: i64) -> i64 {
    let mut p = points;
    if let Some(cap) = rule.per_day_cap {
        p = p.min(cap - used_day);
    }
    if let Some(cap) = rule.per_month_cap {
        p = p.min(cap - used_month);
    }
    p.max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::OrderItem;
    use crate::program::{Multiplier, Rounding};
    use crate::testing::{d, sh, utc};

    fn rule(mults: Vec<Multiplier>) -> EarnRule {
        EarnRule {
            id: "r".into(),
            point_type: "reward".into(),
            points_per_unit: d("1"),
            rounding: Rounding::Floor,
            multipliers: mults,
            stacking: Stacking::Multiply,
            per_order_cap: None,
            per_day_cap: None,
            per_month_cap: None,
            tier_multiplier: true,
        }
    }
    fn member() -> MemberState {
        MemberState::new("m".into(), utc("2024-01-01T00:00:00Z"))
    }
    #[test]
    fn floor_per_order_and_zero_amount() {
        let o = Order::paid("o", "m", utc("2024-01-01T00:00:00Z"), d("99.99"));
        assert_eq!(order_points(&rule(vec![]), &o, &member(), sh(), None), 99);
        let o = Order::paid("o", "m", utc("2024-01-01T00:00:00Z"), d("0"));
        assert_eq!(order_points(&rule(vec![]), &o, &member(), sh(), None), 0);
    }

    #[test]
    fn member_day_is_local_and_clamps_to_month_end() {
        let r = rule(vec![Multiplier { when: Condition::MemberDay { day: 31 }, factor: d("2") }]);
        // 29 Feb 2024 17:00Z is 1 March 01:00 in Shanghai: not the last day of February.
        let o = Order::paid("o", "m", utc("2024-02-29T17:00:00Z"), d("10"));
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 10);
        // 29 Feb 2024 15:59Z is still 29 Feb 23:59 local: the clamped member day.
        let o = Order::paid("o", "m", utc("2024-02-29T15:59:00Z"), d("10"));
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 20);
    }

    #[test]
    fn category_multiplier_applies_to_its_share_only() {
        let r =
            rule(vec![Multiplier { when: Condition::Category { categories: vec!["shoes".into()] }, factor: d("3") }]);
        let mut o = Order::paid("o", "m", utc("2024-01-01T00:00:00Z"), d("90"));
        o.items = vec![
            OrderItem { sku: "a".into(), category: Some("shoes".into()), qty: 1, price: d("50") },
            OrderItem { sku: "b".into(), category: Some("socks".into()), qty: 2, price: d("25") },
        ];
        // 90 paid on 100 of lines: shoes share 45 x3 = 135, socks 45 x1 = 45.
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 180);
    }

    #[test]
    fn stacking_and_caps() {
        let mut r = rule(vec![
            Multiplier { when: Condition::Channel { channels: vec!["app".into()] }, factor: d("2") },
            Multiplier { when: Condition::MemberDay { day: 1 }, factor: d("3") },
        ]);
        let mut o = Order::paid("o", "m", utc("2024-03-01T02:00:00Z"), d("10"));
        o.channel = Some("app".into());
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 60);
        r.stacking = Stacking::Highest;
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 30);
        r.per_order_cap = Some(25);
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 25);
        r.per_day_cap = Some(40);
        r.per_month_cap = Some(100);
        assert_eq!(apply_period_caps(&r, 25, 30, 0), 10);
        assert_eq!(apply_period_caps(&r, 25, 0, 90), 10);
        assert_eq!(apply_period_caps(&r, 25, 50, 0), 0);
    }

    #[test]
    fn birthday_month_uses_member_zone() {
        let r = rule(vec![Multiplier { when: Condition::BirthdayMonth, factor: d("2") }]);
        let mut m = member();
        m.profile.birthday = NaiveDate::from_ymd_opt(1990, 3, 15);
        // 29 Feb 2024 20:00Z: March in Shanghai, still February in New York.
        let o = Order::paid("o", "m", utc("2024-02-29T20:00:00Z"), d("10"));
        assert_eq!(order_points(&r, &o, &m, sh(), None), 20);
        m.profile.timezone = Some("America/New_York".parse().unwrap());
        assert_eq!(order_points(&r, &o, &m, sh(), None), 10);
    }

    #[test]
    fn half_points_round_once_per_order_in_every_mode() {
        // 0.5 per unit on 0.99 + 0.01 style amounts: the raw total is exactly x.5.
        let mut r = rule(vec![]);
        r.points_per_unit = d("0.5");
        let o = Order::paid("o", "m", utc("2024-01-01T00:00:00Z"), d("7.00")); // 3.5 points
        for (mode, want) in [
            (Rounding::Floor, 3),
            (Rounding::Ceil, 4),
            (Rounding::HalfUp, 4),
            (Rounding::HalfDown, 3),
            (Rounding::HalfEven, 4),
        ] {
            r.rounding = mode;
            assert_eq!(order_points(&r, &o, &member(), sh(), None), want, "{mode:?}");
        }
        // Just below and above the midpoint every nearest mode agrees.
        let below = Order::paid("o", "m", utc("2024-01-01T00:00:00Z"), d("6.98")); // 3.49
        let above = Order::paid("o", "m", utc("2024-01-01T00:00:00Z"), d("7.02")); // 3.51
        for mode in [Rounding::HalfUp, Rounding::HalfDown, Rounding::HalfEven] {
            r.rounding = mode;
            assert_eq!(order_points(&r, &below, &member(), sh(), None), 3, "{mode:?}");
            assert_eq!(order_points(&r, &above, &member(), sh(), None), 4, "{mode:?}");
        }
    }

    #[test]
    fn zero_and_negative_amounts_earn_nothing() {
        let mut r = rule(vec![Multiplier { when: Condition::MemberDay { day: 1 }, factor: d("3") }]);
        r.rounding = Rounding::Ceil;
        for amount in ["0", "0.00", "-0", "-10", "-0.01"] {
            let o = Order::paid("o", "m", utc("2024-01-01T02:00:00Z"), d(amount));
            assert_eq!(order_points(&r, &o, &member(), sh(), None), 0, "{amount}");
        }
        // A negative factor never produces negative points either.
        let r = rule(vec![Multiplier { when: Condition::MemberDay { day: 1 }, factor: d("-2") }]);
        let o = Order::paid("o", "m", utc("2024-01-01T02:00:00Z"), d("10"));
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 0);
    }

    #[test]
    fn member_day_follows_local_midnight_across_dst() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let r = rule(vec![Multiplier { when: Condition::MemberDay { day: 31 }, factor: d("2") }]);
        // 31 March 2024 is the DST day: 23:59 CEST is 21:59Z, 00:00 CEST on 1 April is 22:00Z.
        let o = Order::paid("o", "m", utc("2024-03-31T21:59:00Z"), d("10"));
        assert_eq!(order_points(&r, &o, &member(), berlin, None), 20);
        let o = Order::paid("o", "m", utc("2024-03-31T22:00:00Z"), d("10"));
        assert_eq!(order_points(&r, &o, &member(), berlin, None), 10);
        // Still 30 March 23:30 CET at 22:30Z.
        let o = Order::paid("o", "m", utc("2024-03-30T22:30:00Z"), d("10"));
        assert_eq!(order_points(&r, &o, &member(), berlin, None), 10);
    }

    #[test]
    fn earning_time_is_the_payment_time() {
        let r = rule(vec![Multiplier { when: Condition::MemberDay { day: 1 }, factor: d("2") }]);
        let mut o = Order::paid("o", "m", utc("2024-01-31T10:00:00Z"), d("10"));
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 10);
        o.paid_at = Some(utc("2024-02-01T10:00:00Z"));
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 20);
    }

    #[test]
    fn date_range_is_half_open_at_midnight() {
        let r = rule(vec![Multiplier {
            when: Condition::DateRange { from: utc("2024-02-28T16:00:00Z"), to: utc("2024-02-29T16:00:00Z") },
            factor: d("2"),
        }]);
        let at = |t: &str| order_points(&r, &Order::paid("o", "m", utc(t), d("10")), &member(), sh(), None);
        assert_eq!(at("2024-02-28T15:59:59Z"), 10);
        assert_eq!(at("2024-02-28T16:00:00Z"), 20);
        assert_eq!(at("2024-02-29T15:59:59Z"), 20);
        assert_eq!(at("2024-02-29T16:00:00Z"), 10);
    }

    #[test]
    fn half_rounding_modes_per_order() {
        let mut r = rule(vec![]);
        r.points_per_unit = d("0.5");
        let o = Order::paid("o", "m", utc("2024-01-01T00:00:00Z"), d("5"));
        r.rounding = Rounding::HalfUp;
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 3);
        r.rounding = Rounding::HalfEven;
        assert_eq!(order_points(&r, &o, &member(), sh(), None), 2);
    }
}
