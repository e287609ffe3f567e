//! [`Rule`] -> canonical text.
//!
//! One spelling per rule: lower-case keywords, single spaces, `==` for
//! equality, lists as `("a", "b")`, and parentheses only where precedence
//! needs them, plus around an `and` inside an `or` — `a or (b and c)` —
//! because marketers misread the unbracketed form.

use std::fmt::{self, Write};

use super::ast::{Rule, Value};

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::And(rules) => join(f, rules, " and ", |r| matches!(r, Rule::And(_) | Rule::Or(_))),
            Rule::Or(rules) => join(f, rules, " or ", |r| matches!(r, Rule::And(_) | Rule::Or(_))),
            Rule::Not(inner) => {
                if matches!(**inner, Rule::And(_) | Rule::Or(_)) {
                    write!(f, "not ({inner})")
                } else {
                    write!(f, "not {inner}")
                }
            }
            Rule::Compare { field, op, value } => write!(f, "{field} {} {}", op.symbol(), value_text(value)),
            Rule::In { field, values } => {
                write!(f, "{field} in (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&value_text(v))?;
                }
                f.write_char(')')
            }
            Rule::Between { field, low, high } => {
                write!(f, "{field} between {} and {}", value_text(low), value_text(high))
            }
            Rule::Contains { field, value } => write!(f, "{field} contains {}", value_text(value)),
            Rule::Exists { field } => write!(f, "{field} exists"),
            Rule::Is { field } => write!(f, "{field}"),
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, rules: &[Rule], sep: &str, paren: impl Fn(&Rule) -> bool) -> fmt::Result {
    if rules.is_empty() {
        // Not a valid rule (the readers refuse empty lists); print something that says so.
        return f.write_str("()");
    }
    for (i, r) in rules.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if paren(r) {
            write!(f, "({r})")?;
        } else {
            write!(f, "{r}")?;
        }
    }
    Ok(())
}

/// A literal in the text form.
pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Text(s) => quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
    }
}

/// A double-quoted text literal with escapes the lexer reads back.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
