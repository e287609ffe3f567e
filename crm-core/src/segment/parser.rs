//! Tokens -> checked [`Rule`], with positions for every error.

use super::ast::{Rule, Value, Window};
use super::error::{RuleError, RuleErrorKind};
use super::field::{Field, Op};
use super::lexer::{tokenize, Tok, Token};

/// Deeper nesting than this is refused rather than risking the stack.
pub(crate) const MAX_DEPTH: usize = 64;

pub(crate) fn parse(src: &str) -> Result<Rule, RuleError> {
    let tokens = tokenize(src)?;
    let mut p = Parser { src, tokens, pos: 0, depth: 0 };
    let rule = p.or_expr()?;
    if p.peek() != &Tok::Eof {
        let what = p.peek().describe();
        return Err(p.error_here(format!("expected `and`, `or` or end of rule, found {what}")));
    }
    Ok(rule.normalized())
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).map_or(&Tok::Eof, |t| &t.kind)
    }

    fn peek_at(&self, k: usize) -> &Tok {
        self.tokens.get(self.pos + k).map_or(&Tok::Eof, |t| &t.kind)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.src.len(), |t| t.at)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn error_here(&self, msg: impl Into<String>) -> RuleError {
        RuleError::at(RuleErrorKind::Syntax, self.src, self.offset(), msg)
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let hit = self.is_keyword(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), RuleError> {
        if *self.peek() == want {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error_here(format!("expected {what}, found {}", self.peek().describe())))
        }
    }

    fn enter(&mut self) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!("rule nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Rule, RuleError> {
        let mut items = vec![self.and_expr()?];
        while self.eat_keyword("or") {
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Rule::Or(items) })
    }

    fn and_expr(&mut self) -> Result<Rule, RuleError> {
        let mut items = vec![self.unary()?];
        while self.eat_keyword("and") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Rule::And(items) })
    }

    fn unary(&mut self) -> Result<Rule, RuleError> {
        self.enter()?;
        let rule = if self.eat_keyword("not") {
            Rule::Not(Box::new(self.unary()?))
        } else if *self.peek() == Tok::LParen {
            self.pos += 1;
            let inner = self.or_expr()?;
            self.expect(Tok::RParen, "`)`")?;
            inner
        } else {
            self.clause()?
        };
        self.depth -= 1;
        Ok(rule)
    }

    /// `field predicate`, a bare boolean field, or the `tag("x")` shorthand.
    fn clause(&mut self) -> Result<Rule, RuleError> {
        let start = self.offset();
        if self.is_keyword("tag") && *self.peek_at(1) == Tok::LParen {
            self.pos += 2;
            let name = self.string_arg("a tag name in quotes")?;
            self.expect(Tok::RParen, "`)`")?;
            return self.checked(start, Field::Tags, Op::Contains, vec![Value::Text(name)]);
        }
        let field = self.field()?;
        if self.eat_keyword("in") {
            let values = self.list()?;
            return self.checked(start, field, Op::In, values);
        }
        if self.eat_keyword("between") {
            let low = self.value()?;
            if !self.eat_keyword("and") {
                return Err(
                    self.error_here(format!("expected `and` after `between`, found {}", self.peek().describe()))
                );
            }
            let high = self.value()?;
            return self.checked(start, field, Op::Between, vec![low, high]);
        }
        if self.eat_keyword("contains") {
            let v = self.value()?;
            return self.checked(start, field, Op::Contains, vec![v]);
        }
        if self.eat_keyword("exists") {
            return self.checked(start, field, Op::Exists, vec![]);
        }
        if let Tok::Cmp(op) = *self.peek() {
            self.pos += 1;
            let v = self.value()?;
            return self.checked(start, field, Op::Cmp(op), vec![v]);
        }
        match self.peek() {
            Tok::Eof | Tok::RParen => self.checked(start, field, Op::Is, vec![]),
            Tok::Ident(s) if ["and", "or"].iter().any(|k| s.eq_ignore_ascii_case(k)) => {
                self.checked(start, field, Op::Is, vec![])
            }
            other => Err(self.error_here(format!(
                "expected an operator (==, !=, <, <=, >, >=, in, between, contains, exists), found {}",
                other.describe()
            ))),
        }
    }

    /// Type-check a clause; a type error points at the field.
    fn checked(&self, field_at: usize, field: Field, op: Op, values: Vec<Value>) -> Result<Rule, RuleError> {
        build_clause(field, op, values).map_err(|(field, reason)| {
            let mut e = RuleError::at(RuleErrorKind::Type, self.src, field_at, format!("field `{field}` {reason}"));
            e.field = Some(field.to_string());
            e
        })
    }

    fn field(&mut self) -> Result<Field, RuleError> {
        let at = self.offset();
        let name = match self.peek() {
            Tok::Ident(s) => s.to_ascii_lowercase(),
            other => {
                let what = other.describe();
                return Err(self.error_here(format!("expected a field, `not` or `(`, found {what}")));
            }
        };
        if super::lexer::KEYWORDS.contains(&name.as_str()) {
            return Err(self.error_here(format!("expected a field, found keyword `{name}`")));
        }
        self.pos += 1;
        let field = match name.as_str() {
            "attr" | "attributes" if *self.peek() == Tok::Dot => {
                self.pos += 1;
                match self.next() {
                    Tok::Ident(n) => Field::Attr(n),
                    _ => {
                        self.pos -= 1;
                        return Err(self.error_here("expected an attribute name after `attr.`"));
                    }
                }
            }
            "attr" | "attributes" => {
                self.expect(Tok::LBracket, "`.` or `[` after `attr`")?;
                let n = self.string_arg("an attribute name in quotes")?;
                self.expect(Tok::RBracket, "`]`")?;
                Field::Attr(n)
            }
            "rfm" => {
                self.expect(Tok::Dot, "`.` after `rfm` (rfm.r, rfm.f, rfm.m, rfm.group)")?;
                let part = match self.peek() {
                    Tok::Ident(s) => s.to_ascii_lowercase(),
                    _ => String::new(),
                };
                match Field::simple(&format!("rfm.{part}")) {
                    Some(f) => {
                        self.pos += 1;
                        f
                    }
                    None => return Err(self.error_here("expected r, f, m or group after `rfm.`")),
                }
            }
            "balance" => {
                self.expect(Tok::LParen, "`(` after `balance`")?;
                let pt = self.string_arg("a point type in quotes")?;
                self.expect(Tok::RParen, "`)`")?;
                Field::Balance(pt)
            }
            "orders" | "spend" | "birthday_within" | "csat" | "rating_avg" | "reviews" | "tickets" | "contacts" => {
                self.expect(Tok::LParen, &format!("`(` after `{name}`"))?;
                let w = self.window()?;
                self.expect(Tok::RParen, "`)`")?;
                Field::windowed(&name, w).unwrap_or(Field::BirthdayWithin(w))
            }
            "events" => {
                self.expect(Tok::LParen, "`(` after `events`")?;
                let ev = self.string_arg("an event name in quotes")?;
                self.expect(Tok::Comma, "`,` and a window")?;
                let w = self.window()?;
                self.expect(Tok::RParen, "`)`")?;
                Field::Events(ev, w)
            }
            other => match Field::simple(other) {
                Some(f) => f,
                None => {
                    return Err(RuleError::at(RuleErrorKind::Syntax, self.src, at, format!("unknown field `{other}`")))
                }
            },
        };
        Ok(field)
    }

    fn string_arg(&mut self, what: &str) -> Result<String, RuleError> {
        match self.peek().clone() {
            Tok::Str(s) if !s.is_empty() => {
                self.pos += 1;
                Ok(s)
            }
            Tok::Str(_) => Err(self.error_here(format!("expected {what}, found empty text"))),
            other => Err(self.error_here(format!("expected {what}, found {}", other.describe()))),
        }
    }

    fn window(&mut self) -> Result<Window, RuleError> {
        match *self.peek() {
            Tok::Window(w) => {
                self.pos += 1;
                Ok(w)
            }
            ref other => {
                Err(self.error_here(format!("expected a window like 90d, 8w, 6m or 1y, found {}", other.describe())))
            }
        }
    }

    fn value(&mut self) -> Result<Value, RuleError> {
        let v = match self.peek() {
            Tok::Str(s) => Value::Text(s.clone()),
            Tok::Int(i) => Value::Int(*i),
            Tok::Dec(d) => Value::Decimal(*d),
            Tok::Date(d) => Value::Date(*d),
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Tok::Ident(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            other => {
                let what = other.describe();
                return Err(self.error_here(format!("expected a value, found {what}")));
            }
        };
        self.pos += 1;
        Ok(v)
    }

    /// `("a", "b")` or `["a", "b"]`.
    fn list(&mut self) -> Result<Vec<Value>, RuleError> {
        let close = match self.peek() {
            Tok::LParen => Tok::RParen,
            Tok::LBracket => Tok::RBracket,
            other => {
                let what = other.describe();
                return Err(self.error_here(format!("expected `(` or `[` after `in`, found {what}")));
            }
        };
        self.pos += 1;
        let mut values = vec![self.value()?];
        while *self.peek() == Tok::Comma {
            self.pos += 1;
            if *self.peek() == close {
                break; // a trailing comma is fine
            }
            values.push(self.value()?);
        }
        let what = if close == Tok::RParen { "`,` or `)`" } else { "`,` or `]`" };
        self.expect(close, what)?;
        Ok(values)
    }
}

/// Build one clause from a field, an operator family and its values, checking
/// types and converting literals. Shared by the text and JSON readers so both
/// accept exactly the same rules. The error carries the field and the reason.
pub(crate) fn build_clause(field: Field, op: Op, values: Vec<Value>) -> Result<Rule, (Field, String)> {
    if let Err(reason) = field.check_op(op) {
        return Err((field, reason));
    }
    let mut checked = Vec::with_capacity(values.len());
    for v in values {
        match field.coerce(v) {
            Ok(v) => checked.push(v),
            Err(reason) => return Err((field, reason)),
        }
    }
    let mut it = checked.into_iter();
    let rule = match op {
        Op::Cmp(op) => Rule::Compare { value: it.next().ok_or_else(|| (field.clone(), missing()))?, field, op },
        Op::In => {
            let values: Vec<Value> = it.collect();
            if values.is_empty() {
                return Err((field, "`in` needs at least one value".into()));
            }
            Rule::In { field, values }
        }
        Op::Between => {
            let low = it.next().ok_or_else(|| (field.clone(), missing()))?;
            let high = it.next().ok_or_else(|| (field.clone(), missing()))?;
            Rule::Between { field, low, high }
        }
        Op::Contains => Rule::Contains { value: it.next().ok_or_else(|| (field.clone(), missing()))?, field },
        Op::Exists => Rule::Exists { field },
        Op::Is => Rule::Is { field },
    };
    Ok(rule)
}

fn missing() -> String {
    "is missing a value".into()
}
