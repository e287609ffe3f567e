//! Rule errors: where in the text (or the JSON) and why.

use thiserror::Error;

use crate::error::CrmError;

/// What kind of mistake a [`RuleError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleErrorKind {
    /// The text does not follow the grammar.
    Syntax,
    /// A field is compared with a value or operator it does not support.
    Type,
    /// The JSON form is malformed.
    Json,
}

impl RuleErrorKind {
    /// Stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            RuleErrorKind::Syntax => "syntax",
            RuleErrorKind::Type => "type",
            RuleErrorKind::Json => "json",
        }
    }
}

/// A rule that could not be read.
///
/// For the text form `line` and `column` are 1-based (columns count
/// characters) and `caret` is the offending source line with a `^` under the
/// column, ready to print. For the JSON form `line` and `column` are 0 and
/// `caret` is empty; `path` says where (`and[1].value`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", self.render())]
pub struct RuleError {
    pub kind: RuleErrorKind,
    pub line: usize,
    pub column: usize,
    /// The field the error is about (type errors), in its text form.
    pub field: Option<String>,
    pub message: String,
    pub caret: String,
    /// Location in the JSON form (`and[1].op`); empty for the text form.
    pub path: String,
}

impl RuleError {
    pub(crate) fn at(kind: RuleErrorKind, src: &str, offset: usize, message: impl Into<String>) -> RuleError {
        let (line, column, caret) = locate(src, offset);
        RuleError { kind, line, column, field: None, message: message.into(), caret, path: String::new() }
    }

    pub(crate) fn json(path: &str, field: Option<String>, message: impl Into<String>) -> RuleError {
        let kind = if field.is_some() { RuleErrorKind::Type } else { RuleErrorKind::Json };
        RuleError {
            kind,
            line: 0,
            column: 0,
            field,
            message: message.into(),
            caret: String::new(),
            path: if path.is_empty() { "$".to_string() } else { path.to_string() },
        }
    }

    fn render(&self) -> String {
        let excerpt = if self.line == 0 { &self.path } else { &self.caret };
        render_error(self.line, self.column, &self.message, excerpt)
    }
}

/// One rendering for [`RuleError`] and [`CrmError::Rule`]: `line 2, column 7:
/// message` and the caret excerpt below, or `path: message` for JSON.
pub(crate) fn render_error(line: usize, column: usize, message: &str, excerpt: &str) -> String {
    if line == 0 {
        format!("{excerpt}: {message}")
    } else {
        format!("line {line}, column {column}: {message}\n{excerpt}")
    }
}

/// 1-based line and column of a byte offset, and the caret excerpt.
fn locate(src: &str, offset: usize) -> (usize, usize, String) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let line_no = before.matches('\n').count() + 1;
    let text = src[line_start..line_end].trim_end_matches('\r');
    // Tabs are kept in the padding so the caret lines up wherever the line is shown.
    let pad: String = src[line_start..offset].chars().map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
    let column = src[line_start..offset].chars().count() + 1;
    (line_no, column, format!("{text}\n{pad}^"))
}

impl From<RuleError> for CrmError {
    fn from(e: RuleError) -> CrmError {
        let excerpt = if e.line == 0 { e.path.clone() } else { e.caret.clone() };
        CrmError::Rule { line: e.line, column: e.column, field: e.field, message: e.message, excerpt }
    }
}
