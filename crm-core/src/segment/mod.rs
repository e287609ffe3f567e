//! Segments (分群): a small rule language with a text and a JSON form, and its
//! evaluation for one member (after each fact, so a host can react at once)
//! or for every member at once over columns.
//!
//! The same language writes earn-rule conditions: a [`Rule`] only asks a
//! [`FieldSource`] for values, so an order context can answer later.
//!
//! ```
//! use crm_core::segment::{eval_columns, Field, FieldValue, MemberColumns, MemberValues, Rule, Window};
//! use rust_decimal::Decimal;
//!
//! let rule = Rule::parse(r#"tier in ("gold", "platinum") and orders(90d) >= 2 and not tag("vip_manual")"#)?;
//! // Canonical text, and the JSON form hosts build in a UI.
//! assert_eq!(rule.to_string(), r#"tier in ("gold", "platinum") and orders(90d) >= 2 and not tags contains "vip_manual""#);
//! assert_eq!(Rule::from_json(&rule.to_json())?, rule);
//!
//! // One member, right after a fact.
//! let member = MemberValues::new()
//!     .with(Field::Tier, FieldValue::Text("gold".into()))
//!     .with(Field::Orders(Window::days(90)), FieldValue::Int(3))
//!     .with(Field::Tags, FieldValue::TextSet(Default::default()));
//! assert!(rule.matches(&member));
//!
//! // Everyone, on columns.
//! let mut table = MemberColumns::new(vec!["m1".into(), "m2".into()]);
//! table.add_text(Field::Tier, [Some("gold"), Some("silver")])?;
//! table.add_int(Field::Orders(Window::days(90)), [Some(3), Some(9)])?;
//! table.add_text_set(Field::Tags, [vec![], vec!["vip_manual"]])?;
//! let hits = eval_columns(&rule, &table)?;
//! assert_eq!(table.members(&hits), vec!["m1".into()]);
//!
//! // Errors point at the spot.
//! let err = Rule::parse("spend(365d) >= \"abc\"").unwrap_err();
//! assert_eq!(err.message, r#"field `spend(365d)` is money, got text "abc""#);
//! # let _ = Decimal::ZERO;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Text form
//!
//! Keywords (`and`, `or`, `not`, `in`, `between`, `contains`, `exists`,
//! `true`, `false`) and field names are case-insensitive; text literals and
//! attribute names are not. `#` starts a comment to the end of the line.
//!
//! ```ebnf
//! rule       = or_expr ;
//! or_expr    = and_expr , { "or" , and_expr } ;
//! and_expr   = unary , { "and" , unary } ;
//! unary      = "not" , unary | "(" , or_expr , ")" | clause ;
//! clause     = "tag" , "(" , string , ")"              (* = tags contains string *)
//!            | field , [ predicate ] ;                  (* no predicate: a bool field *)
//! predicate  = cmp_op , value
//!            | "in" , list
//!            | "between" , value , "and" , value        (* inclusive *)
//!            | "contains" , value
//!            | "exists" ;
//! cmp_op     = "==" | "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=" ;
//! list       = "(" , value , { "," , value } , [ "," ] , ")"
//!            | "[" , value , { "," , value } , [ "," ] , "]" ;
//! value      = string | integer | decimal | date | "true" | "false" ;
//! field      = "name" | "email" | "phone" | "gender" | "region" | "join_channel"
//!            | "birthday" | "joined_at" | "tags" | "channels" | "tier" | "stage"
//!            | "days_since_last_order" | "nps_last" | "open_tickets"
//!            | "rfm" , "." , ( "r" | "f" | "m" | "group" )
//!            | "attr" , "." , ident | ( "attr" | "attributes" ) , "[" , string , "]"
//!            | "balance" , "(" , string , ")"
//!            | ( "orders" | "spend" | "birthday_within" | "csat" | "rating_avg"
//!              | "reviews" | "tickets" | "contacts" ) , "(" , window , ")"
//!            | "events" , "(" , string , "," , window , ")" ;
//! window     = digit , { digit } , ( "d" | "w" | "m" | "y" ) ;   (* 90d, 8w, 6m = months, 1y *)
//! integer    = [ "-" ] , digit , { digit } ;
//! decimal    = [ "-" ] , digit , { digit } , "." , digit , { digit } ;
//! date       = digit * 4 , "-" , digit * 2 , "-" , digit * 2 ;  (* ISO 2024-03-31 *)
//! string     = '"' , { char | escape } , '"' | "'" , { char | escape } , "'" ;
//! escape     = "\" , ( '"' | "'" | "\" | "n" | "t" | "r" | "u{" , hex , { hex } , "}" ) ;
//! ident      = ( letter | "_" ) , { letter | digit | "_" } ;
//! ```
//!
//! Precedence: `not` binds tighter than `and`, which binds tighter than `or`.
//!
//! # Fields and types
//!
//! | field | type |
//! |---|---|
//! | `name` `email` `phone` `gender` `region` `join_channel` `stage` `rfm.group` | text |
//! | `tier` | text, ordered by the programme's tier ladder (`tier >= "gold"`) |
//! | `birthday` `joined_at` | date |
//! | `attr.NAME`, `attributes["NAME"]` | custom attribute, typed by its value |
//! | `tags` `channels` | set of text (`contains`, `exists`) |
//! | `balance("reward")` `orders(90d)` `days_since_last_order` `events("add_to_cart", 7d)` `rfm.r` `rfm.f` `rfm.m` | number (`i64`) |
//! | `nps_last` `open_tickets` `reviews(90d)` `tickets(90d)` `contacts(30d)` | number (`i64`) |
//! | `spend(365d)` | money (exact `Decimal`; never a float) |
//! | `csat(90d)` `rating_avg(1y)` | decimal: the exact mean score (missing without answers) |
//! | `birthday_within(7d)` | bool |
//!
//! Text may not be ordered (except `tier`); sets only take `contains` and
//! `exists`; a money field takes integers and decimals (and decimal strings);
//! a number field only integers; a decimal field as money. A type error names the field and why:
//! ``field `spend(365d)` is money, got text "abc"``.
//!
//! Missing values make every comparison false (`!=` and `in` included), and
//! `not` is the plain complement; see [`Rule`].
//!
//! # JSON form
//!
//! ```json
//! {"and": [
//!   {"field": "spend", "window": "365d", "op": ">=", "value": "500.00"},
//!   {"field": "tier", "op": "in", "values": ["gold", "platinum"]},
//!   {"field": "orders", "window": "90d", "op": "between", "low": 2, "high": 10},
//!   {"not": {"field": "tags", "op": "contains", "value": "vip_manual"}},
//!   {"or": [
//!     {"field": "events", "event": "add_to_cart", "window": "7d", "op": ">=", "value": 1},
//!     {"field": "birthday_within", "window": "7d"}
//!   ]},
//!   {"field": "attr", "name": "vip code", "op": "exists"},
//!   {"field": "balance", "point_type": "reward", "op": ">", "value": 1000}
//! ]}
//! ```
//!
//! A node is `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}` or a clause:
//! `"field"` (the text name without arguments, e.g. `"rfm.r"`) with its
//! arguments (`"window"`, `"event"`, `"point_type"`, `"name"`), an `"op"`
//! (`==` `!=` `<` `<=` `>` `>=` `in` `between` `contains` `exists`; absent
//! for a bool field on its own) and `"value"`, `"values"` or
//! `"low"`/`"high"`. Money is a decimal string, dates ISO strings; custom
//! attribute decimals and dates are tagged `{"decimal": "1.50"}`,
//! `{"date": "2024-03-31"}`. Unknown keys are errors. [`Rule`] implements
//! serde with this form (and deserialises a plain string as the text form).
//!
//! Both readers check and normalise (nested `and`s flatten), and printing is
//! canonical, so text -> [`Rule`] -> JSON -> [`Rule`] -> text gives back the
//! canonical text.

mod ast;
mod bitmap;
mod columns;
mod error;
mod eval;
mod field;
mod json;
mod lexer;
mod parser;
mod print;
mod saved;

pub use ast::{CmpOp, Rule, Value, Window, WindowUnit};
pub use bitmap::Bitmap;
pub use columns::{eval_columns, MemberColumns};
pub(crate) use error::render_error;
pub use error::{RuleError, RuleErrorKind};
pub use eval::{FieldSource, FieldValue, MemberValues};
pub use field::{Field, FieldType};
pub use saved::{diff, SavedSegment, SegmentChange};

impl Rule {
    /// Read the text form (checked and normalised).
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        parser::parse(text)
    }
}

impl std::str::FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Rule, RuleError> {
        Rule::parse(s)
    }
}

/// Read a rule from its text form, with the crate's error type.
pub fn parse(text: &str) -> crate::Result<Rule> {
    Ok(Rule::parse(text)?)
}

/// Read a rule from its JSON form, with the crate's error type.
pub fn from_json(json: &serde_json::Value) -> crate::Result<Rule> {
    Ok(Rule::from_json(json)?)
}

impl<T: FieldSource + ?Sized> FieldSource for &T {
    fn value(&self, field: &Field) -> Option<FieldValue<'_>> {
        (**self).value(field)
    }

    fn tier_rank(&self, tier: &str) -> Option<u32> {
        (**self).tier_rank(tier)
    }
}

#[cfg(test)]
mod tests;
