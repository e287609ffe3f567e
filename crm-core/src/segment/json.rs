//! [`Rule`] <-> JSON, for hosts that build rules in a UI.
//!
//! The JSON form mirrors the text form clause by clause (see the module
//! documentation of [`crate::segment`] for the shape). Literals are read by
//! the field's type: a money field takes a decimal string (`"500.00"`, exact)
//! or an integer, a date field an ISO date string. Custom attributes are
//! dynamically typed, so their decimals and dates are tagged:
//! `{"decimal": "1.50"}`, `{"date": "2024-03-31"}`.

use serde_json::{json, Map, Value as Json};

use super::ast::{CmpOp, Rule, Value, Window};
use super::error::RuleError;
use super::field::{parse_date, Field, FieldType, Op};
use super::parser::{build_clause, MAX_DEPTH};

impl Rule {
    /// The JSON form of the rule.
    pub fn to_json(&self) -> Json {
        match self {
            Rule::And(rules) => json!({ "and": rules.iter().map(Rule::to_json).collect::<Vec<_>>() }),
            Rule::Or(rules) => json!({ "or": rules.iter().map(Rule::to_json).collect::<Vec<_>>() }),
            Rule::Not(inner) => json!({ "not": inner.to_json() }),
            Rule::Compare { field, op, value } => {
                let mut m = field_json(field);
                m.insert("op".into(), op.symbol().into());
                m.insert("value".into(), value_json(field, value));
                Json::Object(m)
            }
            Rule::In { field, values } => {
                let mut m = field_json(field);
                m.insert("op".into(), "in".into());
                m.insert("values".into(), Json::Array(values.iter().map(|v| value_json(field, v)).collect()));
                Json::Object(m)
            }
            Rule::Between { field, low, high } => {
                let mut m = field_json(field);
                m.insert("op".into(), "between".into());
                m.insert("low".into(), value_json(field, low));
                m.insert("high".into(), value_json(field, high));
                Json::Object(m)
            }
            Rule::Contains { field, value } => {
                let mut m = field_json(field);
                m.insert("op".into(), "contains".into());
                m.insert("value".into(), value_json(field, value));
                Json::Object(m)
            }
            Rule::Exists { field } => {
                let mut m = field_json(field);
                m.insert("op".into(), "exists".into());
                Json::Object(m)
            }
            Rule::Is { field } => Json::Object(field_json(field)),
        }
    }

    /// Read the JSON form; errors carry the JSON path (`and[1].value`).
    pub fn from_json(json: &Json) -> Result<Rule, RuleError> {
        Ok(read(json, "", 0)?.normalized())
    }

    /// Read the JSON form from a string.
    pub fn from_json_str(text: &str) -> Result<Rule, RuleError> {
        let json: Json = serde_json::from_str(text).map_err(|e| RuleError::json("$", None, e.to_string()))?;
        Rule::from_json(&json)
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Rule {
    /// Accepts the JSON form, or a string holding the text form.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        let json = Json::deserialize(d)?;
        let rule = match &json {
            Json::String(text) => Rule::parse(text),
            other => Rule::from_json(other),
        };
        rule.map_err(serde::de::Error::custom)
    }
}

fn field_json(field: &Field) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("field".into(), field.base_name().into());
    match field {
        Field::Attr(name) => {
            m.insert("name".into(), name.clone().into());
        }
        Field::Balance(pt) => {
            m.insert("point_type".into(), pt.clone().into());
        }
        Field::Events(name, w) => {
            m.insert("event".into(), name.clone().into());
            m.insert("window".into(), w.to_string().into());
        }
        other => {
            if let Some(w) = other.window() {
                m.insert("window".into(), w.to_string().into());
            }
        }
    }
    m
}

fn value_json(field: &Field, v: &Value) -> Json {
    let dynamic = field.field_type() == FieldType::Dynamic;
    match v {
        Value::Int(i) => (*i).into(),
        Value::Decimal(d) if dynamic => json!({ "decimal": d.to_string() }),
        Value::Decimal(d) => d.to_string().into(),
        Value::Text(s) => s.clone().into(),
        Value::Bool(b) => (*b).into(),
        Value::Date(d) if dynamic => json!({ "date": d.format("%Y-%m-%d").to_string() }),
        Value::Date(d) => d.format("%Y-%m-%d").to_string().into(),
    }
}

fn sub(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn read(json: &Json, path: &str, depth: usize) -> Result<Rule, RuleError> {
    let here = if path.is_empty() { "$" } else { path };
    if depth > MAX_DEPTH {
        return Err(RuleError::json(here, None, format!("rule nested deeper than {MAX_DEPTH} levels")));
    }
    let Json::Object(m) = json else {
        return Err(RuleError::json(
            here,
            None,
            "expected an object: {\"and\": [...]}, {\"not\": {...}} or {\"field\": ...}",
        ));
    };
    for key in ["and", "or"] {
        if let Some(list) = m.get(key) {
            only_keys(m, &[key], path)?;
            let p = sub(path, key);
            let Json::Array(items) = list else {
                return Err(RuleError::json(&p, None, "expected a list of rules"));
            };
            if items.is_empty() {
                return Err(RuleError::json(&p, None, "needs at least one rule"));
            }
            let rules = items
                .iter()
                .enumerate()
                .map(|(i, r)| read(r, &format!("{p}[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if key == "and" { Rule::And(rules) } else { Rule::Or(rules) });
        }
    }
    if let Some(inner) = m.get("not") {
        only_keys(m, &["not"], path)?;
        return Ok(Rule::Not(Box::new(read(inner, &sub(path, "not"), depth + 1)?)));
    }
    clause(m, path)
}

fn only_keys(m: &Map<String, Json>, allowed: &[&str], path: &str) -> Result<(), RuleError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(RuleError::json(&sub(path, k), None, format!("unexpected key `{k}`"))),
        None => Ok(()),
    }
}

fn text_key(m: &Map<String, Json>, key: &str, path: &str) -> Result<String, RuleError> {
    match m.get(key) {
        Some(Json::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(RuleError::json(&sub(path, key), None, "expected non-empty text")),
        None => Err(RuleError::json(&sub(path, key), None, "is required")),
    }
}

fn window_key(m: &Map<String, Json>, path: &str) -> Result<Window, RuleError> {
    let text = text_key(m, "window", path)?;
    Window::parse(&text).ok_or_else(|| {
        RuleError::json(&sub(path, "window"), None, format!("`{text}` is not a window like 90d, 8w, 6m or 1y"))
    })
}

fn clause(m: &Map<String, Json>, path: &str) -> Result<Rule, RuleError> {
    let name = match m.get("field") {
        Some(Json::String(s)) => s.to_ascii_lowercase(),
        Some(_) => return Err(RuleError::json(&sub(path, "field"), None, "expected text")),
        None => {
            return Err(RuleError::json(
                if path.is_empty() { "$" } else { path },
                None,
                "expected `and`, `or`, `not` or `field`",
            ))
        }
    };
    let (field, mut keys): (Field, Vec<&str>) = match name.as_str() {
        "attr" | "attributes" => (Field::Attr(text_key(m, "name", path)?), vec!["name"]),
        "balance" => (Field::Balance(text_key(m, "point_type", path)?), vec!["point_type"]),
        "orders" | "spend" | "birthday_within" | "csat" | "rating_avg" | "reviews" | "tickets" | "contacts" => {
            let w = window_key(m, path)?;
            (Field::windowed(&name, w).unwrap_or(Field::Orders(w)), vec!["window"])
        }
        "events" => (Field::Events(text_key(m, "event", path)?, window_key(m, path)?), vec!["event", "window"]),
        other => match Field::simple(other) {
            Some(f) => (f, vec![]),
            None => return Err(RuleError::json(&sub(path, "field"), None, format!("unknown field `{other}`"))),
        },
    };
    keys.extend(["field", "op"]);
    let op = match m.get("op") {
        None => Op::Is,
        Some(Json::String(s)) => match s.to_ascii_lowercase().as_str() {
            "in" => Op::In,
            "between" => Op::Between,
            "contains" => Op::Contains,
            "exists" => Op::Exists,
            sym => match CmpOp::from_symbol(sym) {
                Some(c) => Op::Cmp(c),
                None => return Err(RuleError::json(&sub(path, "op"), None, format!("unknown operator `{s}`"))),
            },
        },
        Some(_) => return Err(RuleError::json(&sub(path, "op"), None, "expected text")),
    };
    let lit = |key: &str| -> Result<Value, RuleError> {
        let p = sub(path, key);
        m.get(key).ok_or_else(|| RuleError::json(&p, None, "is required")).and_then(|j| literal(j, &p))
    };
    let values = match op {
        Op::Cmp(_) | Op::Contains => {
            keys.push("value");
            vec![lit("value")?]
        }
        Op::Between => {
            keys.extend(["low", "high"]);
            vec![lit("low")?, lit("high")?]
        }
        Op::In => {
            keys.push("values");
            let p = sub(path, "values");
            match m.get("values") {
                Some(Json::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, j)| literal(j, &format!("{p}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(RuleError::json(&p, None, "expected a list of values")),
                None => return Err(RuleError::json(&p, None, "is required")),
            }
        }
        Op::Exists | Op::Is => vec![],
    };
    only_keys(m, &keys, path)?;
    build_clause(field, op, values).map_err(|(field, reason)| {
        RuleError::json(
            if path.is_empty() { "$" } else { path },
            Some(field.to_string()),
            format!("field `{field}` {reason}"),
        )
    })
}

/// A JSON literal before it meets its field's type.
fn literal(j: &Json, path: &str) -> Result<Value, RuleError> {
    match j {
        Json::String(s) => Ok(Value::Text(s.clone())),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(Value::Int(i));
            }
            // A float is read as the decimal it prints as (shortest round-trip form).
            rust_decimal::Decimal::from_str_exact(&n.to_string())
                .or_else(|_| rust_decimal::Decimal::from_scientific(&n.to_string()))
                .map(Value::Decimal)
                .map_err(|_| RuleError::json(path, None, format!("number {n} is out of range; pass a decimal string")))
        }
        Json::Object(o) if o.len() == 1 => {
            if let Some(Json::String(s)) = o.get("decimal") {
                return rust_decimal::Decimal::from_str_exact(s.trim())
                    .map(Value::Decimal)
                    .map_err(|_| RuleError::json(&sub(path, "decimal"), None, format!("`{s}` is not a decimal")));
            }
            if let Some(Json::String(s)) = o.get("date") {
                return parse_date(s).map(Value::Date).ok_or_else(|| {
                    RuleError::json(&sub(path, "date"), None, format!("`{s}` is not a date (YYYY-MM-DD)"))
                });
            }
            Err(RuleError::json(
                path,
                None,
                "expected text, a number, a bool, {\"decimal\": \"...\"} or {\"date\": \"...\"}",
            ))
        }
        _ => Err(RuleError::json(
            path,
            None,
            "expected text, a number, a bool, {\"decimal\": \"...\"} or {\"date\": \"...\"}",
        )),
    }
}
