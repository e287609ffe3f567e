//! Evaluating a rule for one member, as soon as a fact arrives.
//!
//! The member's values come from a [`FieldSource`]: the engine answers from a
//! member snapshot, a host from whatever it holds, a test from
//! [`MemberValues`]. Each value is computed at an `as_of` the source chose, so
//! evaluation itself needs no clock.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use super::ast::{CmpOp, Rule, Value};
use super::field::{parse_date, Field};

/// One member's value for a field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Int(i64),
    /// Money, and the other exact decimals (`FieldType::Decimal`).
    Money(Decimal),
    Text(Cow<'a, str>),
    Date(NaiveDate),
    Bool(bool),
    TextSet(Cow<'a, BTreeSet<String>>),
    /// A custom attribute as the host stored it.
    Json(Cow<'a, Json>),
}

impl FieldValue<'_> {
    /// An owned copy, for storing in [`MemberValues`] or a column builder.
    pub fn into_owned(self) -> FieldValue<'static> {
        match self {
            FieldValue::Int(i) => FieldValue::Int(i),
            FieldValue::Money(d) => FieldValue::Money(d),
            FieldValue::Text(s) => FieldValue::Text(Cow::Owned(s.into_owned())),
            FieldValue::Date(d) => FieldValue::Date(d),
            FieldValue::Bool(b) => FieldValue::Bool(b),
            FieldValue::TextSet(s) => FieldValue::TextSet(Cow::Owned(s.into_owned())),
            FieldValue::Json(j) => FieldValue::Json(Cow::Owned(j.into_owned())),
        }
    }
}

/// Answers field lookups for one member at the source's `as_of`.
///
/// Return `None` for a value the member does not have (no region, never
/// ordered). A value of the wrong type for the field (text for `orders(90d)`)
/// is treated as missing, so a faulty source makes clauses false rather than
/// failing.
pub trait FieldSource {
    /// The member's value for `field`.
    fn value(&self, field: &Field) -> Option<FieldValue<'_>>;

    /// Position of a tier on the programme's ladder, lowest first; `None` for
    /// an unknown tier. Needed only by ordered tier comparisons
    /// (`tier >= "gold"`), which are false without a ladder.
    fn tier_rank(&self, tier: &str) -> Option<u32> {
        let _ = tier;
        None
    }
}

/// A ready-made [`FieldSource`]: values already computed, keyed by field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberValues {
    values: HashMap<Field, FieldValue<'static>>,
    tier_ladder: Vec<String>,
}

impl MemberValues {
    /// No values.
    pub fn new() -> MemberValues {
        MemberValues::default()
    }

    /// Set (or replace) a field's value.
    pub fn set(&mut self, field: Field, value: FieldValue<'_>) -> &mut MemberValues {
        self.values.insert(field, value.into_owned());
        self
    }

    /// Builder form of [`MemberValues::set`].
    pub fn with(mut self, field: Field, value: FieldValue<'_>) -> MemberValues {
        self.set(field, value);
        self
    }

    /// The programme's tiers, lowest first, for ordered tier comparisons.
    pub fn with_tier_ladder(mut self, ladder: impl IntoIterator<Item = impl Into<String>>) -> MemberValues {
        self.tier_ladder = ladder.into_iter().map(Into::into).collect();
        self
    }
}

impl FieldSource for MemberValues {
    fn value(&self, field: &Field) -> Option<FieldValue<'_>> {
        self.values.get(field).map(|v| match v {
            FieldValue::Text(s) => FieldValue::Text(Cow::Borrowed(s.as_ref())),
            FieldValue::TextSet(s) => FieldValue::TextSet(Cow::Borrowed(s.as_ref())),
            FieldValue::Json(j) => FieldValue::Json(Cow::Borrowed(j.as_ref())),
            other => other.clone(),
        })
    }

    fn tier_rank(&self, tier: &str) -> Option<u32> {
        self.tier_ladder.iter().position(|t| t == tier).and_then(|i| u32::try_from(i).ok())
    }
}

impl Rule {
    /// Whether the member described by `source` matches the rule.
    ///
    /// Never fails: missing or mistyped values make their clauses false.
    pub fn matches<S: FieldSource + ?Sized>(&self, source: &S) -> bool {
        let get = |field: &Field| source.value(field).filter(|v| fits(field, v));
        match self {
            Rule::And(rules) => rules.iter().all(|r| r.matches(source)),
            Rule::Or(rules) => rules.iter().any(|r| r.matches(source)),
            Rule::Not(inner) => !inner.matches(source),
            Rule::Compare { field, op, value } => get(field).is_some_and(|v| compare(field, &v, *op, value, source)),
            Rule::In { field, values } => {
                get(field).is_some_and(|v| values.iter().any(|lit| compare(field, &v, CmpOp::Eq, lit, source)))
            }
            Rule::Between { field, low, high } => get(field).is_some_and(|v| {
                compare(field, &v, CmpOp::Ge, low, source) && compare(field, &v, CmpOp::Le, high, source)
            }),
            Rule::Contains { field, value } => get(field).is_some_and(|v| contains(&v, value)),
            Rule::Exists { field } => get(field).is_some_and(|v| match v {
                FieldValue::TextSet(s) => !s.is_empty(),
                FieldValue::Json(j) => !j.is_null(),
                _ => true,
            }),
            Rule::Is { field } => matches!(get(field), Some(FieldValue::Bool(true))),
        }
    }
}

/// Whether a source's value has the field's type (anything else is missing).
pub(crate) fn fits(field: &Field, v: &FieldValue<'_>) -> bool {
    use super::FieldType as T;
    matches!(
        (field.field_type(), v),
        (T::Number, FieldValue::Int(_))
            | (T::Money | T::Decimal, FieldValue::Money(_))
            | (T::Text, FieldValue::Text(_))
            | (T::Date, FieldValue::Date(_))
            | (T::Bool, FieldValue::Bool(_))
            | (T::TextSet, FieldValue::TextSet(_))
            | (T::Dynamic, FieldValue::Json(_))
    )
}

/// `value op literal` for one member value; false across types.
fn compare<S: FieldSource + ?Sized>(field: &Field, v: &FieldValue<'_>, op: CmpOp, lit: &Value, src: &S) -> bool {
    let ord = match (v, lit) {
        (FieldValue::Text(a), Value::Text(b)) if *field == Field::Tier && op.is_ordering() => {
            match (src.tier_rank(a), src.tier_rank(b)) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => None,
            }
        }
        (FieldValue::Json(j), lit) => json_cmp(j, lit),
        (v, lit) => typed_cmp(v, lit),
    };
    ord.is_some_and(|o| op.holds(o))
}

/// Ordering of a typed member value against a checked literal of the same type.
fn typed_cmp(v: &FieldValue<'_>, lit: &Value) -> Option<Ordering> {
    Some(match (v, lit) {
        (FieldValue::Int(a), Value::Int(b)) => a.cmp(b),
        (FieldValue::Money(a), Value::Decimal(b)) => a.cmp(b),
        (FieldValue::Text(a), Value::Text(b)) => a.as_ref().cmp(b.as_str()),
        (FieldValue::Date(a), Value::Date(b)) => a.cmp(b),
        (FieldValue::Bool(a), Value::Bool(b)) => a.cmp(b),
        _ => return None,
    })
}

/// Custom attributes compare by the literal's type: numbers numerically
/// (integers and decimals alike), text as text, dates against ISO date
/// strings, bools only for (in)equality via their order. Anything else is
/// no match.
pub(crate) fn json_cmp(j: &Json, lit: &Value) -> Option<Ordering> {
    match (j, lit) {
        (Json::Number(n), Value::Int(_) | Value::Decimal(_)) => {
            let a = json_decimal(n)?;
            let b = match lit {
                Value::Int(i) => Decimal::from(*i),
                Value::Decimal(d) => *d,
                _ => return None,
            };
            Some(a.cmp(&b))
        }
        (Json::String(a), Value::Text(b)) => Some(a.as_str().cmp(b.as_str())),
        (Json::String(a), Value::Date(b)) => parse_date(a).map(|a| a.cmp(b)),
        (Json::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn json_decimal(n: &serde_json::Number) -> Option<Decimal> {
    if let Some(i) = n.as_i64() {
        return Some(Decimal::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(Decimal::from(u));
    }
    let s = n.to_string();
    Decimal::from_str_exact(&s).ok().or_else(|| Decimal::from_scientific(&s).ok())
}

/// `contains`: set membership, substring of text, element of a JSON array
/// (or substring of a JSON string).
pub(crate) fn contains(v: &FieldValue<'_>, lit: &Value) -> bool {
    match (v, lit) {
        (FieldValue::TextSet(set), Value::Text(t)) => set.contains(t),
        (FieldValue::Text(s), Value::Text(t)) => s.contains(t.as_str()),
        (FieldValue::Json(j), lit) => json_contains(j, lit),
        _ => false,
    }
}

pub(crate) fn json_contains(j: &Json, lit: &Value) -> bool {
    match (j, lit) {
        (Json::String(s), Value::Text(t)) => s.contains(t.as_str()),
        (Json::Array(items), lit) => items.iter().any(|item| json_cmp(item, lit) == Some(Ordering::Equal)),
        _ => false,
    }
}
