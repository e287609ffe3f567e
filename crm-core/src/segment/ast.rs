//! The rule tree shared by the text and JSON forms.
//!
//! A [`Rule`] is always *checked*: every literal already has the type of its
//! field (a money field holds [`Value::Decimal`], a date field
//! [`Value::Date`]), so evaluation never has to convert or fail. Build rules
//! with [`Rule::parse`](crate::segment::Rule::parse) or
//! [`Rule::from_json`](crate::segment::Rule::from_json); both check and
//! normalise, so the same rule reads the same way whichever form it came from.

use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::field::Field;

/// A segment rule (or an earn-rule condition).
///
/// Missing values (a member without a region, without any order) make every
/// comparison false, `!=` and `in` included; `not` is the plain complement.
/// So `region != "north"` excludes members with no region while
/// `not region == "north"` includes them. That keeps one-member and column
/// evaluation identical and makes `not` a single bitwise operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// Every operand holds (two or more after normalisation).
    And(Vec<Rule>),
    /// At least one operand holds (two or more after normalisation).
    Or(Vec<Rule>),
    /// The operand does not hold.
    Not(Box<Rule>),
    /// `field op value`.
    Compare { field: Field, op: CmpOp, value: Value },
    /// `field in (v1, v2, ...)`: equal to one of the values.
    In { field: Field, values: Vec<Value> },
    /// `field between low and high`, both ends inclusive.
    Between { field: Field, low: Value, high: Value },
    /// `field contains value`: set membership for tags and channels, substring
    /// for text, element (or substring) for custom attributes.
    Contains { field: Field, value: Value },
    /// `field exists`: the value is present (a non-empty set for tags and channels).
    Exists { field: Field },
    /// A boolean field on its own, e.g. `birthday_within(7d)`.
    Is { field: Field },
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator as written in both forms (`==`, `!=`, `<`, `<=`, `>`, `>=`).
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Parse a symbol; `=` is accepted for `==` and `<>` for `!=`.
    pub fn from_symbol(s: &str) -> Option<CmpOp> {
        Some(match s {
            "==" | "=" => CmpOp::Eq,
            "!=" | "<>" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }

    /// Whether `left op right` holds given how `left` compares to `right`.
    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => ord == Equal,
            CmpOp::Ne => ord != Equal,
            CmpOp::Lt => ord == Less,
            CmpOp::Le => ord != Greater,
            CmpOp::Gt => ord == Greater,
            CmpOp::Ge => ord != Less,
        }
    }

    /// Whether the operator needs an ordering (not just equality).
    pub fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// A literal in a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Value {
    /// Whole numbers: counts, points, days, RFM scores.
    Int(i64),
    /// Exact decimals: money (never a float).
    Decimal(Decimal),
    Text(String),
    Bool(bool),
    /// Calendar dates (`2024-03-31`).
    Date(NaiveDate),
}

impl Value {
    /// The kind of literal, for type error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Decimal(_) => "decimal",
            Value::Text(_) => "text",
            Value::Bool(_) => "bool",
            Value::Date(_) => "date",
        }
    }
}

/// A look-back window: `90d`, `8w`, `6m` (months), `1y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// At least 1.
    pub count: u32,
    pub unit: WindowUnit,
}

/// Unit of a [`Window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowUnit {
    Days,
    Weeks,
    Months,
    Years,
}

impl WindowUnit {
    fn letter(self) -> char {
        match self {
            WindowUnit::Days => 'd',
            WindowUnit::Weeks => 'w',
            WindowUnit::Months => 'm',
            WindowUnit::Years => 'y',
        }
    }

    pub(crate) fn from_letter(c: char) -> Option<WindowUnit> {
        Some(match c.to_ascii_lowercase() {
            'd' => WindowUnit::Days,
            'w' => WindowUnit::Weeks,
            'm' => WindowUnit::Months,
            'y' => WindowUnit::Years,
            _ => return None,
        })
    }
}

impl Window {
    /// A window of `count` days.
    pub fn days(count: u32) -> Window {
        Window { count, unit: WindowUnit::Days }
    }

    /// Parse `90d` / `6m` / `1y` / `8w` (the JSON form uses the same strings).
    pub fn parse(s: &str) -> Option<Window> {
        let mut chars = s.chars();
        let unit = WindowUnit::from_letter(chars.next_back()?)?;
        let digits = chars.as_str();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let count: u32 = digits.parse().ok()?;
        (count >= 1).then_some(Window { count, unit })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.letter())
    }
}

impl Rule {
    /// Flatten nested `and`/`or` of the same kind and unwrap one-operand
    /// lists, so that `a and (b and c)` and `a and b and c` are one rule and
    /// printing then parsing gives the rule back.
    pub fn normalized(self) -> Rule {
        match self {
            Rule::And(rules) => flatten(rules, true),
            Rule::Or(rules) => flatten(rules, false),
            Rule::Not(inner) => Rule::Not(Box::new(inner.normalized())),
            other => other,
        }
    }

    /// Every field the rule reads, once each, in first-use order: the columns
    /// a batch evaluation needs.
    pub fn fields(&self) -> Vec<Field> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields(&self, out: &mut Vec<Field>) {
        match self {
            Rule::And(rules) | Rule::Or(rules) => rules.iter().for_each(|r| r.collect_fields(out)),
            Rule::Not(inner) => inner.collect_fields(out),
            Rule::Compare { field, .. }
            | Rule::In { field, .. }
            | Rule::Between { field, .. }
            | Rule::Contains { field, .. }
            | Rule::Exists { field }
            | Rule::Is { field } => {
                if !out.contains(field) {
                    out.push(field.clone());
                }
            }
        }
    }

    /// Number of leaf clauses (comparisons, `in`, `exists`, ...).
    pub fn clause_count(&self) -> usize {
        match self {
            Rule::And(rules) | Rule::Or(rules) => rules.iter().map(Rule::clause_count).sum(),
            Rule::Not(inner) => inner.clause_count(),
            _ => 1,
        }
    }
}

fn flatten(rules: Vec<Rule>, and: bool) -> Rule {
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        match r.normalized() {
            Rule::And(inner) if and => out.extend(inner),
            Rule::Or(inner) if !and => out.extend(inner),
            r => out.push(r),
        }
    }
    if out.len() == 1 {
        return out.pop().unwrap_or(Rule::And(Vec::new()));
    }
    if and {
        Rule::And(out)
    } else {
        Rule::Or(out)
    }
}
