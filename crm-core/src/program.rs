//! The whole loyalty programme as one serde value: point types, earn rules,
//! bonuses, refund policy. Loaded from TOML or JSON, versioned, validated on
//! load; every error names the path of the offending field.
//!
//! ```
//! use crm_core::program::Program;
//! let p = Program::from_toml(r#"
//!     version = 1
//!     name = "Demo"
//!     timezone = "Asia/Shanghai"
//!     currency = "CNY"
//!     value_per_point = "0.01"
//!     [[point_types]]
//!     id = "reward"
//!     expiry = { type = "days_after_earning", days = 365 }
//!     [[earn.rules]]
//!     id = "base"
//!     point_type = "reward"
//!     points_per_unit = "1"
//!     rounding = "floor"
//! "#).unwrap();
//! assert_eq!(p.point_types[0].id, "reward");
//!
//! let err = Program::from_json(r#"{"version": 1, "name": "x", "timezone": "Mars/Olympus"}"#).unwrap_err();
//! assert_eq!(err.field(), Some("timezone"));
//! ```

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::lifecycle::LifecycleConfig;
use crate::outreach::OutreachConfig;
use crate::tier::TierLadder;

/// Configuration schema version this build understands.
pub const PROGRAM_SCHEMA_VERSION: u32 = 1;

/// A complete loyalty programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// Schema version of this configuration (currently 1).
    pub version: u32,
    /// Human-readable name.
    pub name: String,
    /// Programme time zone (IANA name): days, months and member days are
    /// counted here unless a member has a zone of their own.
    #[serde(with = "tz_serde")]
    pub timezone: Tz,
    /// ISO 4217 currency of order amounts.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Money value of one spendable point, for liability reports.
    #[serde(default)]
    pub value_per_point: Decimal,
    /// Members are created on their first order when true.
    #[serde(default = "yes")]
    pub auto_enroll: bool,
    /// Point types: spendable reward points and non-spendable growth points.
    #[serde(default)]
    pub point_types: Vec<PointType>,
    /// Earning rules and action bonuses.
    #[serde(default)]
    pub earn: EarnConfig,
    /// What happens to points when orders are refunded.
    #[serde(default)]
    pub refunds: RefundPolicy,
    /// Tier ladder (会员等级); none: no tiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<TierLadder>,
    /// Lifecycle stage thresholds; when set, stage transitions are recorded
    /// (stage queries work without it, with the default thresholds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleConfig>,
    /// Triggered outreach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outreach: Option<OutreachConfig>,
    /// Coupon templates and checkout rules (优惠券); none: no coupons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupons: Option<crate::coupon::CouponConfig>,
}

fn default_currency() -> String {
    "CNY".to_string()
}
fn yes() -> bool {
    true
}

/// One kind of points in the programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointType {
    /// Identifier used by rules and commands (`reward`, `growth`).
    pub id: String,
    /// Spendable points can be redeemed; non-spendable (growth/qualifying)
    /// points only count towards tiers.
    #[serde(default = "yes")]
    pub spendable: bool,
    /// Days a newly earned lot stays pending (return window) before it can
    /// be spent. Counted in calendar days in the programme zone.
    #[serde(default)]
    pub pending_days: u32,
    /// When lots of this type expire.
    #[serde(default)]
    pub expiry: ExpiryPolicy,
}

/// When earned points expire. Every boundary is a local midnight in the
/// programme zone, so a lot is valid through the whole last day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ExpiryPolicy {
    /// Points never expire.
    #[default]
    None,
    /// Valid through the `days`-th calendar day after the day earned.
    DaysAfterEarning { days: u32 },
    /// Valid through the end of the `months`-th month after the month earned
    /// (`months = 0`: end of the month earned).
    EndOfNthMonth { months: u32 },
    /// Valid through 31 December of the year after the year earned.
    EndOfFollowingYear,
    /// All open lots expire after `days` days without earning or spending.
    Inactivity { days: u32 },
}

/// Rounding applied once per order and rule to the raw points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Towards negative infinity (the usual "1 point per full 1.00").
    #[default]
    Floor,
    /// Towards positive infinity.
    Ceil,
    /// Nearest, .5 away from zero.
    HalfUp,
    /// Nearest, .5 towards zero.
    HalfDown,
    /// Nearest, .5 to even (banker's rounding).
    HalfEven,
}

impl Rounding {
    /// Round a non-negative decimal to whole points.
    pub fn apply(self, raw: Decimal) -> i64 {
        let strategy = match self {
            Rounding::Floor => RoundingStrategy::ToNegativeInfinity,
            Rounding::Ceil => RoundingStrategy::ToPositiveInfinity,
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfDown => RoundingStrategy::MidpointTowardZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
        };
        let r = raw.round_dp_with_strategy(0, strategy);
        i64::try_from(r).unwrap_or(i64::MAX)
    }
}

/// Earning configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarnConfig {
    /// Rate-based rules applied to paid orders.
    #[serde(default)]
    pub rules: Vec<EarnRule>,
    /// Fixed bonuses for actions.
    #[serde(default)]
    pub bonuses: Vec<Bonus>,
}

/// How several applicable multipliers combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stacking {
    /// Multiply all applicable factors (2x channel on a 3x day = 6x).
    #[default]
    Multiply,
    /// Only the highest applicable factor counts.
    Highest,
}

/// A rate-based earning rule: `points = round(amount * points_per_unit * factors)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarnRule {
    /// Identifier, unique in the programme.
    pub id: String,
    /// Point type credited.
    pub point_type: String,
    /// Points per 1.00 of order amount.
    pub points_per_unit: Decimal,
    /// Rounding mode for the per-order total.
    #[serde(default)]
    pub rounding: Rounding,
    /// Multipliers that apply when their condition holds.
    #[serde(default)]
    pub multipliers: Vec<Multiplier>,
    /// How multipliers combine.
    #[serde(default)]
    pub stacking: Stacking,
    /// Maximum points from this rule for one order.
    #[serde(default)]
    pub per_order_cap: Option<i64>,
    /// Maximum points from this rule per member per local day.
    #[serde(default)]
    pub per_day_cap: Option<i64>,
    /// Maximum points from this rule per member per local calendar month.
    #[serde(default)]
    pub per_month_cap: Option<i64>,
    /// Whether the member's tier multiplier (`benefits.points_multiplier`)
    /// applies to this rule, as one more order-level factor.
    #[serde(default = "yes")]
    pub tier_multiplier: bool,
}

/// A factor applied when a condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multiplier {
    /// When the factor applies.
    pub when: Condition,
    /// The factor (e.g. `"2"` doubles the points).
    pub factor: Decimal,
}

/// Condition of a multiplier. Category conditions apply per order line;
/// every other condition applies to the whole order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Condition {
    /// The order came through one of these channels.
    Channel { channels: Vec<String> },
    /// The order was placed in one of these stores.
    Store { stores: Vec<String> },
    /// The order line belongs to one of these categories.
    Category { categories: Vec<String> },
    /// The order falls in the member's birthday month (programme zone).
    BirthdayMonth,
    /// The order falls on this day of the month (programme zone), the
    /// monthly member day (会员日). Day 31 means the last day in short months.
    MemberDay { day: u32 },
    /// The order falls in `[from, to)`.
    DateRange { from: DateTime<Utc>, to: DateTime<Utc> },
    /// The member carries this tag.
    Tag { tag: String },
    /// The member matches a segment rule ([`crate::segment`], text or JSON
    /// form) as of the order, the order itself included:
    /// `{ type = "segment", rule = 'tier >= "gold" and orders(365d) >= 3' }`.
    Segment { rule: crate::segment::Rule },
}

/// Actions that can earn a fixed bonus.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Member creation.
    SignUp,
    /// The member's first paid order.
    FirstOrder,
    /// A product review (reported through `record_action`).
    Review,
    /// The member completed their profile.
    ProfileCompleted,
    /// A host-defined action name.
    #[serde(untagged)]
    Custom(String),
}

/// A fixed bonus for an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bonus {
    /// Identifier, unique in the programme.
    pub id: String,
    /// Action that triggers it.
    pub action: Action,
    /// Point type credited.
    pub point_type: String,
    /// Points credited.
    pub points: i64,
    /// How often one member can receive it (sign-up and first order: once).
    #[serde(default)]
    pub max_per_member: Option<u32>,
}

/// Refund handling.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundPolicy {
    /// What to do when the points to claw back were already spent.
    #[serde(default)]
    pub clawback: ClawbackPolicy,
}

/// What to do when clawed-back points were already spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClawbackPolicy {
    /// Take what is missing from other open lots, and carry the rest as a
    /// negative balance that future earnings pay off.
    #[default]
    AllowNegative,
    /// Take what is missing from other open lots, never go below zero, and
    /// record the rest as a shortfall (written off).
    CapAtZero,
}

mod tz_serde {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<Tz>().map_err(|_| serde::de::Error::custom(format!("unknown IANA time zone {name:?}")))
    }
}

impl Program {
    /// Parse and validate a programme from JSON.
    pub fn from_json(text: &str) -> Result<Program> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| CrmError::config(format!("line {} column {}", e.line(), e.column()), e.to_string()))?;
        Program::from_value(value)
    }

    /// Parse and validate a programme from TOML.
    pub fn from_toml(text: &str) -> Result<Program> {
        let value: serde_json::Value = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "document".into());
            CrmError::config(at, e.message().to_string())
        })?;
        Program::from_value(value)
    }

    /// Read a programme file; `.toml` is TOML, anything else JSON.
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Program> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| CrmError::config(path.display().to_string(), e.to_string()))?;
        if path.extension().is_some_and(|e| e == "toml") {
            Program::from_toml(&text)
        } else {
            Program::from_json(&text)
        }
    }

    /// Build and validate a programme from an already parsed JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Program> {
        let program: Program = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { "programme".into() } else { path };
            CrmError::config(path, e.inner().to_string())
        })?;
        program.validate()?;
        Ok(program)
    }

    /// Serialise to pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("programme serialises")
    }

    /// Check the cross-field rules serde cannot express.
    pub fn validate(&self) -> Result<()> {
        if self.version != PROGRAM_SCHEMA_VERSION {
            return Err(CrmError::config(
                "version",
                format!("unsupported schema version {}, expected {PROGRAM_SCHEMA_VERSION}", self.version),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(CrmError::config("name", "must not be empty"));
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(CrmError::config("currency", "must be a three-letter ISO 4217 code"));
        }
        if self.value_per_point.is_sign_negative() {
            return Err(CrmError::config("value_per_point", "must not be negative"));
        }
        let mut types = BTreeSet::new();
        for (i, t) in self.point_types.iter().enumerate() {
            let at = format!("point_types[{i}]");
            check_id(&t.id, &format!("{at}.id"))?;
            if !types.insert(t.id.as_str()) {
                return Err(CrmError::config(format!("{at}.id"), format!("duplicate point type {:?}", t.id)));
            }
            match t.expiry {
                ExpiryPolicy::DaysAfterEarning { days: 0 } | ExpiryPolicy::Inactivity { days: 0 } => {
                    return Err(CrmError::config(format!("{at}.expiry.days"), "must be at least 1"));
                }
                _ => {}
            }
        }
        let point_type = |id: &str, at: String| -> Result<()> {
            if types.contains(id) {
                Ok(())
            } else {
                Err(CrmError::config(at, format!("unknown point type {id:?}")))
            }
        };
        let mut rule_ids = BTreeSet::new();
        for (i, r) in self.earn.rules.iter().enumerate() {
            let at = format!("earn.rules[{i}]");
            check_id(&r.id, &format!("{at}.id"))?;
            if !rule_ids.insert(r.id.as_str()) {
                return Err(CrmError::config(format!("{at}.id"), format!("duplicate rule {:?}", r.id)));
            }
            point_type(&r.point_type, format!("{at}.point_type"))?;
            if r.points_per_unit.is_sign_negative() {
                return Err(CrmError::config(format!("{at}.points_per_unit"), "must not be negative"));
            }
            for (name, cap) in
                [("per_order_cap", r.per_order_cap), ("per_day_cap", r.per_day_cap), ("per_month_cap", r.per_month_cap)]
            {
                if cap.is_some_and(|c| c < 0) {
                    return Err(CrmError::config(format!("{at}.{name}"), "must not be negative"));
                }
            }
            for (j, m) in r.multipliers.iter().enumerate() {
                let mat = format!("{at}.multipliers[{j}]");
                if m.factor <= Decimal::ZERO || m.factor > Decimal::from(1000) {
                    return Err(CrmError::config(format!("{mat}.factor"), "must be greater than 0 and at most 1000"));
                }
                match &m.when {
                    Condition::MemberDay { day } if !(1..=31).contains(day) => {
                        return Err(CrmError::config(format!("{mat}.when.day"), "must be between 1 and 31"));
                    }
                    Condition::Segment { rule } if rule.fields().iter().any(|f| f.is_rfm()) => {
                        return Err(CrmError::config(
                            format!("{mat}.when.rule"),
                            "RFM fields are relative to all members and cannot be used in earn rules",
                        ));
                    }
                    Condition::DateRange { from, to } if from >= to => {
                        return Err(CrmError::config(format!("{mat}.when.to"), "must be after `from`"));
                    }
                    Condition::Channel { channels: v }
                    | Condition::Store { stores: v }
                    | Condition::Category { categories: v }
                        if v.is_empty() =>
                    {
                        return Err(CrmError::config(format!("{mat}.when"), "list must not be empty"));
                    }
                    _ => {}
                }
            }
        }
        let mut bonus_ids = BTreeSet::new();
        for (i, b) in self.earn.bonuses.iter().enumerate() {
            let at = format!("earn.bonuses[{i}]");
            check_id(&b.id, &format!("{at}.id"))?;
            if !bonus_ids.insert(b.id.as_str()) {
                return Err(CrmError::config(format!("{at}.id"), format!("duplicate bonus {:?}", b.id)));
            }
            point_type(&b.point_type, format!("{at}.point_type"))?;
            if b.points <= 0 {
                return Err(CrmError::config(format!("{at}.points"), "must be positive"));
            }
        }
        let type_ids: Vec<&str> = self.point_types.iter().map(|t| t.id.as_str()).collect();
        if let Some(t) = &self.tiers {
            t.validate(&type_ids)?;
        }
        if let Some(l) = &self.lifecycle {
            l.validate()?;
        }
        if let Some(o) = &self.outreach {
            let templates: Vec<&str> =
                self.coupons.iter().flat_map(|c| c.templates.iter().map(|t| t.id.as_str())).collect();
            o.validate(&type_ids, self.tiers.is_some(), &templates)?;
        }
        if let Some(c) = &self.coupons {
            let spendable: BTreeSet<&str> =
                self.point_types.iter().filter(|t| t.spendable).map(|t| t.id.as_str()).collect();
            crate::coupon::validate(c, &spendable)?;
        }
        Ok(())
    }

    /// Lifecycle thresholds in force (the defaults when none are configured).
    pub fn lifecycle_or_default(&self) -> LifecycleConfig {
        self.lifecycle.clone().unwrap_or_default()
    }

    /// The point type with this id.
    pub fn point_type(&self, id: &str) -> Option<&PointType> {
        self.point_types.iter().find(|t| t.id == id)
    }

    /// The point type with this id, or a validation error naming `field`.
    pub fn require_point_type(&self, id: &str, field: &str) -> Result<&PointType> {
        self.point_type(id).ok_or_else(|| CrmError::invalid(field, format!("unknown point type {id:?}")))
    }

    /// The default programme used by the demo and replay examples: one
    /// spendable point per full 1.00 of order amount, rounded down per order,
    /// valid for 365 days, in the `UTC` zone and `USD` (CDNOW's currency).
    pub fn default_demo() -> Program {
        Program {
            version: PROGRAM_SCHEMA_VERSION,
            name: "Default".into(),
            timezone: Tz::UTC,
            currency: "USD".into(),
            value_per_point: Decimal::new(1, 2),
            auto_enroll: true,
            point_types: vec![PointType {
                id: "reward".into(),
                spendable: true,
                pending_days: 0,
                expiry: ExpiryPolicy::DaysAfterEarning { days: 365 },
            }],
            earn: EarnConfig {
                rules: vec![EarnRule {
                    id: "base".into(),
                    point_type: "reward".into(),
                    points_per_unit: Decimal::ONE,
                    rounding: Rounding::Floor,
                    multipliers: vec![],
                    stacking: Stacking::Multiply,
                    per_order_cap: None,
                    per_day_cap: None,
                    per_month_cap: None,
                    tier_multiplier: true,
                }],
                bonuses: vec![],
            },
            refunds: RefundPolicy::default(),
            tiers: None,
            lifecycle: None,
            outreach: None,
            coupons: None,
        }
    }
}

pub(crate) fn check_id(id: &str, at: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(CrmError::config(at, "must be 1-64 characters of a-z, A-Z, 0-9, _ or -"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "version": 1, "name": "T", "timezone": "Asia/Shanghai", "currency": "CNY",
            "point_types": [{"id": "reward"}, {"id": "growth", "spendable": false}],
            "earn": {"rules": [
                {"id": "a", "point_type": "reward", "points_per_unit": "1"},
                {"id": "b", "point_type": "growth", "points_per_unit": "1"},
                {"id": "c", "point_type": "reward", "points_per_unit": "1",
                 "multipliers": [{"when": {"type": "channel", "channels": ["app"]}, "factor": "2"}]}
            ]}
        })
    }

    #[test]
    fn valid_programme_loads_and_round_trips() {
        let p = Program::from_value(base()).unwrap();
        let again = Program::from_json(&p.to_json()).unwrap();
        assert_eq!(p, again);
    }

    #[test]
    fn bad_multiplier_names_its_path() {
        let mut v = base();
        v["earn"]["rules"][2]["multipliers"][0]["factor"] = "0".into();
        let e = Program::from_value(v).unwrap_err();
        assert_eq!(e.field(), Some("earn.rules[2].multipliers[0].factor"));
        assert_eq!(e.code(), "config_error");
    }

    #[test]
    fn type_error_names_its_path() {
        let mut v = base();
        v["earn"]["rules"][2]["multipliers"][0]["factor"] = serde_json::json!({"x": 1});
        let e = Program::from_value(v).unwrap_err();
        assert_eq!(e.field(), Some("earn.rules[2].multipliers[0].factor"));
    }

    #[test]
    fn unknown_point_type_and_zone_are_rejected() {
        let mut v = base();
        v["earn"]["rules"][1]["point_type"] = "gold".into();
        assert_eq!(Program::from_value(v).unwrap_err().field(), Some("earn.rules[1].point_type"));
        let mut v = base();
        v["timezone"] = "Asia/Atlantis".into();
        assert_eq!(Program::from_value(v).unwrap_err().field(), Some("timezone"));
    }

    #[test]
    fn unknown_field_and_version_are_rejected() {
        let mut v = base();
        v["earn"]["rules"][0]["multiplyer"] = "2".into();
        assert_eq!(Program::from_value(v).unwrap_err().field(), Some("earn.rules[0].multiplyer"));
        let mut v = base();
        v["version"] = 7.into();
        assert_eq!(Program::from_value(v).unwrap_err().field(), Some("version"));
    }

    #[test]
    fn segment_conditions_parse_and_reject_rfm_fields() {
        let mut v = base();
        v["earn"]["rules"][2]["multipliers"][0]["when"] =
            serde_json::json!({"type": "segment", "rule": "orders(365d) >= 2 and tier == \"gold\""});
        Program::from_value(v.clone()).unwrap();
        v["earn"]["rules"][2]["multipliers"][0]["when"]["rule"] = "rfm.r >= 4".into();
        assert_eq!(Program::from_value(v.clone()).unwrap_err().field(), Some("earn.rules[2].multipliers[0].when.rule"));
        v["earn"]["rules"][2]["multipliers"][0]["when"]["rule"] = "orders(365d) >=".into();
        assert_eq!(Program::from_value(v).unwrap_err().code(), "config_error");
    }

    #[test]
    fn toml_syntax_error_points_at_line() {
        let e = Program::from_toml("version = 1\nname = \n").unwrap_err();
        assert_eq!(e.code(), "config_error");
        assert!(e.field().unwrap().starts_with("line 2"), "{e}");
    }

    #[test]
    fn rounding_modes_at_half() {
        let half = Decimal::new(25, 1); // 2.5
        assert_eq!(Rounding::Floor.apply(half), 2);
        assert_eq!(Rounding::Ceil.apply(half), 3);
        assert_eq!(Rounding::HalfUp.apply(half), 3);
        assert_eq!(Rounding::HalfDown.apply(half), 2);
        assert_eq!(Rounding::HalfEven.apply(half), 2);
        assert_eq!(Rounding::HalfEven.apply(Decimal::new(35, 1)), 4);
        assert_eq!(Rounding::Floor.apply(Decimal::new(9999, 4)), 0);
    }
}
