//! Text form -> tokens with byte offsets.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::ast::{CmpOp, Window, WindowUnit};
use super::error::{RuleError, RuleErrorKind};

/// A token and where it starts (byte offset into the source).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub at: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Identifiers and keywords (keywords are matched case-insensitively by the parser).
    Ident(String),
    Str(String),
    Int(i64),
    Dec(Decimal),
    Date(NaiveDate),
    Window(Window),
    Cmp(CmpOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Eof,
}

impl Tok {
    /// How the token is named in "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(_) => "a text literal".into(),
            Tok::Int(_) | Tok::Dec(_) => "a number".into(),
            Tok::Date(_) => "a date".into(),
            Tok::Window(w) => format!("window `{w}`"),
            Tok::Cmp(op) => format!("`{}`", op.symbol()),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Eof => "end of input".into(),
        }
    }
}

/// Words the printer must not use as bare attribute names.
pub(crate) const KEYWORDS: &[&str] = &["and", "or", "not", "in", "between", "contains", "exists", "true", "false"];

/// An attribute name that can be written `attr.NAME`.
pub(crate) fn is_plain_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(s))
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, RuleError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, msg: String| RuleError::at(RuleErrorKind::Syntax, src, at, msg);
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if b == b'#' {
            // Comment to the end of the line: saved rules can explain themselves.
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let kind = match b {
            b'(' => single(&mut i, Tok::LParen),
            b')' => single(&mut i, Tok::RParen),
            b'[' => single(&mut i, Tok::LBracket),
            b']' => single(&mut i, Tok::RBracket),
            b',' => single(&mut i, Tok::Comma),
            b'.' => single(&mut i, Tok::Dot),
            b'=' | b'!' | b'<' | b'>' => {
                let two = src.get(i..i + 2).and_then(CmpOp::from_symbol);
                if let Some(op) = two {
                    i += 2;
                    Tok::Cmp(op)
                } else if let Some(op) = src.get(i..i + 1).and_then(CmpOp::from_symbol) {
                    i += 1;
                    Tok::Cmp(op)
                } else {
                    return Err(err(start, "`!` must be followed by `=`".into()));
                }
            }
            b'"' | b'\'' => {
                let (s, end) = string(src, i).map_err(|(at, msg)| err(at, msg))?;
                i = end;
                Tok::Str(s)
            }
            b'-' | b'0'..=b'9' => {
                let (tok, end) = number(src, i).map_err(|(at, msg)| err(at, msg))?;
                i = end;
                tok
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Tok::Ident(src[start..i].to_string())
            }
            _ => {
                let c = src[i..].chars().next().unwrap_or('?');
                return Err(err(start, format!("unexpected character `{}`", c.escape_debug())));
            }
        };
        out.push(Token { kind, at: start });
    }
    out.push(Token { kind: Tok::Eof, at: src.len() });
    Ok(out)
}

fn single(i: &mut usize, t: Tok) -> Tok {
    *i += 1;
    t
}

/// A quoted string (double or single quotes) with `\" \' \\ \n \t \r \u{HEX}` escapes.
fn string(src: &str, start: usize) -> Result<(String, usize), (usize, String)> {
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices().map(|(k, c)| (k + start + 1, c));
    while let Some((k, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, k + 1)),
            '\\' => {
                let Some((k2, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' | '"' | '\'' => out.push(e),
                    'u' => {
                        let rest = &src[k2 + 1..];
                        let close = rest.find('}').filter(|_| rest.starts_with('{'));
                        let ch = close.and_then(|c| u32::from_str_radix(&rest[1..c], 16).ok()).and_then(char::from_u32);
                        match (ch, close) {
                            (Some(ch), Some(c)) => {
                                out.push(ch);
                                // Skip `{HEX}`.
                                for _ in 0..=c {
                                    chars.next();
                                }
                            }
                            _ => return Err((k, "bad unicode escape; write \\u{HEX}".into())),
                        }
                    }
                    _ => return Err((k, format!("unknown escape `\\{}`", e.escape_debug()))),
                }
            }
            c => out.push(c),
        }
    }
    Err((start, "unterminated text literal".into()))
}

/// Integers, decimals, ISO dates (`2024-03-31`) and windows (`90d`).
fn number(src: &str, start: usize) -> Result<(Tok, usize), (usize, String)> {
    let bytes = src.as_bytes();
    let digits_from = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let neg = bytes[start] == b'-';
    let int_start = if neg { start + 1 } else { start };
    let mut i = digits_from(int_start);
    if i == int_start {
        return Err((start, "`-` must be followed by a number".into()));
    }
    // Date: exactly 4-2-2 digits.
    if !neg && i - int_start == 4 && bytes.get(i) == Some(&b'-') {
        let end = start + 10;
        let text = src.get(start..end).unwrap_or("");
        let shape = text.len() == 10 && text.bytes().enumerate().all(|(k, b)| (k == 4 || k == 7) == (b == b'-'));
        if shape && !bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric()) {
            return match NaiveDate::from_str(text) {
                Ok(d) => Ok((Tok::Date(d), end)),
                Err(_) => Err((start, format!("`{text}` is not a valid date"))),
            };
        }
        return Err((start, "a date is written YYYY-MM-DD".into()));
    }
    let mut decimal = false;
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        decimal = true;
        i = digits_from(i + 1);
    }
    let text = &src[start..i];
    // Window: digits then a unit letter, as one word.
    if let Some(&u) = bytes.get(i) {
        if u.is_ascii_alphabetic() || u == b'_' {
            let word_end = {
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                j
            };
            if !neg && !decimal && word_end == i + 1 {
                if let Some(unit) = WindowUnit::from_letter(u as char) {
                    return match text.parse::<u32>() {
                        Ok(count) if count >= 1 => Ok((Tok::Window(Window { count, unit }), i + 1)),
                        _ => Err((start, format!("window `{}` must be between 1 and {}", &src[start..=i], u32::MAX))),
                    };
                }
            }
            return Err((
                start,
                format!("`{}` is not a number or a window (windows are like 90d, 8w, 6m, 1y)", &src[start..word_end]),
            ));
        }
    }
    if decimal {
        return match Decimal::from_str_exact(text) {
            Ok(d) => Ok((Tok::Dec(d), i)),
            Err(_) => Err((start, format!("`{text}` is out of range for a decimal"))),
        };
    }
    match text.parse::<i64>() {
        Ok(n) => Ok((Tok::Int(n), i)),
        Err(_) => match Decimal::from_str_exact(text) {
            Ok(d) => Ok((Tok::Dec(d), i)),
            Err(_) => Err((start, format!("`{text}` is out of range"))),
        },
    }
}
