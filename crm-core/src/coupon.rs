//! Coupons (优惠券): templates in the programme, coupons held by members,
//! the discount a coupon gives on an order or a cart, and coupon codes.
//!
//! A coupon belongs to one member, so every change to it is a change to
//! that member and commits under the member's optimistic concurrency: two
//! orders racing for one coupon cannot both redeem it. The decisions here are
//! pure; the engine turns them into events (`CouponIssued`, `CouponRedeemed`,
//! `CouponReturned`, `CouponRevoked`).
//!
//! Codes come from the operating system's random source ([`generate_codes`])
//! and are written in an alphabet without look-alike characters, with a
//! check character ([`check_code`]) that catches every single mistyped
//! character and every swap of two neighbours. The engine takes the code as
//! part of the command, so replaying the command log gives the same coupons.
//!
//! ```
//! use crm_core::coupon::{check_code, generate_codes};
//!
//! let codes = generate_codes(3)?;
//! assert_eq!(codes.len(), 3);
//! for code in &codes {
//!     assert_eq!(check_code(&code.to_lowercase())?, *code);
//! }
//! # Ok::<(), crm_core::CrmError>(())
//! ```

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::facts::OrderItem;
use crate::time::{local_date, start_of_day};

/// Characters of a code: digits and capitals without `0 O 1 I L` (31, a prime,
/// which the check character needs).
pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Random characters in a code: 31^12 ≈ 7.9 × 10^17 codes (59 bits).
pub const CODE_BODY: usize = 12;

/// The coupon part of a programme.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponConfig {
    #[serde(default)]
    pub templates: Vec<CouponTemplate>,
    /// A coupon redeemed on an order comes back to the member when the order
    /// is fully refunded or cancelled (if it has not expired meanwhile).
    #[serde(default)]
    pub return_on_refund: bool,
    /// What `quote` offers for spending points at checkout.
    #[serde(default)]
    pub checkout: Checkout,
}

/// Points at checkout: at most `max_points_share` of the amount left after
/// the coupon may be paid with points, at the programme's `value_per_point`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    /// The spendable point type used at checkout (default: the first spendable type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_type: Option<String>,
    /// Share of the amount payable with points, in [0, 1] (default 0.5).
    #[serde(default = "half")]
    pub max_points_share: Decimal,
}

fn half() -> Decimal {
    Decimal::new(5, 1)
}

impl Default for Checkout {
    fn default() -> Checkout {
        Checkout { point_type: None, max_points_share: half() }
    }
}

/// A kind of coupon the programme hands out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponTemplate {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub benefit: Benefit,
    pub validity: Validity,
    /// The eligible amount must reach this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_spend: Option<Decimal>,
    /// Order channels it can be used on (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Item categories it applies to (empty: the whole order). With
    /// categories, only those items count toward `min_spend` and the discount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Coupons of this template one member may ever be issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_member_limit: Option<u32>,
    /// Coupons of this template that may be out at once over the whole
    /// programme (the stock): issued ones count, revoked ones give theirs back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_limit: Option<u32>,
    /// The most this template may cost the shop: the face values
    /// ([`CouponTemplate::face_value`]) of the coupons issued and not revoked
    /// stay within it. A percentage coupon needs a `cap` to have a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Decimal>,
    /// Price in points when members exchange points for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_price: Option<PointsPrice>,
}

/// Points paid for a coupon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsPrice {
    pub point_type: String,
    pub points: i64,
}

/// What a coupon gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Benefit {
    /// A fixed amount off (never more than the eligible amount).
    FixedAmount { amount: Decimal },
    /// `percent` % off the eligible amount, rounded half away from zero to
    /// cents, then capped at `cap`.
    Percentage {
        percent: Decimal,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<Decimal>,
    },
    /// Free shipping; `value` is what it costs the shop (campaign cost).
    FreeShipping {
        #[serde(default)]
        value: Decimal,
    },
    /// A gift item; `value` is what it costs the shop.
    Gift {
        sku: String,
        #[serde(default)]
        value: Decimal,
    },
}

impl CouponTemplate {
    /// The most one coupon of this template can cost the shop: the fixed
    /// amount, the percentage's cap, the shipping or gift value. `None` for a
    /// percentage without a cap (unbounded).
    pub fn face_value(&self) -> Option<Decimal> {
        match &self.benefit {
            Benefit::FixedAmount { amount } => Some(*amount),
            Benefit::Percentage { cap, .. } => *cap,
            Benefit::FreeShipping { value } | Benefit::Gift { value, .. } => Some(*value),
        }
    }

    /// The key of this template's programme-wide tally in the store.
    pub fn tally_key(&self) -> String {
        format!("coupon_template:{}", self.id)
    }
}

/// How much of a template's stock and budget is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateUsage {
    pub template: String,
    /// Coupons issued and not revoked.
    pub issued: u64,
    pub total_limit: Option<u32>,
    /// Coupons that can still be issued (`None`: no limit).
    pub remaining: Option<u64>,
    /// Face value of the coupons issued and not revoked.
    pub committed: Decimal,
    pub budget: Option<Decimal>,
    /// Budget left (`None`: no budget).
    pub budget_remaining: Option<Decimal>,
}

impl TemplateUsage {
    /// No further coupon of the template fits (stock or budget), given one
    /// coupon's face value.
    pub fn is_exhausted(&self, face_value: Option<Decimal>) -> bool {
        self.remaining == Some(0) || self.budget_remaining.is_some_and(|left| left < face_value.unwrap_or_default())
    }
}

/// When a coupon can be used, in the programme zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Validity {
    /// From the start of `from` to the end of `until` (local dates, inclusive).
    Fixed { from: NaiveDate, until: NaiveDate },
    /// From issue to the end of the `days`-th local day after the issue day
    /// (issued 1 March with 7 days: usable through 8 March).
    DaysFromIssue { days: u32 },
}

impl Validity {
    /// `(valid_from, expires_at)` of a coupon issued at `issued_at`.
    pub fn window(&self, tz: Tz, issued_at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            Validity::Fixed { from, until } => (start_of_day(tz, *from), start_of_day(tz, *until + Duration::days(1))),
            Validity::DaysFromIssue { days } => {
                let last = local_date(tz, issued_at) + Duration::days(i64::from(*days) + 1);
                (issued_at, start_of_day(tz, last))
            }
        }
    }
}

/// A coupon a member holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    pub code: String,
    pub template: String,
    pub issued_at: DateTime<Utc>,
    pub valid_from: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The points redemption that paid for it (exchanged for points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redemption_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set while redeemed on an order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed: Option<Use>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
    /// Times it came back from a refunded or cancelled order.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub returned: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A coupon's use on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    pub order_id: String,
    pub at: DateTime<Utc>,
    pub discount: Decimal,
}

/// Why and when a coupon was withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// Where a coupon stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponStatus {
    Issued,
    Redeemed,
    Expired,
    Revoked,
}

impl Coupon {
    /// Redeemed and revoked coupons stay so; an issued one expires at `expires_at`.
    pub fn status(&self, now: DateTime<Utc>) -> CouponStatus {
        if self.revoked.is_some() {
            CouponStatus::Revoked
        } else if self.redeemed.is_some() {
            CouponStatus::Redeemed
        } else if now >= self.expires_at {
            CouponStatus::Expired
        } else {
            CouponStatus::Issued
        }
    }
}

/// A coupon with its status at an instant ([`crate::Engine::coupons`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponView {
    #[serde(flatten)]
    pub coupon: Coupon,
    pub status: CouponStatus,
}

/// What is being paid for: an order about to be placed, or a recorded one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cart {
    pub amount: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<OrderItem>,
}

/// The amount a template can apply to on a cart, or why it cannot apply.
pub fn eligible_amount(template: &CouponTemplate, cart: &Cart) -> std::result::Result<Decimal, String> {
    if !template.channels.is_empty() {
        match &cart.channel {
            Some(c) if template.channels.contains(c) => {}
            Some(c) => return Err(format!("not valid on channel {c:?} (only {:?})", template.channels)),
            None => return Err(format!("only valid on channels {:?}; the order has none", template.channels)),
        }
    }
    let base = if template.categories.is_empty() {
        cart.amount
    } else {
        let sum: Decimal = cart
            .items
            .iter()
            .filter(|i| i.category.as_ref().is_some_and(|c| template.categories.contains(c)))
            .map(|i| i.price * Decimal::from(i.qty))
            .sum();
        if sum.is_zero() {
            return Err(format!("no items in categories {:?}", template.categories));
        }
        sum.min(cart.amount)
    };
    if let Some(min) = template.min_spend {
        if base < min {
            return Err(format!("needs a spend of {min}, the eligible amount is {base}"));
        }
    }
    Ok(base)
}

/// The money off a cart: never negative, never more than the eligible amount.
pub fn discount(template: &CouponTemplate, cart: &Cart) -> std::result::Result<Decimal, String> {
    let base = eligible_amount(template, cart)?;
    Ok(match &template.benefit {
        Benefit::FixedAmount { amount } => (*amount).min(base),
        Benefit::Percentage { percent, cap } => {
            let off = (base * *percent / Decimal::ONE_HUNDRED)
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
                .min(base);
            cap.map_or(off, |c| off.min(c))
        }
        Benefit::FreeShipping { .. } | Benefit::Gift { .. } => Decimal::ZERO,
    })
}

/// What a coupon costs the shop when used with `discount` off.
pub fn cost(template: &CouponTemplate, discount: Decimal) -> Decimal {
    match &template.benefit {
        Benefit::FreeShipping { value } | Benefit::Gift { value, .. } => *value,
        _ => discount,
    }
}

/// Checks a template (programme validation); `at` is its path.
pub(crate) fn validate_template(t: &CouponTemplate, at: &str) -> Result<()> {
    let money = |v: Decimal, field: &str| -> Result<()> {
        if v.is_sign_negative() {
            return Err(CrmError::config(format!("{at}.{field}"), "must not be negative"));
        }
        Ok(())
    };
    match &t.benefit {
        Benefit::FixedAmount { amount } => {
            if *amount <= Decimal::ZERO {
                return Err(CrmError::config(format!("{at}.benefit.amount"), "must be positive"));
            }
        }
        Benefit::Percentage { percent, cap } => {
            if *percent <= Decimal::ZERO || *percent > Decimal::ONE_HUNDRED {
                return Err(CrmError::config(format!("{at}.benefit.percent"), "must be in (0, 100]"));
            }
            if let Some(c) = cap {
                if *c <= Decimal::ZERO {
                    return Err(CrmError::config(format!("{at}.benefit.cap"), "must be positive"));
                }
            }
        }
        Benefit::FreeShipping { value } => money(*value, "benefit.value")?,
        Benefit::Gift { sku, value } => {
            if sku.trim().is_empty() {
                return Err(CrmError::config(format!("{at}.benefit.sku"), "must not be empty"));
            }
            money(*value, "benefit.value")?;
        }
    }
    match &t.validity {
        Validity::Fixed { from, until } if until < from => {
            return Err(CrmError::config(format!("{at}.validity.until"), "is before from"));
        }
        Validity::DaysFromIssue { days: 0 } => {
            return Err(CrmError::config(format!("{at}.validity.days"), "must be at least 1"));
        }
        _ => {}
    }
    if let Some(m) = t.min_spend {
        money(m, "min_spend")?;
    }
    if t.per_member_limit == Some(0) {
        return Err(CrmError::config(
            format!("{at}.per_member_limit"),
            "must be at least 1 (leave it out for no limit)",
        ));
    }
    if t.total_limit == Some(0) {
        return Err(CrmError::config(format!("{at}.total_limit"), "must be at least 1 (leave it out for no limit)"));
    }
    if let Some(b) = t.budget {
        if b <= Decimal::ZERO {
            return Err(CrmError::config(format!("{at}.budget"), "must be positive"));
        }
        if t.face_value().is_none() {
            return Err(CrmError::config(format!("{at}.budget"), "needs a bounded coupon: give the percentage a cap"));
        }
    }
    if let Some(p) = &t.points_price {
        if p.points <= 0 {
            return Err(CrmError::config(format!("{at}.points_price.points"), "must be positive"));
        }
    }
    Ok(())
}

/// Checks the coupon section; `spendable` are the programme's spendable point types.
pub(crate) fn validate(cfg: &CouponConfig, spendable: &BTreeSet<&str>) -> Result<()> {
    let mut ids = BTreeSet::new();
    for (i, t) in cfg.templates.iter().enumerate() {
        let at = format!("coupons.templates[{i}]");
        crate::program::check_id(&t.id, &format!("{at}.id"))?;
        if !ids.insert(t.id.as_str()) {
            return Err(CrmError::config(format!("{at}.id"), format!("duplicate coupon template {:?}", t.id)));
        }
        validate_template(t, &at)?;
        if let Some(p) = &t.points_price {
            if !spendable.contains(p.point_type.as_str()) {
                return Err(CrmError::config(
                    format!("{at}.points_price.point_type"),
                    format!("{:?} is not a spendable point type", p.point_type),
                ));
            }
        }
    }
    let share = cfg.checkout.max_points_share;
    if share.is_sign_negative() || share > Decimal::ONE {
        return Err(CrmError::config("coupons.checkout.max_points_share", "must be in [0, 1]"));
    }
    if let Some(pt) = &cfg.checkout.point_type {
        if !spendable.contains(pt.as_str()) {
            return Err(CrmError::config(
                "coupons.checkout.point_type",
                format!("{pt:?} is not a spendable point type"),
            ));
        }
    }
    Ok(())
}

/// One coupon that applies to a cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub code: String,
    pub template: String,
    pub discount: Decimal,
    pub benefit: Benefit,
    pub expires_at: DateTime<Utc>,
}

/// A coupon the member holds that does not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotApplicable {
    pub code: String,
    pub template: String,
    pub reason: String,
}

/// Points the member may spend on the cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsOffer {
    pub point_type: String,
    pub available: i64,
    /// At most this many points (the share cap, the balance, whole points).
    pub max_points: i64,
    /// Their money value.
    pub value: Decimal,
}

/// What a checkout can offer a member for a cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// Applicable coupons, best first (largest discount, then soonest expiry, then code).
    pub coupons: Vec<Offer>,
    pub not_applicable: Vec<NotApplicable>,
    /// The code of the best coupon.
    pub best: Option<String>,
    /// Amount left after the best coupon.
    pub amount_after_coupon: Decimal,
    pub points: Option<PointsOffer>,
}

/// Ranks offers best first: largest discount, then the one expiring soonest, then code.
pub fn rank(offers: &mut [Offer]) {
    offers.sort_by(|a, b| b.discount.cmp(&a.discount).then(a.expires_at.cmp(&b.expires_at)).then(a.code.cmp(&b.code)));
}

/// Points payable on `amount`: `share` of it at `value_per_point`, whole points, at most `available`.
pub fn points_cap(amount: Decimal, share: Decimal, value_per_point: Decimal, available: i64) -> i64 {
    if value_per_point <= Decimal::ZERO || amount <= Decimal::ZERO || available <= 0 {
        return 0;
    }
    (amount * share / value_per_point).floor().to_i64().unwrap_or(i64::MAX).clamp(0, available)
}

// ----- codes ------------------------------------------------------------------

fn index(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|i| i as u32)
}

/// The check character: `Σ (i + 1) · value(body[i]) mod 31`. Because 31 is
/// prime and the weights 1..=12 are distinct and non-zero modulo 31, any one
/// substituted character and any swap of two different neighbours (the check
/// character included) changes it.
fn check_char(body: &[u8]) -> u8 {
    let n = ALPHABET.len() as u32;
    let sum: u32 = body.iter().enumerate().map(|(i, &c)| (i as u32 + 1) * index(c).expect("alphabet character")).sum();
    ALPHABET[(sum % n) as usize]
}

/// Normalises a code as typed (case, spaces and dashes ignored) and checks
/// its characters and its check character.
pub fn check_code(input: &str) -> Result<String> {
    let cleaned: Vec<u8> =
        input.bytes().filter(|b| !matches!(b, b' ' | b'-')).map(|b| b.to_ascii_uppercase()).collect();
    if cleaned.len() != CODE_BODY + 1 {
        return Err(CrmError::invalid(
            "code",
            format!("must have {} characters, got {}", CODE_BODY + 1, cleaned.len()),
        ));
    }
    if let Some(bad) = cleaned.iter().find(|&&b| index(b).is_none()) {
        return Err(CrmError::invalid("code", format!("{:?} is not a code character", *bad as char)));
    }
    let (body, check) = cleaned.split_at(CODE_BODY);
    if check_char(body) != check[0] {
        return Err(CrmError::invalid("code", "the check character does not match (mistyped?)"));
    }
    Ok(String::from_utf8(cleaned).expect("ASCII"))
}

/// `n` distinct codes from the operating system's random source.
pub fn generate_codes(n: usize) -> Result<Vec<String>> {
    let mut codes = Vec::with_capacity(n);
    let mut seen = HashSet::with_capacity(n);
    // 248 = 8 × 31: bytes below it map uniformly onto the alphabet.
    let mut buf = vec![0u8; (n * CODE_BODY * 5 / 4).max(64)];
    let mut pos = buf.len();
    let mut next = || -> Result<u8> {
        loop {
            if pos == buf.len() {
                getrandom::fill(&mut buf)
                    .map_err(|e| CrmError::Store(format!("operating system random source: {e}")))?;
                pos = 0;
            }
            let b = buf[pos];
            pos += 1;
            if b < 248 {
                return Ok(ALPHABET[(b % 31) as usize]);
            }
        }
    };
    while codes.len() < n {
        let mut code = Vec::with_capacity(CODE_BODY + 1);
        for _ in 0..CODE_BODY {
            code.push(next()?);
        }
        code.push(check_char(&code));
        let code = String::from_utf8(code).expect("ASCII");
        if seen.insert(code.clone()) {
            codes.push(code);
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn template(benefit: Benefit) -> CouponTemplate {
        CouponTemplate {
            id: "t".into(),
            name: None,
            benefit,
            validity: Validity::DaysFromIssue { days: 7 },
            min_spend: None,
            channels: vec![],
            categories: vec![],
            per_member_limit: None,
            total_limit: None,
            budget: None,
            points_price: None,
        }
    }

    fn cart(amount: i64) -> Cart {
        Cart { amount: Decimal::new(amount, 2), channel: None, items: vec![] }
    }

    #[test]
    fn percentage_rounds_half_away_from_zero_then_caps() {
        let t = template(Benefit::Percentage { percent: Decimal::new(15, 0), cap: None });
        // 15% of 10.10 = 1.515 -> 1.52
        assert_eq!(discount(&t, &cart(1010)).unwrap(), Decimal::new(152, 2));
        let t = template(Benefit::Percentage { percent: Decimal::new(15, 0), cap: Some(Decimal::ONE) });
        assert_eq!(discount(&t, &cart(1010)).unwrap(), Decimal::ONE);
    }

    #[test]
    fn fixed_amount_never_exceeds_the_amount() {
        let t = template(Benefit::FixedAmount { amount: Decimal::new(20, 0) });
        assert_eq!(discount(&t, &cart(1250)).unwrap(), Decimal::new(1250, 2));
    }

    #[test]
    fn days_from_issue_ends_at_local_midnight() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let issued = Utc.with_ymd_and_hms(2024, 2, 29, 20, 0, 0).unwrap(); // 1 March 04:00 local
        let (from, until) = Validity::DaysFromIssue { days: 7 }.window(tz, issued);
        assert_eq!(from, issued);
        assert_eq!(until, Utc.with_ymd_and_hms(2024, 3, 8, 16, 0, 0).unwrap()); // 9 March 00:00 local
    }

    #[test]
    fn check_character_catches_substitutions_and_swaps() {
        let code = generate_codes(1).unwrap().remove(0);
        let b = code.as_bytes();
        for i in 0..b.len() {
            for &c in ALPHABET.iter().filter(|&&c| c != b[i]) {
                let mut m = b.to_vec();
                m[i] = c;
                assert!(check_code(std::str::from_utf8(&m).unwrap()).is_err());
            }
            if i + 1 < b.len() && b[i] != b[i + 1] {
                let mut m = b.to_vec();
                m.swap(i, i + 1);
                assert!(check_code(std::str::from_utf8(&m).unwrap()).is_err(), "swap at {i} of {code}");
            }
        }
    }

    #[test]
    fn points_cap_takes_the_share_the_value_and_the_balance() {
        // 50% of 35.00 at 0.01 per point = 1750 points.
        assert_eq!(points_cap(Decimal::new(3500, 2), half(), Decimal::new(1, 2), 10_000), 1750);
        assert_eq!(points_cap(Decimal::new(3500, 2), half(), Decimal::new(1, 2), 900), 900);
        assert_eq!(points_cap(Decimal::new(3500, 2), half(), Decimal::ZERO, 900), 0);
    }
}
