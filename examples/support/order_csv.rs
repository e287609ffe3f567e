//! The CSV files of the `replay` and `whatif` examples, read by one reader.
//!
//! Why here and not in each example: both read the same order history, and
//! two copies had drifted (one streamed lines and took quoted fields, the
//! other parsed on every core and refused them). This is the one reader
//! both include with `#[path]` (Cargo builds only `examples/*.rs` as
//! examples, so this folder is not one).
//!
//! Orders: a header naming `member_id`, `order_id`, `placed_at` (RFC 3339)
//! and `amount` (a decimal), and optionally `channel`, in any order; other
//! columns are ignored. A byte-order mark and blank lines before the header
//! and blank lines between rows are skipped; CRLF and LF endings both work;
//! fields may be quoted as RFC 4180 says, but not span lines. Every row
//! becomes a paid order. A row that does not parse is reported with its
//! line number (counted from 1, blank lines included) and why, and the
//! others are kept: one bad line does not stop an import of millions.
//!
//! A large file is parsed on every core: it is cut after line ends into one
//! run per core, the runs are parsed side by side and kept in file order
//! (neither example joins them: both use each order where it lies), so the
//! orders and the line numbers do not depend on where it was cut
//! (`tests/whatif_example.rs` holds it to that).

use std::borrow::Cow;
use std::fs;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use crm_core::Order;
use rust_decimal::Decimal;

/// A line that did not parse: its number and why.
pub type BadLine = (usize, String);

/// What one core parsed of the order CSV ([`read_order_parts`]).
pub struct OrdersRead {
    /// The rows that parse, in file order.
    pub orders: Vec<Order>,
    /// The line number of each of `orders`.
    pub lines: Vec<usize>,
    /// The lines that do not parse, in file order.
    pub bad: Vec<BadLine>,
}

/// A header and the lines after it (see [`header_and_body`]).
struct Body<'t> {
    header: Vec<String>,
    /// The text after the header line, and the number of its first line.
    rest: &'t str,
    first_line: usize,
}

/// Skip a byte-order mark and blank lines, split the header into names.
fn header_and_body<'t>(path: &str, text: &'t str) -> Result<Body<'t>, String> {
    let text = text.trim_start_matches('\u{feff}');
    let mut line_no = 1;
    let mut rest = text;
    loop {
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        if !line.trim().is_empty() {
            let header = split_record(line.trim_end_matches('\r')).map_err(|e| format!("{path}: header: {e}"))?;
            let header = header.into_iter().map(|h| h.trim().to_string()).collect();
            return Ok(Body { header, rest: after, first_line: line_no + 1 });
        }
        if after.is_empty() {
            return Err(format!("{path} is empty (expected a CSV header)"));
        }
        rest = after;
        line_no += 1;
    }
}

/// The fields of one record: borrowed from the line unless a field is
/// quoted (RFC 4180: `""` inside quotes is one `"`; no line breaks inside).
pub fn split_record(line: &str) -> Result<Vec<Cow<'_, str>>, String> {
    if !line.contains('"') {
        return Ok(line.split(',').map(Cow::Borrowed).collect());
    }
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(Cow::Owned(field));
                    return Ok(fields);
                }
                Some(',') => fields.push(Cow::Owned(field)),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(Cow::Owned(field));
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("quote inside an unquoted field".into()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(Cow::Owned(field));
        }
    }
}

/// Where the order fields are in a record.
struct Columns {
    member: usize,
    id: usize,
    placed: usize,
    amount: usize,
    channel: Option<usize>,
}

impl Columns {
    fn from_header(path: &str, header: &[String]) -> Result<Columns, String> {
        let find = |name: &str| header.iter().position(|h| h == name);
        let need = |name: &str| find(name).ok_or_else(|| format!("{path}: the header has no {name:?} column"));
        Ok(Columns {
            member: need("member_id")?,
            id: need("order_id")?,
            placed: need("placed_at")?,
            amount: need("amount")?,
            channel: find("channel"),
        })
    }

    /// The paid order of one record's fields.
    fn order<S: AsRef<str>>(&self, f: &[S], header: &[String]) -> Result<Order, String> {
        let get = |i: usize| f.get(i).map(|s| s.as_ref().trim()).ok_or_else(|| format!("missing column {}", header[i]));
        let placed = get(self.placed)?;
        let at = DateTime::parse_from_rfc3339(placed)
            .map_err(|e| format!("placed_at {placed:?} is not RFC 3339: {e}"))?
            .with_timezone(&Utc);
        let amount = get(self.amount)?;
        let amount = Decimal::from_str(amount).map_err(|e| format!("amount {amount:?}: {e}"))?;
        let mut order = Order::paid(get(self.id)?, get(self.member)?, at, amount);
        order.channel =
            self.channel.and_then(|c| f.get(c)).map(|c| c.as_ref().trim()).filter(|c| !c.is_empty()).map(String::from);
        Ok(order)
    }
}

/// Read the order CSV at `path` (see the module docs): the orders that
/// parse and the lines that do not, one part per core in file order, not
/// joined: at 10,000,000 orders joining copies about 2 GB into fresh memory
/// (`crm_core::whatif::compare_parts` takes the parts as they are). Fails
/// only when the file cannot be read or its header lacks a needed column.
pub fn read_order_parts(path: &str) -> Result<Vec<OrdersRead>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let Body { header, rest, first_line } = header_and_body(path, &text)?;
    let columns = Columns::from_header(path, &header)?;
    // Ten million lines take seconds to parse: each core parses a run of
    // whole lines, and the parts come back in file order.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let line_end =
        |from: usize| rest.as_bytes()[from..].iter().position(|b| *b == b'\n').map_or(rest.len(), |n| from + n + 1);
    let mut runs: Vec<(usize, &str)> = Vec::with_capacity(cores);
    let (mut start, mut first) = (0, first_line);
    for k in (1..=cores).rev() {
        // Each run ends after a newline (a character boundary).
        let end = if k == 1 { rest.len() } else { line_end(start + (rest.len() - start) / k) };
        let run = &rest[start..end];
        runs.push((first, run));
        first += run.bytes().filter(|b| *b == b'\n').count();
        start = end;
    }
    Ok(std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|&(first, run)| {
                let (header, columns) = (&header, &columns);
                scope.spawn(move || parse_run(run, first, header, columns))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a parse thread panicked")).collect()
    }))
}

/// The orders of `run` (whole lines, the first numbered `first`).
fn parse_run(run: &str, first: usize, header: &[String], c: &Columns) -> OrdersRead {
    let rows = run.len() / 40;
    let mut out = OrdersRead { orders: Vec::with_capacity(rows), lines: Vec::with_capacity(rows), bad: Vec::new() };
    // Reused for the unquoted lines (nearly all): no allocation per line.
    let mut fields: Vec<&str> = Vec::with_capacity(header.len());
    for (i, line) in run.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed = if line.contains('"') {
            split_record(line).and_then(|f| c.order(&f, header))
        } else {
            fields.clear();
            fields.extend(line.split(','));
            c.order(&fields, header)
        };
        match parsed {
            Ok(o) => {
                out.orders.push(o);
                out.lines.push(first + i);
            }
            Err(e) => out.bad.push((first + i, e)),
        }
    }
    out
}

/// A row of a small CSV: its line number and `(column, value)` pairs.
pub type Row = (usize, Vec<(String, String)>);

/// The rows of a small CSV file (refunds, redemptions) as `(column, value)`
/// pairs, values trimmed; every column in `need` must be in the header.
pub fn read_rows(path: &str, need: &[&str]) -> Result<Vec<Row>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let Body { header, rest, first_line } = header_and_body(path, &text)?;
    for n in need {
        if !header.iter().any(|h| h == n) {
            return Err(format!("{path}: the header has no {n:?} column"));
        }
    }
    let mut rows = Vec::new();
    for (i, line) in rest.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line_no = first_line + i;
        let cells = split_record(line).map_err(|e| format!("{path} line {line_no}: {e}"))?;
        rows.push((line_no, header.iter().cloned().zip(cells.into_iter().map(|c| c.trim().to_string())).collect()));
    }
    Ok(rows)
}

/// The value of column `name` in `row` ("" when absent).
pub fn cell<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}
