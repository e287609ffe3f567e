//! Evaluating a rule for every member at once, over columns.
//!
//! [`MemberColumns`] holds one contiguous column per field a rule reads (not
//! per-member objects). Each clause turns a whole column into a [`Bitmap`]
//! with a tight loop over plain integers, and `and` / `or` / `not` are
//! word-wise bit operations, so a five-clause rule over a million members is
//! a handful of passes over a few megabytes with no per-member dispatch.
//!
//! Representation, chosen so every clause is an integer test:
//! - numbers: `i64`; dates: days since the common era as `i32`;
//! - money: integers at one scale per column (e.g. cents), with a literal
//!   turned into an exact integer bound; columns whose values do not fit
//!   fall back to comparing `Decimal`s;
//! - text: dictionary codes (`u32`), so `tier in ("gold", "platinum")` is a
//!   table lookup per member and `tier >= "gold"` a rank lookup;
//! - tags and channels: one bitmap per distinct value, so `contains` is a copy;
//! - custom attributes: the JSON values, compared one by one (they are
//!   dynamically typed, and rarely the hot path).
//!
//! Missing values are tracked by a validity bitmap (or a null code), and
//! every clause is false on them, exactly as in one-member evaluation.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::Value as Json;

use super::ast::{CmpOp, Rule, Value};
use super::bitmap::Bitmap;
use super::eval::{json_cmp, json_contains, FieldSource, FieldValue};
use super::field::{Field, FieldType};
use crate::error::{CrmError, Result};
use crate::member::MemberId;

const NULL_CODE: u32 = u32::MAX;

/// Columns of member values, one row per member.
#[derive(Debug, Clone, Default)]
pub struct MemberColumns {
    ids: Vec<MemberId>,
    columns: HashMap<Field, Column>,
    tier_ladder: Vec<String>,
}

#[derive(Debug, Clone)]
enum Column {
    Int {
        values: Vec<i64>,
        valid: Bitmap,
    },
    /// Money as integers at `scale` decimal places.
    Scaled {
        values: Vec<i64>,
        scale: u32,
        valid: Bitmap,
    },
    /// Money that does not fit `Scaled`.
    Exact {
        values: Vec<Decimal>,
        valid: Bitmap,
    },
    Text {
        codes: Vec<u32>,
        dict: Dict,
    },
    Date {
        days: Vec<i32>,
        valid: Bitmap,
    },
    Bool {
        values: Bitmap,
        valid: Bitmap,
    },
    TextSet {
        dict: Dict,
        members: Vec<Bitmap>,
        nonempty: Bitmap,
    },
    Json(Vec<Option<Json>>),
}

/// Text dictionary: code -> text and text -> code.
#[derive(Debug, Clone, Default)]
struct Dict {
    texts: Vec<String>,
    codes: HashMap<String, u32>,
}

impl Dict {
    fn code_or_insert(&mut self, s: &str) -> u32 {
        if let Some(&c) = self.codes.get(s) {
            return c;
        }
        let c = u32::try_from(self.texts.len()).unwrap_or(NULL_CODE - 1);
        self.texts.push(s.to_string());
        self.codes.insert(s.to_string(), c);
        c
    }

    fn code(&self, s: &str) -> Option<u32> {
        self.codes.get(s).copied()
    }
}

impl MemberColumns {
    /// An empty table for these members (row `i` is `ids[i]`).
    pub fn new(ids: Vec<MemberId>) -> MemberColumns {
        MemberColumns { ids, columns: HashMap::new(), tier_ladder: Vec::new() }
    }

    /// Build the columns for `fields` from one [`FieldSource`] per member:
    /// the way to batch-evaluate members held as snapshots.
    pub fn from_sources<S: FieldSource>(
        fields: &[Field],
        rows: impl IntoIterator<Item = (MemberId, S)>,
    ) -> MemberColumns {
        let mut builders: Vec<Builder> = fields.iter().map(|f| Builder::new(f.field_type())).collect();
        let mut ids = Vec::new();
        for (id, src) in rows {
            ids.push(id);
            for (f, b) in fields.iter().zip(&mut builders) {
                b.push(src.value(f));
            }
        }
        let mut table = MemberColumns::new(ids);
        for (f, b) in fields.iter().zip(builders) {
            table.columns.insert(f.clone(), b.finish());
        }
        table
    }

    /// Number of members (rows).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The member of each row.
    pub fn ids(&self) -> &[MemberId] {
        &self.ids
    }

    /// Whether a column for `field` is present.
    pub fn has(&self, field: &Field) -> bool {
        self.columns.contains_key(field)
    }

    /// The programme's tiers, lowest first, for `tier >= "gold"`.
    pub fn set_tier_ladder(&mut self, ladder: impl IntoIterator<Item = impl Into<String>>) {
        self.tier_ladder = ladder.into_iter().map(Into::into).collect();
    }

    /// The members of the set bits of `bitmap`, in row order.
    pub fn members(&self, bitmap: &Bitmap) -> Vec<MemberId> {
        bitmap.ones_iter().filter_map(|i| self.ids.get(i).cloned()).collect()
    }

    fn add(
        &mut self,
        field: Field,
        ty: FieldType,
        values: impl IntoIterator<Item = Option<FieldValue<'static>>>,
    ) -> Result<()> {
        let want = field.field_type();
        if want != ty {
            return Err(CrmError::invalid(
                format!("columns.{field}"),
                format!("field is {}, the column holds {}", want.name(), ty.name()),
            ));
        }
        let mut b = Builder::new(ty);
        let mut n = 0usize;
        for v in values {
            b.push(v);
            n += 1;
        }
        if n != self.ids.len() {
            return Err(CrmError::invalid(
                format!("columns.{field}"),
                format!("has {n} values for {} members", self.ids.len()),
            ));
        }
        self.columns.insert(field, b.finish());
        Ok(())
    }

    /// Add (or replace) a number column: `orders(90d)`, `balance("reward")`, `rfm.r`, ...
    pub fn add_int(&mut self, field: Field, values: impl IntoIterator<Item = Option<i64>>) -> Result<()> {
        self.add(field, FieldType::Number, values.into_iter().map(|v| v.map(FieldValue::Int)))
    }

    /// Add a money column: `spend(365d)`.
    pub fn add_money(&mut self, field: Field, values: impl IntoIterator<Item = Option<Decimal>>) -> Result<()> {
        self.add(field, FieldType::Money, values.into_iter().map(|v| v.map(FieldValue::Money)))
    }

    /// Add a decimal column: `csat(90d)`, `rating_avg(1y)` (stored as money is).
    pub fn add_decimal(&mut self, field: Field, values: impl IntoIterator<Item = Option<Decimal>>) -> Result<()> {
        self.add(field, FieldType::Decimal, values.into_iter().map(|v| v.map(FieldValue::Money)))
    }

    /// Add a text column: `tier`, `stage`, `region`, ...
    pub fn add_text<S: AsRef<str>>(&mut self, field: Field, values: impl IntoIterator<Item = Option<S>>) -> Result<()> {
        let values = values.into_iter().map(|v| v.map(|s| FieldValue::Text(s.as_ref().to_string().into())));
        self.add(field, FieldType::Text, values)
    }

    /// Add a date column: `birthday`, `joined_at`.
    pub fn add_date(&mut self, field: Field, values: impl IntoIterator<Item = Option<NaiveDate>>) -> Result<()> {
        self.add(field, FieldType::Date, values.into_iter().map(|v| v.map(FieldValue::Date)))
    }

    /// Add a bool column: `birthday_within(7d)`.
    pub fn add_bool(&mut self, field: Field, values: impl IntoIterator<Item = Option<bool>>) -> Result<()> {
        self.add(field, FieldType::Bool, values.into_iter().map(|v| v.map(FieldValue::Bool)))
    }

    /// Add a text-set column: `tags`, `channels` (one set per member).
    pub fn add_text_set<I, S>(&mut self, field: Field, values: impl IntoIterator<Item = I>) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let values = values.into_iter().map(|set| {
            let set: BTreeSet<String> = set.into_iter().map(|s| s.as_ref().to_string()).collect();
            Some(FieldValue::TextSet(Cow::Owned(set)))
        });
        self.add(field, FieldType::TextSet, values)
    }

    /// Add a custom attribute column (`Field::Attr`), values as stored.
    pub fn add_attr(&mut self, field: Field, values: impl IntoIterator<Item = Option<Json>>) -> Result<()> {
        self.add(field, FieldType::Dynamic, values.into_iter().map(|v| v.map(|j| FieldValue::Json(Cow::Owned(j)))))
    }

    fn column(&self, field: &Field) -> Result<&Column> {
        self.columns.get(field).ok_or_else(|| {
            CrmError::invalid(
                format!("columns.{field}"),
                "the rule reads this field but the table has no column for it",
            )
        })
    }
}

/// Accumulates one column from per-member values; values of the wrong type
/// count as missing, as in one-member evaluation.
enum Builder {
    Int(Vec<i64>, Bitmap),
    Money(Vec<Decimal>, Bitmap),
    Text(Vec<u32>, Dict),
    Date(Vec<i32>, Bitmap),
    Bool(Bitmap, Bitmap),
    TextSet(Dict, Vec<Bitmap>, Bitmap, usize),
    Json(Vec<Option<Json>>),
}

impl Builder {
    fn new(ty: FieldType) -> Builder {
        match ty {
            FieldType::Number => Builder::Int(Vec::new(), Bitmap::default()),
            FieldType::Money | FieldType::Decimal => Builder::Money(Vec::new(), Bitmap::default()),
            FieldType::Text => Builder::Text(Vec::new(), Dict::default()),
            FieldType::Date => Builder::Date(Vec::new(), Bitmap::default()),
            FieldType::Bool => Builder::Bool(Bitmap::default(), Bitmap::default()),
            FieldType::TextSet => Builder::TextSet(Dict::default(), Vec::new(), Bitmap::default(), 0),
            FieldType::Dynamic => Builder::Json(Vec::new()),
        }
    }

    fn push(&mut self, v: Option<FieldValue<'_>>) {
        match self {
            Builder::Int(vals, valid) => {
                let x = match v {
                    Some(FieldValue::Int(i)) => Some(i),
                    _ => None,
                };
                vals.push(x.unwrap_or(0));
                valid.push(x.is_some());
            }
            Builder::Money(vals, valid) => {
                let x = match v {
                    Some(FieldValue::Money(d)) => Some(d),
                    _ => None,
                };
                vals.push(x.unwrap_or_default());
                valid.push(x.is_some());
            }
            Builder::Text(codes, dict) => codes.push(match v {
                Some(FieldValue::Text(s)) => dict.code_or_insert(&s),
                _ => NULL_CODE,
            }),
            Builder::Date(days, valid) => {
                let x = match v {
                    Some(FieldValue::Date(d)) => Some(d.num_days_from_ce()),
                    _ => None,
                };
                days.push(x.unwrap_or(0));
                valid.push(x.is_some());
            }
            Builder::Bool(vals, valid) => {
                let x = match v {
                    Some(FieldValue::Bool(b)) => Some(b),
                    _ => None,
                };
                vals.push(x.unwrap_or(false));
                valid.push(x.is_some());
            }
            Builder::TextSet(dict, members, nonempty, row) => {
                let set = match v {
                    Some(FieldValue::TextSet(s)) => s.into_owned(),
                    _ => BTreeSet::new(),
                };
                nonempty.push(!set.is_empty());
                for s in &set {
                    let c = dict.code_or_insert(s) as usize;
                    if members.len() <= c {
                        members.push(Bitmap::zeros(*row));
                    }
                    // Bitmaps grow lazily to the current row count.
                    let bm = &mut members[c];
                    while bm.len() < *row {
                        bm.push(false);
                    }
                    bm.push(true);
                }
                *row += 1;
            }
            Builder::Json(vals) => vals.push(match v {
                Some(FieldValue::Json(j)) => Some(j.into_owned()),
                _ => None,
            }),
        }
    }

    fn finish(self) -> Column {
        match self {
            Builder::Int(values, valid) => Column::Int { values, valid },
            Builder::Money(values, valid) => money_column(values, valid),
            Builder::Text(codes, dict) => Column::Text { codes, dict },
            Builder::Date(days, valid) => Column::Date { days, valid },
            Builder::Bool(values, valid) => Column::Bool { values, valid },
            Builder::TextSet(dict, mut members, nonempty, row) => {
                for bm in &mut members {
                    while bm.len() < row {
                        bm.push(false);
                    }
                }
                Column::TextSet { dict, members, nonempty }
            }
            Builder::Json(values) => Column::Json(values),
        }
    }
}

/// Money as `i64` units at the column's largest scale when every value fits.
fn money_column(values: Vec<Decimal>, valid: Bitmap) -> Column {
    let scale = values.iter().map(Decimal::scale).max().unwrap_or(0);
    let scaled: Option<Vec<i64>> = values.iter().map(|d| to_units(*d, scale)).collect();
    match scaled {
        Some(values) => Column::Scaled { values, scale, valid },
        None => Column::Exact { values, valid },
    }
}

/// `d * 10^scale` as `i64`, when `d` has at most `scale` places and it fits.
fn to_units(d: Decimal, scale: u32) -> Option<i64> {
    let up = scale.checked_sub(d.scale())?;
    let m = d.mantissa().checked_mul(10i128.checked_pow(up)?)?;
    i64::try_from(m).ok()
}

/// The values `v` (integers at `scale` places) with `v op lit` form a range
/// (or, for `!=`, everything but one value). Exact for any decimal literal.
#[derive(Debug, Clone, Copy)]
enum IntPred {
    Range(i64, i64),
    Ne(i64),
    Empty,
}

fn int_pred(op: CmpOp, lit: i64) -> IntPred {
    int_pred_exact(op, i128::from(lit), true)
}

/// `v op L` where `floor(L * 10^scale) == fl` and `exact` says whether that
/// floor is `L` itself.
fn int_pred_exact(op: CmpOp, fl: i128, exact: bool) -> IntPred {
    let (lo, hi): (i128, i128) = match op {
        CmpOp::Eq if exact => (fl, fl),
        CmpOp::Eq => return IntPred::Empty,
        CmpOp::Ne if exact => {
            return match i64::try_from(fl) {
                Ok(x) => IntPred::Ne(x),
                Err(_) => IntPred::Range(i64::MIN, i64::MAX),
            }
        }
        CmpOp::Ne => return IntPred::Range(i64::MIN, i64::MAX),
        CmpOp::Ge if exact => (fl, i128::MAX),
        CmpOp::Ge | CmpOp::Gt => (fl + 1, i128::MAX),
        CmpOp::Le => (i128::MIN, fl),
        CmpOp::Lt if exact => (i128::MIN, fl - 1),
        CmpOp::Lt => (i128::MIN, fl),
    };
    let lo = lo.max(i128::from(i64::MIN));
    let hi = hi.min(i128::from(i64::MAX));
    match (i64::try_from(lo), i64::try_from(hi)) {
        (Ok(lo), Ok(hi)) if lo <= hi => IntPred::Range(lo, hi),
        _ => IntPred::Empty,
    }
}

/// `floor(d * 10^scale)` (saturated far outside `i64`) and whether it is exact.
fn money_floor(d: Decimal, scale: u32) -> (i128, bool) {
    let m = d.mantissa();
    let ls = d.scale();
    if ls <= scale {
        match 10i128.checked_pow(scale - ls).and_then(|p| m.checked_mul(p)) {
            Some(v) => (v, true),
            None if m > 0 => (i128::MAX / 2, false),
            None => (i128::MIN / 2, false),
        }
    } else {
        let p = 10i128.pow((ls - scale).min(38));
        (m.div_euclid(p), m.rem_euclid(p) == 0)
    }
}

fn intersect(a: IntPred, b: IntPred) -> Option<(i64, i64)> {
    match (a, b) {
        (IntPred::Range(a0, a1), IntPred::Range(b0, b1)) if a0.max(b0) <= a1.min(b1) => Some((a0.max(b0), a1.min(b1))),
        _ => None,
    }
}

/// Integers that test `lo <= v <= hi` with one unsigned comparison.
trait Ranged: Copy + Ord {
    fn in_range(self, lo: Self, hi: Self) -> bool;
}

impl Ranged for i64 {
    #[inline(always)]
    fn in_range(self, lo: i64, hi: i64) -> bool {
        (self.wrapping_sub(lo) as u64) <= (hi.wrapping_sub(lo) as u64)
    }
}

impl Ranged for i32 {
    #[inline(always)]
    fn in_range(self, lo: i32, hi: i32) -> bool {
        (self.wrapping_sub(lo) as u32) <= (hi.wrapping_sub(lo) as u32)
    }
}

fn mask<T: Ranged>(values: &[T], valid: &Bitmap, pred: IntPred, conv: impl Fn(i64) -> Option<T>) -> Bitmap {
    let mut out = match pred {
        IntPred::Empty => return Bitmap::zeros(values.len()),
        IntPred::Range(lo, hi) => {
            // Bounds outside T's range clamp to its ends.
            let (Some(lo), Some(hi)) = (conv_lo(lo, &conv), conv_hi(hi, &conv)) else {
                return Bitmap::zeros(values.len());
            };
            Bitmap::from_fn(values, |&v| v.in_range(lo, hi))
        }
        IntPred::Ne(x) => match conv(x) {
            Some(x) => Bitmap::from_fn(values, |&v| v != x),
            None => Bitmap::ones(values.len()),
        },
    };
    out.and_with(valid);
    out
}

fn conv_lo<T>(lo: i64, conv: &impl Fn(i64) -> Option<T>) -> Option<T> {
    conv(lo).or_else(|| if lo < 0 { conv(i64::from(i32::MIN)).or_else(|| conv(i64::MIN)) } else { None })
}

fn conv_hi<T>(hi: i64, conv: &impl Fn(i64) -> Option<T>) -> Option<T> {
    conv(hi).or_else(|| if hi > 0 { conv(i64::from(i32::MAX)).or_else(|| conv(i64::MAX)) } else { None })
}

/// Evaluate `rule` for every row of `table`: bit `i` is set when member
/// `table.ids()[i]` matches. Fails only when the rule reads a field the
/// table has no column for.
pub fn eval_columns(rule: &Rule, table: &MemberColumns) -> Result<Bitmap> {
    let n = table.len();
    Ok(match rule {
        Rule::And(rules) => {
            let mut acc = Bitmap::ones(n);
            for r in rules {
                acc.and_with(&eval_columns(r, table)?);
            }
            acc
        }
        Rule::Or(rules) => {
            let mut acc = Bitmap::zeros(n);
            for r in rules {
                acc.or_with(&eval_columns(r, table)?);
            }
            acc
        }
        Rule::Not(inner) => {
            let mut b = eval_columns(inner, table)?;
            b.negate();
            b
        }
        Rule::Compare { field, op, value } => compare(table, field, *op, value)?,
        Rule::In { field, values } => {
            let col = table.column(field)?;
            if let Column::Text { codes, dict } = col {
                let wanted: Vec<u32> = values
                    .iter()
                    .filter_map(|v| match v {
                        Value::Text(t) => dict.code(t),
                        _ => None,
                    })
                    .collect();
                let table_bits: Vec<bool> = (0..dict.texts.len() as u32).map(|c| wanted.contains(&c)).collect();
                lookup(codes, &table_bits)
            } else {
                let mut acc = Bitmap::zeros(n);
                for v in values {
                    acc.or_with(&compare(table, field, CmpOp::Eq, v)?);
                }
                acc
            }
        }
        Rule::Between { field, low, high } => match (table.column(field)?, low, high) {
            (Column::Int { values, valid }, Value::Int(l), Value::Int(h)) => {
                range_or_empty(values, valid, intersect(int_pred(CmpOp::Ge, *l), int_pred(CmpOp::Le, *h)), Some)
            }
            (Column::Scaled { values, scale, valid }, Value::Decimal(l), Value::Decimal(h)) => {
                let (lf, le) = money_floor(*l, *scale);
                let (hf, he) = money_floor(*h, *scale);
                let r = intersect(int_pred_exact(CmpOp::Ge, lf, le), int_pred_exact(CmpOp::Le, hf, he));
                range_or_empty(values, valid, r, Some)
            }
            (Column::Date { days, valid }, Value::Date(l), Value::Date(h)) => {
                let r = intersect(
                    int_pred(CmpOp::Ge, i64::from(l.num_days_from_ce())),
                    int_pred(CmpOp::Le, i64::from(h.num_days_from_ce())),
                );
                range_or_empty(days, valid, r, |x| i32::try_from(x).ok())
            }
            _ => {
                let mut acc = compare(table, field, CmpOp::Ge, low)?;
                acc.and_with(&compare(table, field, CmpOp::Le, high)?);
                acc
            }
        },
        Rule::Contains { field, value } => match (table.column(field)?, value) {
            (Column::TextSet { dict, members, .. }, Value::Text(t)) => {
                dict.code(t).and_then(|c| members.get(c as usize).cloned()).unwrap_or_else(|| Bitmap::zeros(n))
            }
            (Column::Text { codes, dict }, Value::Text(t)) => {
                let bits: Vec<bool> = dict.texts.iter().map(|s| s.contains(t.as_str())).collect();
                lookup(codes, &bits)
            }
            (Column::Json(values), lit) => {
                Bitmap::from_fn(values, |v| v.as_ref().is_some_and(|j| json_contains(j, lit)))
            }
            _ => Bitmap::zeros(n),
        },
        Rule::Exists { field } => match table.column(field)? {
            Column::Int { valid, .. }
            | Column::Scaled { valid, .. }
            | Column::Exact { valid, .. }
            | Column::Date { valid, .. }
            | Column::Bool { valid, .. } => valid.clone(),
            Column::Text { codes, .. } => Bitmap::from_fn(codes, |&c| c != NULL_CODE),
            Column::TextSet { nonempty, .. } => nonempty.clone(),
            Column::Json(values) => Bitmap::from_fn(values, |v| v.as_ref().is_some_and(|j| !j.is_null())),
        },
        Rule::Is { field } => match table.column(field)? {
            Column::Bool { values, valid } => {
                let mut b = values.clone();
                b.and_with(valid);
                b
            }
            _ => Bitmap::zeros(n),
        },
    })
}

fn range_or_empty<T: Ranged>(
    values: &[T],
    valid: &Bitmap,
    range: Option<(i64, i64)>,
    conv: impl Fn(i64) -> Option<T>,
) -> Bitmap {
    match range {
        Some((lo, hi)) => mask(values, valid, IntPred::Range(lo, hi), conv),
        None => Bitmap::zeros(values.len()),
    }
}

/// `table[code]` per row; the null code (and unknown codes) give false.
fn lookup(codes: &[u32], table: &[bool]) -> Bitmap {
    Bitmap::from_fn(codes, |&c| table.get(c as usize).copied().unwrap_or(false))
}

fn compare(table: &MemberColumns, field: &Field, op: CmpOp, lit: &Value) -> Result<Bitmap> {
    let n = table.len();
    Ok(match (table.column(field)?, lit) {
        (Column::Int { values, valid }, Value::Int(l)) => mask(values, valid, int_pred(op, *l), Some),
        (Column::Scaled { values, scale, valid }, Value::Decimal(l)) => {
            let (fl, exact) = money_floor(*l, *scale);
            mask(values, valid, int_pred_exact(op, fl, exact), Some)
        }
        (Column::Exact { values, valid }, Value::Decimal(l)) => {
            let mut b = Bitmap::from_fn(values, |v| op.holds(v.cmp(l)));
            b.and_with(valid);
            b
        }
        (Column::Date { days, valid }, Value::Date(d)) => {
            mask(days, valid, int_pred(op, i64::from(d.num_days_from_ce())), |x| i32::try_from(x).ok())
        }
        (Column::Bool { values, valid }, Value::Bool(b)) => {
            // For bools, `==`/`!=` are the only operators the checker lets through.
            let mut out = values.clone();
            if *b != (op == CmpOp::Eq) {
                out.negate();
            }
            out.and_with(valid);
            out
        }
        (Column::Text { codes, dict }, Value::Text(t)) => {
            if *field == Field::Tier && op.is_ordering() {
                let rank = |s: &str| table.tier_ladder.iter().position(|x| x == s);
                let bits: Vec<bool> = match rank(t) {
                    Some(lit_rank) => {
                        dict.texts.iter().map(|s| rank(s).is_some_and(|r| op.holds(r.cmp(&lit_rank)))).collect()
                    }
                    None => Vec::new(),
                };
                lookup(codes, &bits)
            } else {
                match (dict.code(t), op) {
                    (Some(c), CmpOp::Eq) => Bitmap::from_fn(codes, |&x| x == c),
                    (Some(c), CmpOp::Ne) => Bitmap::from_fn(codes, |&x| x != c && x != NULL_CODE),
                    (None, CmpOp::Eq) => Bitmap::zeros(n),
                    (None, CmpOp::Ne) => Bitmap::from_fn(codes, |&x| x != NULL_CODE),
                    _ => {
                        let bits: Vec<bool> = dict.texts.iter().map(|s| op.holds(s.as_str().cmp(t.as_str()))).collect();
                        lookup(codes, &bits)
                    }
                }
            }
        }
        (Column::Json(values), lit) => {
            Bitmap::from_fn(values, |v| v.as_ref().and_then(|j| json_cmp(j, lit)).is_some_and(|o| op.holds(o)))
        }
        _ => Bitmap::zeros(n),
    })
}
