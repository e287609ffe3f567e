//! The field catalogue: what a rule can ask about a member, and the type of
//! each answer. Type checking lives here too, because what a literal may be
//! depends only on the field it is compared with.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::ast::{CmpOp, Value, Window};

/// Something a rule can ask about a member.
///
/// Windowed aggregates carry their window, so `orders(90d)` and
/// `orders(365d)` are different fields (and different columns).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Field {
    /// Profile: `name`, text.
    Name,
    /// Profile: `email`, text.
    Email,
    /// Profile: `phone`, text.
    Phone,
    /// Profile: `gender` (`female`, `male`, `other`, `unknown`), text.
    Gender,
    /// Profile: `region`, text.
    Region,
    /// Profile: `join_channel`, text.
    JoinChannel,
    /// Profile: `birthday`, date.
    Birthday,
    /// Profile: `joined_at`, the local date the member joined.
    JoinedAt,
    /// Custom attribute `attr.NAME` / `attributes["NAME"]`, dynamically typed.
    Attr(String),
    /// `tags`, a set of text.
    Tags,
    /// `channels` the member has used (web, app, store, ...), a set of text.
    Channels,
    /// `tier`, text ordered by the programme's tier ladder.
    Tier,
    /// Lifecycle `stage`, text.
    Stage,
    /// `balance("POINT_TYPE")`: available points, number.
    Balance(String),
    /// `orders(WINDOW)`: paid orders in the window, number.
    Orders(Window),
    /// `spend(WINDOW)`: spend in the window, money.
    Spend(Window),
    /// `days_since_last_order`, number (missing when the member never ordered).
    DaysSinceLastOrder,
    /// `events("NAME", WINDOW)`: engagement events of that kind in the window, number.
    Events(String, Window),
    /// `rfm.r`, recency score, number.
    RfmR,
    /// `rfm.f`, frequency score, number.
    RfmF,
    /// `rfm.m`, monetary score, number.
    RfmM,
    /// `rfm.group` (`champions`, `loyal`, `at_risk`, ...), text.
    RfmGroup,
    /// `birthday_within(WINDOW)`: the next birthday falls within the window, bool.
    BirthdayWithin(Window),
    /// `csat(WINDOW)`: mean CSAT score (1-5) of the answers in the window,
    /// decimal (missing when there is none).
    Csat(Window),
    /// `nps_last`: the latest NPS answer (0-10), number (missing when none).
    NpsLast,
    /// `open_tickets`: tickets neither resolved nor closed, number.
    OpenTickets,
    /// `rating_avg(WINDOW)`: mean review rating (1-5) in the window, decimal
    /// (missing when there is none).
    RatingAvg(Window),
    /// `reviews(WINDOW)`: reviews written in the window, number.
    Reviews(Window),
    /// `tickets(WINDOW)`: tickets opened in the window, number.
    Tickets(Window),
    /// `contacts(WINDOW)`: contacts with customer service started in the window, number.
    Contacts(Window),
}

/// The type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldType {
    /// Whole numbers (`i64`).
    Number,
    /// Exact decimals (`rust_decimal::Decimal`).
    Money,
    /// Exact decimals that are not money: means of scores (`csat(90d)`).
    /// Values are [`FieldValue::Money`](super::FieldValue::Money) and money
    /// columns (both hold a `Decimal`); literals read as for money.
    Decimal,
    Text,
    Date,
    Bool,
    /// A set of text values (tags, channels).
    TextSet,
    /// Custom attributes: each value has its own JSON type; comparisons
    /// match by the literal's type and are false across types.
    Dynamic,
}

impl FieldType {
    /// Lower-case name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Number => "number",
            FieldType::Money => "money",
            FieldType::Decimal => "decimal",
            FieldType::Text => "text",
            FieldType::Date => "date",
            FieldType::Bool => "bool",
            FieldType::TextSet => "a set of text",
            FieldType::Dynamic => "a custom attribute",
        }
    }
}

impl Field {
    /// Is it an RFM score or group? Those are relative to all members, so
    /// only population-wide evaluations can answer them.
    pub fn is_rfm(&self) -> bool {
        matches!(self, Field::RfmR | Field::RfmF | Field::RfmM | Field::RfmGroup)
    }

    /// The type of the field's values.
    pub fn field_type(&self) -> FieldType {
        match self {
            Field::Name
            | Field::Email
            | Field::Phone
            | Field::Gender
            | Field::Region
            | Field::JoinChannel
            | Field::Tier
            | Field::Stage
            | Field::RfmGroup => FieldType::Text,
            Field::Birthday | Field::JoinedAt => FieldType::Date,
            Field::Attr(_) => FieldType::Dynamic,
            Field::Tags | Field::Channels => FieldType::TextSet,
            Field::Balance(_)
            | Field::Orders(_)
            | Field::DaysSinceLastOrder
            | Field::Events(..)
            | Field::RfmR
            | Field::RfmF
            | Field::RfmM
            | Field::NpsLast
            | Field::OpenTickets
            | Field::Reviews(_)
            | Field::Tickets(_)
            | Field::Contacts(_) => FieldType::Number,
            Field::Spend(_) => FieldType::Money,
            Field::Csat(_) | Field::RatingAvg(_) => FieldType::Decimal,
            Field::BirthdayWithin(_) => FieldType::Bool,
        }
    }

    /// The fields whose one argument is a window, by their name in both forms.
    pub(crate) fn windowed(name: &str, w: Window) -> Option<Field> {
        Some(match name {
            "orders" => Field::Orders(w),
            "spend" => Field::Spend(w),
            "birthday_within" => Field::BirthdayWithin(w),
            "csat" => Field::Csat(w),
            "rating_avg" => Field::RatingAvg(w),
            "reviews" => Field::Reviews(w),
            "tickets" => Field::Tickets(w),
            "contacts" => Field::Contacts(w),
            _ => return None,
        })
    }

    /// The window of a field whose one argument is a window.
    pub(crate) fn window(&self) -> Option<Window> {
        match self {
            Field::Orders(w)
            | Field::Spend(w)
            | Field::BirthdayWithin(w)
            | Field::Csat(w)
            | Field::RatingAvg(w)
            | Field::Reviews(w)
            | Field::Tickets(w)
            | Field::Contacts(w) => Some(*w),
            _ => None,
        }
    }

    /// The fields without arguments, by their name in both forms.
    pub(crate) fn simple(name: &str) -> Option<Field> {
        Some(match name {
            "name" => Field::Name,
            "email" => Field::Email,
            "phone" => Field::Phone,
            "gender" => Field::Gender,
            "region" => Field::Region,
            "join_channel" => Field::JoinChannel,
            "birthday" => Field::Birthday,
            "joined_at" => Field::JoinedAt,
            "tags" => Field::Tags,
            "channels" => Field::Channels,
            "tier" => Field::Tier,
            "stage" => Field::Stage,
            "days_since_last_order" => Field::DaysSinceLastOrder,
            "rfm.r" => Field::RfmR,
            "rfm.f" => Field::RfmF,
            "rfm.m" => Field::RfmM,
            "rfm.group" => Field::RfmGroup,
            "nps_last" => Field::NpsLast,
            "open_tickets" => Field::OpenTickets,
            _ => return None,
        })
    }

    /// The field's name in the JSON form (`"field"`), without its arguments.
    pub fn base_name(&self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::Gender => "gender",
            Field::Region => "region",
            Field::JoinChannel => "join_channel",
            Field::Birthday => "birthday",
            Field::JoinedAt => "joined_at",
            Field::Attr(_) => "attr",
            Field::Tags => "tags",
            Field::Channels => "channels",
            Field::Tier => "tier",
            Field::Stage => "stage",
            Field::Balance(_) => "balance",
            Field::Orders(_) => "orders",
            Field::Spend(_) => "spend",
            Field::DaysSinceLastOrder => "days_since_last_order",
            Field::Events(..) => "events",
            Field::RfmR => "rfm.r",
            Field::RfmF => "rfm.f",
            Field::RfmM => "rfm.m",
            Field::RfmGroup => "rfm.group",
            Field::BirthdayWithin(_) => "birthday_within",
            Field::Csat(_) => "csat",
            Field::NpsLast => "nps_last",
            Field::OpenTickets => "open_tickets",
            Field::RatingAvg(_) => "rating_avg",
            Field::Reviews(_) => "reviews",
            Field::Tickets(_) => "tickets",
            Field::Contacts(_) => "contacts",
        }
    }

    /// Whether `<`, `>`, `between` make sense on this field.
    fn ordered(&self) -> bool {
        match self.field_type() {
            FieldType::Number | FieldType::Money | FieldType::Decimal | FieldType::Date | FieldType::Dynamic => true,
            FieldType::Text => matches!(self, Field::Tier),
            FieldType::Bool | FieldType::TextSet => false,
        }
    }

    /// Check that `value` may be compared with this field and convert it to
    /// the field's type (an integer or a decimal string becomes money, an ISO
    /// string becomes a date). The error is the reason, without the field name.
    pub(crate) fn coerce(&self, value: Value) -> Result<Value, String> {
        let ty = self.field_type();
        let mismatch = |v: &Value| format!("is {}, got {} {}", ty.name(), v.kind(), super::print::value_text(v));
        match (ty, value) {
            (FieldType::Number, Value::Int(i)) => Ok(Value::Int(i)),
            (FieldType::Number, Value::Text(s)) => match i64::from_str(s.trim()) {
                Ok(i) => Ok(Value::Int(i)),
                Err(_) => Err(mismatch(&Value::Text(s))),
            },
            (FieldType::Money | FieldType::Decimal, Value::Int(i)) => Ok(Value::Decimal(Decimal::from(i))),
            (FieldType::Money | FieldType::Decimal, Value::Decimal(d)) => Ok(Value::Decimal(d)),
            (FieldType::Money | FieldType::Decimal, Value::Text(s)) => match Decimal::from_str_exact(s.trim()) {
                Ok(d) => Ok(Value::Decimal(d)),
                Err(_) => Err(mismatch(&Value::Text(s))),
            },
            (FieldType::Text, Value::Text(s)) => Ok(Value::Text(s)),
            (FieldType::Date, Value::Date(d)) => Ok(Value::Date(d)),
            (FieldType::Date, Value::Text(s)) => match parse_date(&s) {
                Some(d) => Ok(Value::Date(d)),
                None => Err(mismatch(&Value::Text(s))),
            },
            (FieldType::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
            (FieldType::TextSet, Value::Text(s)) => Ok(Value::Text(s)),
            (FieldType::Dynamic, Value::Decimal(d)) => Ok(normalize_decimal(d)),
            (FieldType::Dynamic, v) => Ok(v),
            (_, v) => Err(mismatch(&v)),
        }
    }

    /// Check an operator against this field (before its values).
    pub(crate) fn check_op(&self, op: Op) -> Result<(), String> {
        let ty = self.field_type();
        let ok = match op {
            Op::Cmp(c) if c.is_ordering() => self.ordered(),
            Op::Between => self.ordered(),
            Op::Cmp(_) | Op::In => ty != FieldType::TextSet,
            Op::Contains => matches!(ty, FieldType::TextSet | FieldType::Text | FieldType::Dynamic),
            Op::Exists => true,
            Op::Is => ty == FieldType::Bool,
        };
        if ok {
            return Ok(());
        }
        Err(match (ty, op) {
            (FieldType::TextSet, _) => format!("is {}; use `contains` or `exists`, not `{}`", ty.name(), op.name()),
            (FieldType::Text, Op::Cmp(_) | Op::Between) => {
                format!("is text, which has no order; use `==`, `!=` or `in`, not `{}`", op.name())
            }
            (_, Op::Is) => format!("is {}, not bool; compare it with a value", ty.name()),
            _ => format!("is {}, which does not support `{}`", ty.name(), op.name()),
        })
    }
}

/// An ISO date `YYYY-MM-DD` with a four-digit year (the only dates the text form can spell).
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let four_digit_year = s.len() == 10 && s.as_bytes()[..4].iter().all(u8::is_ascii_digit);
    four_digit_year.then(|| NaiveDate::from_str(s).ok()).flatten()
}

/// A decimal literal for a custom attribute that is a whole number fitting
/// `i64` is the integer: attributes compare numbers by value, and the text
/// form of such a decimal reads back as an integer anyway.
fn normalize_decimal(d: Decimal) -> Value {
    if d.scale() == 0 {
        if let Ok(i) = i64::try_from(d) {
            return Value::Int(i);
        }
    }
    Value::Decimal(d)
}

/// Operator families, for type checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Cmp(CmpOp),
    In,
    Between,
    Contains,
    Exists,
    Is,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Cmp(c) => c.symbol(),
            Op::In => "in",
            Op::Between => "between",
            Op::Contains => "contains",
            Op::Exists => "exists",
            Op::Is => "a bare field",
        }
    }
}

impl fmt::Display for Field {
    /// The field in the text form: `orders(90d)`, `attr.vip_code`, `balance("reward")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::print::quote;
        match self {
            Field::Attr(name) if super::lexer::is_plain_ident(name) => write!(f, "attr.{name}"),
            Field::Attr(name) => write!(f, "attributes[{}]", quote(name)),
            Field::Balance(pt) => write!(f, "balance({})", quote(pt)),
            Field::Events(name, w) => write!(f, "events({}, {w})", quote(name)),
            other => match other.window() {
                Some(w) => write!(f, "{}({w})", other.base_name()),
                None => f.write_str(other.base_name()),
            },
        }
    }
}
