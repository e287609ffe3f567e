//! Fast readers for the analytics inputs: the order CSV (the format of
//! `scripts/cdnow_to_csv.py` and the replay example) straight into [`Orders`]
//! columns, and customer summaries (`frequency,recency,T[,monetary_value]`).
//!
//! The order reader parses bytes by hand, streams the file in blocks (a 10M-row
//! file is never held in memory) and keeps money exact: amounts become integer
//! minor units, a value with more decimals than the scale is an error, never rounded.
//!
//! Order CSV: a header naming at least `member_id`, `placed_at` and `amount`
//! (any order, other columns ignored); `placed_at` is RFC 3339
//! (`1997-01-01T12:00:00Z`, `+08:00` offsets and fractions accepted) or a bare
//! date (`1997-01-01`, midnight UTC); `amount` a plain decimal (`11.77`). Fields
//! may be quoted (RFC 4180), but not span lines. When there is a `status`
//! column, only `paid` and `completed` orders count (as for points, see
//! [`OrderStatus::earns`]); `placed` and `cancelled` rows are skipped.

use std::io::Read;

use chrono::{DateTime, Utc};

use super::orders::{days_from_civil, Day, Orders};
use crate::error::{CrmError, Result};
use crate::facts::OrderStatus;

/// Options of [`read_orders`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCsvOptions {
    /// Decimal places of the amounts (2: cents). More digits than this are an error.
    pub scale: u32,
    /// Only orders placed at or before this instant are kept; later ones are counted in
    /// [`OrderCsv::after_cutoff`].
    pub until: Option<DateTime<Utc>>,
    /// Size of the input in bytes, when known: the columns are then sized once from
    /// the first block's bytes per row instead of growing by doubling.
    pub expected_bytes: Option<u64>,
    /// Threads of [`read_orders_path`] on a large file: 0 (the default) for one per idle
    /// core (available cores less the load average), 1 for a sequential read.
    pub threads: usize,
}

impl Default for OrderCsvOptions {
    fn default() -> Self {
        OrderCsvOptions { scale: 2, until: None, expected_bytes: None, threads: 0 }
    }
}

/// [`read_orders`] from a file, with [`OrderCsvOptions::expected_bytes`] set from its size.
///
/// A large file is parsed in parallel: the rows after the header are cut at line ends into
/// one byte range per available core, each range is read into its own columns on its own
/// thread, and the blocks are then appended in file order (member ids of later blocks are
/// re-interned, so the indices are the ones a sequential read assigns). On any error the
/// file is read again sequentially, so errors name the same line as [`read_orders`].
pub fn read_orders_path(path: impl AsRef<std::path::Path>, options: OrderCsvOptions) -> Result<OrderCsv> {
    let path = path.as_ref();
    let open = || {
        std::fs::File::open(path).map_err(|e| CrmError::invalid("path", format!("cannot open {}: {e}", path.display())))
    };
    let file = open()?;
    let expected_bytes = file.metadata().ok().map(|m| m.len());
    let threads = match options.threads {
        0 => idle_cores(),
        n => n,
    };
    if let Some(len) = expected_bytes.filter(|&len| threads > 1 && len >= PARALLEL_MIN_BYTES) {
        check_scale(options.scale)?;
        if let Ok(Some(csv)) = read_parallel(&file, len, threads, options, &open) {
            return Ok(csv);
        }
    }
    read_orders(file, OrderCsvOptions { expected_bytes, ..options })
}

/// Cores not already busy: the available cores less the 1-minute load average (Linux
/// `/proc/loadavg`; elsewhere every core), at least 1, at most 16. On a machine whose
/// cores are taken, a second reader thread only adds the cost of merging the blocks.
fn idle_cores() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(0.0);
    cores.saturating_sub(load.floor() as usize).max(1)
}

/// Files below this size are read on one thread.
const PARALLEL_MIN_BYTES: u64 = 16 << 20;

/// The parallel read of [`read_orders_path`]: `Ok(None)` when the file does not suit it
/// (no simple header line), `Err` on any error (the caller then reads sequentially).
fn read_parallel(
    file: &std::fs::File,
    len: u64,
    threads: usize,
    options: OrderCsvOptions,
    open: &(dyn Fn() -> Result<std::fs::File> + Sync),
) -> Result<Option<OrderCsv>> {
    use std::io::{Seek, SeekFrom};
    let io = |e: std::io::Error| CrmError::invalid("csv", format!("read failed: {e}"));
    // Byte position just past the first '\n' at or after `from`, or `len`.
    let mut window = vec![0u8; 1 << 16];
    let mut line_end = |mut from: u64| -> Result<u64> {
        let mut f = file;
        f.seek(SeekFrom::Start(from)).map_err(io)?;
        while from < len {
            let n = f.read(&mut window).map_err(io)?;
            if n == 0 {
                break;
            }
            if let Some(p) = window[..n].iter().position(|&c| c == b'\n') {
                return Ok(from + p as u64 + 1);
            }
            from += n as u64;
        }
        Ok(len)
    };
    let header_end = line_end(0)?;
    let mut header = vec![0u8; header_end as usize];
    let mut f = file;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    f.read_exact(&mut header).map_err(io)?;
    let (_, columns) = read_stream(&header[..], options, None)?;
    let Some(columns) = columns else { return Ok(None) };
    // Block boundaries at line ends.
    let mut bounds = vec![header_end];
    for k in 1..threads as u64 {
        let target = header_end + (len - header_end) * k / threads as u64;
        let b = line_end(target.max(1) - 1)?.max(*bounds.last().unwrap_or(&0));
        bounds.push(b);
    }
    bounds.push(len);
    bounds.dedup();
    let blocks: Vec<Result<OrderCsv>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (start, end) = (w[0], w[1]);
                scope.spawn(move || -> Result<OrderCsv> {
                    let mut f = open()?;
                    f.seek(SeekFrom::Start(start)).map_err(io)?;
                    // The first block's columns become the result: size them for the whole file.
                    let expected = if start == header_end { len - header_end } else { end - start };
                    let opts = OrderCsvOptions { expected_bytes: Some(expected), ..options };
                    Ok(read_stream(f.take(end - start), opts, Some(columns))?.0)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(CrmError::invalid("csv", "reader panicked"))))
            .collect()
    });
    let mut blocks = blocks.into_iter();
    let mut out = match blocks.next() {
        Some(first) => first?,
        None => return Ok(None),
    };
    let rest: Vec<OrderCsv> = blocks.collect::<Result<_>>()?;
    let more: usize = rest.iter().map(|b| b.orders.len()).sum();
    out.orders.member.reserve_exact(more);
    out.orders.day.reserve_exact(more);
    out.orders.amount.reserve_exact(more);
    for mut b in rest {
        let ids = &mut out.orders.ids;
        let remap: Vec<u32> =
            (0..b.orders.ids.len() as u32).map(|i| ids.intern(b.orders.ids.bytes(i))).collect::<Result<_>>()?;
        out.orders.member.extend(b.orders.member.iter().map(|&m| remap[m as usize]));
        out.orders.day.append(&mut b.orders.day);
        out.orders.amount.append(&mut b.orders.amount);
        out.rows += b.rows;
        out.not_paid += b.not_paid;
        out.after_cutoff += b.after_cutoff;
    }
    Ok(Some(out))
}

/// What [`read_orders`] read.
#[derive(Debug, Clone, Default)]
pub struct OrderCsv {
    /// The counted orders.
    pub orders: Orders,
    /// Data rows in the file.
    pub rows: u64,
    /// Rows skipped for their status (not paid or completed).
    pub not_paid: u64,
    /// Rows skipped because they were placed after `until`.
    pub after_cutoff: u64,
}

/// Block size of the streaming reader.
const BLOCK: usize = 1 << 20;

/// Column positions found in the header.
#[derive(Debug, Clone, Copy)]
struct Columns {
    member: usize,
    placed_at: usize,
    amount: usize,
    status: Option<usize>,
    /// Fields needed per row: one past the largest position used.
    needed: usize,
}

/// Split one CSV record into `out` (field byte ranges, possibly into
/// `scratch` for quoted fields). Fields are not trimmed.
pub(crate) fn split(line: &[u8], scratch: &mut Vec<u8>, out: &mut Vec<(bool, usize, usize)>) -> Result<()> {
    out.clear();
    if !line.contains(&b'"') {
        let mut start = 0;
        for (i, &b) in line.iter().enumerate() {
            if b == b',' {
                out.push((false, start, i));
                start = i + 1;
            }
        }
        out.push((false, start, line.len()));
        return Ok(());
    }
    // Slow path: unquote into `scratch`; `(true, a, b)` ranges point there.
    scratch.clear();
    let mut i = 0;
    loop {
        if line.get(i) == Some(&b'"') {
            let start = scratch.len();
            i += 1;
            loop {
                match line.get(i) {
                    Some(b'"') if line.get(i + 1) == Some(&b'"') => {
                        scratch.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        scratch.push(c);
                        i += 1;
                    }
                    None => return Err(CrmError::invalid("csv", "unterminated quoted field")),
                }
            }
            out.push((true, start, scratch.len()));
            match line.get(i) {
                None => return Ok(()),
                Some(b',') => i += 1,
                Some(_) => return Err(CrmError::invalid("csv", "unexpected character after a quoted field")),
            }
        } else {
            let start = i;
            while let Some(&c) = line.get(i) {
                if c == b',' {
                    break;
                }
                if c == b'"' {
                    return Err(CrmError::invalid("csv", "quote inside an unquoted field"));
                }
                i += 1;
            }
            out.push((false, start, i));
            if i >= line.len() {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// Bytes of `b` that are zero get their high bit set (exact: no carries between bytes).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !(((x & LO7) + LO7) | x | LO7)
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// Position of the first `'\n'` of `b` (eight bytes at a time).
pub(crate) fn memchr_nl(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let m = zero_bytes(w ^ (ONES * u64::from(b'\n')));
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b[i..].iter().position(|&c| c == b'\n').map(|p| i + p)
}

/// Split the line starting at `pos` into `fields` (ranges relative to `pos`), eight
/// bytes at a time, and return where it ends (its `'\n'`, or the end of `buf`).
/// `None` when the line has a quote: [`split`] must unquote it.
pub(crate) fn scan_line(buf: &[u8], pos: usize, fields: &mut Vec<(bool, usize, usize)>) -> Option<usize> {
    fields.clear();
    let mut start = pos;
    let mut hit = |j: usize, c: u8, fields: &mut Vec<(bool, usize, usize)>| -> Option<bool> {
        match c {
            b',' => {
                fields.push((false, start - pos, j - pos));
                start = j + 1;
                Some(false)
            }
            b'\n' => {
                fields.push((false, start - pos, j - pos));
                Some(true)
            }
            _ => None,
        }
    };
    let mut i = pos;
    while i + 8 <= buf.len() {
        let w = u64::from_le_bytes(buf[i..i + 8].try_into().unwrap_or_default());
        let mut m = zero_bytes(w ^ (ONES * u64::from(b',')))
            | zero_bytes(w ^ (ONES * u64::from(b'\n')))
            | zero_bytes(w ^ (ONES * u64::from(b'"')));
        while m != 0 {
            let j = i + m.trailing_zeros() as usize / 8;
            if hit(j, buf[j], fields)? {
                return Some(j);
            }
            m &= m - 1;
        }
        i += 8;
    }
    for (j, &c) in buf.iter().enumerate().skip(i) {
        if matches!(c, b',' | b'\n' | b'"') && hit(j, c, fields)? {
            return Some(j);
        }
    }
    fields.push((false, start - pos, buf.len() - pos));
    Some(buf.len())
}

/// The next line of `buf` from `*pos`, which moves past its line end: the
/// line without `\n` or `\r\n`, cut into `fields` (see [`split`]), or
/// `None` for a blank line. `fast`: cut a line without quotes in the same
/// pass that finds its end ([`scan_line`]; data rows); `bom`: drop a leading
/// byte-order mark first (the first line of a file). The order and order-line
/// readers share it, so both treat line ends, blank lines and quotes alike.
#[inline]
pub(crate) fn next_line<'b>(
    buf: &'b [u8],
    pos: &mut usize,
    fast: bool,
    bom: bool,
    fields: &mut Vec<(bool, usize, usize)>,
    scratch: &mut Vec<u8>,
) -> Result<Option<&'b [u8]>> {
    let start = *pos;
    let scanned = if fast { scan_line(buf, start, fields) } else { None };
    let end = scanned.unwrap_or_else(|| memchr_nl(&buf[start..]).map_or(buf.len(), |p| start + p));
    let mut line = &buf[start..end];
    *pos = end + 1;
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    if bom && line.starts_with(b"\xef\xbb\xbf") {
        line = &line[3..];
    }
    if trim(line).is_empty() {
        return Ok(None);
    }
    if scanned.is_some() {
        // Without the '\r' the last field ends earlier.
        if let Some(last) = fields.last_mut() {
            last.2 = last.2.min(line.len());
            last.1 = last.1.min(last.2);
        }
    } else {
        split(line, scratch, fields)?;
    }
    Ok(Some(line))
}

pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0')))
}

/// Parse a date or RFC 3339 instant into seconds since the epoch (UTC).
pub(crate) fn parse_instant(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day == 0 || day > month_days[month as usize - 1] {
        return None;
    }
    let days = i64::from(days_from_civil(i64::from(year), month, day));
    if b.len() == 10 {
        return Some(days * 86_400);
    }
    // THH:MM:SS[.fff](Z|±HH:MM)
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, s) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &rest[1 + n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (oh, om) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    Some(days * 86_400 + i64::from(h * 3600 + mi * 60 + s) - offset)
}

/// Parse a plain decimal (`12`, `12.5`, `-0.25`) into minor units at `scale`.
/// `None` when malformed, too precise or out of range.
pub(crate) fn parse_minor(b: &[u8], scale: u32) -> Option<i64> {
    let (negative, b) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(p) => (&b[..p], &b[p + 1..]),
        None => (b, &b[..0]),
    };
    if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in int {
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    for k in 0..scale as usize {
        let d = frac.get(k).map_or(0, |c| i64::from(c - b'0'));
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    // Digits beyond the scale must be zeros: money is never rounded silently.
    if frac.iter().skip(scale as usize).any(|&c| c != b'0') {
        return None;
    }
    Some(if negative { -v } else { v })
}

impl Columns {
    fn from_header(fields: &[&[u8]]) -> Result<Columns> {
        let find = |name: &str| fields.iter().position(|f| trim(f) == name.as_bytes());
        let need = |name: &'static str| {
            find(name).ok_or_else(|| CrmError::invalid(name, "the order CSV header has no such column"))
        };
        let (member, placed_at, amount, status) =
            (need("member_id")?, need("placed_at")?, need("amount")?, find("status"));
        let needed = 1 + member.max(placed_at).max(amount).max(status.unwrap_or(0));
        Ok(Columns { member, placed_at, amount, status, needed })
    }
}

/// Read an order CSV (see the module docs) into columns.
///
/// Errors name the line and the column: `line 12: amount`.
pub fn read_orders(input: impl Read, options: OrderCsvOptions) -> Result<OrderCsv> {
    check_scale(options.scale)?;
    let (out, columns) = read_stream(input, options, None)?;
    if columns.is_none() {
        return Err(CrmError::invalid("csv", "empty input (expected a header)"));
    }
    Ok(out)
}

fn check_scale(scale: u32) -> Result<()> {
    if scale > 18 {
        return Err(CrmError::invalid("scale", "at most 18 decimal places for 64-bit minor units"));
    }
    Ok(())
}

/// The reader behind [`read_orders`]: with `columns` already known (a block of rows after
/// the header, see [`read_orders_path`]) every line is a data row, numbered from 1 within
/// the block. Returns the columns found (or given) with the rows.
fn read_stream(
    mut input: impl Read,
    mut options: OrderCsvOptions,
    mut columns: Option<Columns>,
) -> Result<(OrderCsv, Option<Columns>)> {
    let header_pending = columns.is_none();
    let until = options.until.map(|t| t.timestamp());
    let mut out = OrderCsv { orders: Orders { scale: options.scale, ..Orders::default() }, ..OrderCsv::default() };
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK * 2);
    let mut fields: Vec<(bool, usize, usize)> = Vec::new();
    let mut scratch = Vec::new();
    let mut line_no: u64 = 0;
    let mut staged: Vec<(usize, usize, u64)> = Vec::new();
    let mut last_id: Vec<u8> = Vec::new();
    let mut last_index = u32::MAX;
    let ids = &mut out.orders.ids;
    let (mut eof, mut consumed) = (false, 0u64);
    while !eof {
        let filled = buf.len();
        buf.resize(filled + BLOCK, 0);
        let n = loop {
            match input.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CrmError::invalid("csv", format!("read failed: {e}"))),
            }
        };
        buf.truncate(filled + n);
        eof = n == 0;
        // Process complete lines (all of them at the end of the input).
        let complete = if eof {
            buf.len()
        } else {
            match buf.iter().rposition(|&c| c == b'\n') {
                Some(p) => p + 1,
                None => continue,
            }
        };
        let mut pos = 0;
        while pos < complete {
            line_no += 1;
            let at = |field: &str, reason: String| CrmError::invalid(format!("line {line_no}: {field}"), reason);
            // Data rows (the header is known) take the single pass.
            let bom = header_pending && line_no == 1;
            let line = match next_line(&buf[..complete], &mut pos, columns.is_some(), bom, &mut fields, &mut scratch) {
                Ok(Some(line)) => line,
                Ok(None) => continue,
                Err(e) => return Err(at("csv", e.to_string())),
            };
            let get = |i: usize| {
                let (quoted, a, b) = fields[i];
                trim(if quoted { &scratch[a..b] } else { &line[a..b] })
            };
            let Some(cols) = &columns else {
                let header: Vec<&[u8]> = (0..fields.len()).map(get).collect();
                columns = Some(Columns::from_header(&header)?);
                continue;
            };
            out.rows += 1;
            if fields.len() < cols.needed {
                return Err(at("csv", format!("{} fields, the header needs {}", fields.len(), cols.needed)));
            }
            if let Some(s) = cols.status {
                let status = match get(s) {
                    b"paid" => OrderStatus::Paid,
                    b"completed" => OrderStatus::Completed,
                    b"placed" => OrderStatus::Placed,
                    b"cancelled" => OrderStatus::Cancelled,
                    other => return Err(at("status", format!("unknown status {:?}", text(other)))),
                };
                if !status.earns() {
                    out.not_paid += 1;
                    continue;
                }
            }
            let placed = get(cols.placed_at);
            let secs =
                parse_instant(placed).ok_or_else(|| at("placed_at", format!("{:?} is not RFC 3339", text(placed))))?;
            if until.is_some_and(|u| secs > u) {
                out.after_cutoff += 1;
                continue;
            }
            let amount = get(cols.amount);
            let minor = parse_minor(amount, options.scale).ok_or_else(|| {
                at("amount", format!("{:?} is not a decimal with at most {} places", text(amount), options.scale))
            })?;
            let (quoted, ..) = fields[cols.member];
            let id = get(cols.member);
            if id.is_empty() {
                return Err(at("member_id", "is empty".into()));
            }
            if quoted {
                // `scratch` is reused by the next line: intern now.
                let i = ids.intern(id).map_err(|e| at("member_id", e.to_string()))?;
                staged.push((usize::MAX, i as usize, line_no));
            } else {
                let start = id.as_ptr() as usize - buf.as_ptr() as usize;
                staged.push((start, start + id.len(), line_no));
            }
            out.orders.day.push(secs.div_euclid(86_400) as Day);
            out.orders.amount.push(minor);
        }
        // Intern the block's member ids in one tight loop: the table lookups are then
        // independent loads the CPU overlaps, not one cache miss after each parsed row.
        for &(a, b, line) in &staged {
            let index = if a == usize::MAX {
                b as u32
            } else if last_index != u32::MAX && buf[a..b] == last_id[..] {
                last_index
            } else {
                let id = &buf[a..b];
                let i =
                    ids.intern(id).map_err(|e| CrmError::invalid(format!("line {line}: member_id"), e.to_string()))?;
                // Orders of one member are often adjacent: remember the last id.
                if b - a > 8 {
                    last_id.clear();
                    last_id.extend_from_slice(id);
                    last_index = i;
                }
                i
            };
            out.orders.member.push(index);
        }
        staged.clear();
        consumed += complete as u64;
        if let Some(total) = options.expected_bytes.take_if(|_| out.rows > 0) {
            // Size the columns once, with 2 % to spare, from the bytes per row seen so far.
            let rows = (total as f64 / consumed as f64 * out.rows as f64 * 1.02) as usize;
            let more = rows.saturating_sub(out.orders.member.len());
            out.orders.member.reserve(more);
            out.orders.day.reserve(more);
            out.orders.amount.reserve(more);
        }
        buf.drain(..complete.min(buf.len()));
    }
    Ok((out, columns))
}

/// Customer summaries for the value models, one row per customer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SummaryCsv {
    /// The customer id column when there is one (`ID`, `id`, `customer_id` or `member_id`).
    pub id: Vec<String>,
    pub frequency: Vec<f64>,
    pub recency: Vec<f64>,
    pub t: Vec<f64>,
    /// Mean repeat-transaction value, when the file has `monetary_value` (or `zbar`).
    pub monetary: Option<Vec<f64>>,
}

/// Read a summary CSV: columns `frequency` (or `x`), `recency` (or `t_x`), `T`,
/// and optionally `monetary_value` (or `zbar`) and an id column.
pub fn read_summary(input: impl Read) -> Result<SummaryCsv> {
    let mut text_in = String::new();
    let mut input = input;
    input.read_to_string(&mut text_in).map_err(|e| CrmError::invalid("csv", format!("read failed: {e}")))?;
    let mut lines = text_in.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| CrmError::invalid("csv", "empty input (expected a header)"))?;
    let (mut scratch, mut fields) = (Vec::new(), Vec::new());
    let header = header.trim_start_matches('\u{feff}');
    split(header.as_bytes(), &mut scratch, &mut fields)?;
    let names: Vec<String> =
        fields.iter().map(|&(q, a, b)| text(trim(if q { &scratch[a..b] } else { &header.as_bytes()[a..b] }))).collect();
    let find = |alts: &[&str]| names.iter().position(|n| alts.contains(&n.as_str()));
    let need = |name: &'static str, alts: &[&str]| {
        find(alts).ok_or_else(|| CrmError::invalid(name, "the summary CSV header has no such column"))
    };
    let (fi, ri, ti) =
        (need("frequency", &["frequency", "x"])?, need("recency", &["recency", "t_x"])?, need("T", &["T"])?);
    let mi = find(&["monetary_value", "zbar", "monetary"]);
    let ii = find(&["ID", "id", "customer_id", "member_id"]);
    let mut s = SummaryCsv { monetary: mi.map(|_| Vec::new()), ..SummaryCsv::default() };
    for (n, line) in lines {
        let line = line.trim_end_matches('\r');
        split(line.as_bytes(), &mut scratch, &mut fields)
            .map_err(|e| CrmError::invalid(format!("line {}: csv", n + 1), e.to_string()))?;
        let get = |i: usize, name: &str| -> Result<&[u8]> {
            let &(q, a, b) =
                fields.get(i).ok_or_else(|| CrmError::invalid(format!("line {}: {name}", n + 1), "missing field"))?;
            Ok(trim(if q { &scratch[a..b] } else { &line.as_bytes()[a..b] }))
        };
        let num = |i: usize, name: &str| -> Result<f64> {
            let f = get(i, name)?;
            std::str::from_utf8(f).ok().and_then(|t| t.parse::<f64>().ok()).filter(|v| v.is_finite()).ok_or_else(|| {
                CrmError::invalid(format!("line {}: {name}", n + 1), format!("{:?} is not a number", text(f)))
            })
        };
        s.frequency.push(num(fi, "frequency")?);
        s.recency.push(num(ri, "recency")?);
        s.t.push(num(ti, "T")?);
        if let (Some(i), Some(m)) = (mi, s.monetary.as_mut()) {
            m.push(num(i, "monetary_value")?);
        }
        if let Some(i) = ii {
            s.id.push(text(get(i, "id")?));
        }
    }
    Ok(s)
}

/// Append an unsigned integer in decimal (the writers' hot path: no formatter).
#[inline]
pub fn push_uint(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 20];
    let n = uint_digits(&mut digits, v);
    out.extend_from_slice(&digits[20 - n..]);
}

/// Write `v` right-aligned into `digits`, two digits per division; returns how many digits.
#[inline]
fn uint_digits(digits: &mut [u8; 20], mut v: u64) -> usize {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
                                2021222324252627282930313233343536373839\
                                4041424344454647484950515253545556575859\
                                6061626364656667686970717273747576777879\
                                8081828384858687888990919293949596979899";
    let mut n = 0;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        digits[18 - n..20 - n].copy_from_slice(&PAIRS[pair..pair + 2]);
        n += 2;
    }
    if v >= 10 {
        let pair = v as usize * 2;
        digits[18 - n..20 - n].copy_from_slice(&PAIRS[pair..pair + 2]);
        n + 2
    } else {
        digits[19 - n] = b'0' + v as u8;
        n + 1
    }
}

/// Append `minor / 10^scale` with exactly `scale` decimals, as
/// `Decimal::new(minor, scale)` displays it (`-0.05`, `100.00`).
pub fn push_decimal(out: &mut Vec<u8>, minor: i64, scale: u32) {
    if minor < 0 {
        out.push(b'-');
    }
    let v = minor.unsigned_abs();
    let Some(unit) = 10u64.checked_pow(scale) else {
        // Scales past 19 digits: every digit of `v` is a fraction digit.
        out.extend_from_slice(b"0.");
        let mut digits = [0u8; 20];
        let n = uint_digits(&mut digits, v);
        out.extend(std::iter::repeat_n(b'0', scale as usize - n));
        out.extend_from_slice(&digits[20 - n..]);
        return;
    };
    push_uint(out, v / unit);
    if scale > 0 {
        out.push(b'.');
        let mut digits = [b'0'; 20];
        let written = uint_digits(&mut digits, v % unit);
        // Left-padded with zeros to `scale` digits (at most 19, as unit fits u64).
        let width = (scale as usize).max(written);
        out.extend_from_slice(&digits[20 - width..]);
    }
}

/// Append a CSV field, quoted when it needs to be (RFC 4180).
pub fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    if field.iter().any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &c in field {
            if c == b'"' {
                out.push(b'"');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_like_chrono() {
        for s in ["1997-01-01T12:00:00Z", "2024-02-29T23:59:59.999+08:00", "1969-12-31T23:00:00-05:30", "2000-03-01"] {
            let expect = if s.len() == 10 {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc()
            } else {
                DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
            };
            assert_eq!(parse_instant(s.as_bytes()), Some(expect.timestamp()), "{s}");
        }
        for bad in ["1997-02-29", "1997-13-01", "1997-01-01T24:00:00Z", "1997-01-01T12:00:00", "19970101", ""] {
            assert_eq!(parse_instant(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn amounts_are_exact_minor_units() {
        assert_eq!(parse_minor(b"11.77", 2), Some(1177));
        assert_eq!(parse_minor(b"11.7", 2), Some(1170));
        assert_eq!(parse_minor(b"12", 2), Some(1200));
        assert_eq!(parse_minor(b".5", 2), Some(50));
        assert_eq!(parse_minor(b"-0.25", 2), Some(-25));
        assert_eq!(parse_minor(b"1.230", 2), Some(123));
        for bad in ["1.234", "1e3", "", ".", "1,5", "99999999999999999999"] {
            assert_eq!(parse_minor(bad.as_bytes(), 2), None, "{bad}");
        }
    }

    #[test]
    fn reads_orders_with_quotes_status_and_cutoff() {
        let csv = "\u{feff}member_id,order_id,placed_at,amount,status\r\n\
                   7,a,1997-01-01T12:00:00Z,11.77,paid\r\n\
                   \"7\",b,1997-01-02T12:00:00Z,\"1,0\",paid\n";
        let e = read_orders(csv.as_bytes(), OrderCsvOptions::default()).unwrap_err();
        assert_eq!(e.field(), Some("line 3: amount"));
        let csv = "member_id,order_id,placed_at,amount,status\n\
                   7,a,1997-01-01T12:00:00Z,11.77,paid\n\
                   \"7\",\"b,\"\"x\"\"\",1997-01-02T23:30:00-01:00,5,completed\n\
                   8,c,1997-01-02T12:00:00Z,3.5,cancelled\n\
                   \n\
                   9,d,1997-01-05T00:00:00Z,1,paid";
        let until = Some(DateTime::parse_from_rfc3339("1997-01-04T00:00:00Z").unwrap().with_timezone(&Utc));
        let r = read_orders(csv.as_bytes(), OrderCsvOptions { until, ..OrderCsvOptions::default() }).unwrap();
        assert_eq!((r.rows, r.not_paid, r.after_cutoff), (4, 1, 1));
        assert_eq!(r.orders.member, [0, 0]);
        assert_eq!(r.orders.amount, [1177, 500]);
        let d0 = days_from_civil(1997, 1, 1);
        assert_eq!(r.orders.day, [d0, d0 + 2]);
        assert_eq!(r.orders.ids.get(0), "7");
    }

    #[test]
    fn parallel_blocks_read_like_one_stream() {
        let mut csv = String::from("member_id,order_id,placed_at,amount,status\r\n");
        for i in 0..3_000u32 {
            let id = match i % 7 {
                0 => format!("\"m,{}\"", i % 101),
                1 => format!("{}", i % 53),
                _ => format!("m{}", (i * 31) % 211),
            };
            let status = if i % 11 == 0 { "cancelled" } else { "paid" };
            let eol = if i % 3 == 0 { "\r\n" } else { "\n" };
            csv +=
                &format!("{id},o{i},1997-0{}-1{}T12:00:00Z,{}.{:02},{status}{eol}", 1 + i % 9, i % 10, i % 97, i % 100);
            if i % 500 == 0 {
                csv += "\n";
            }
        }
        csv += "5,last,1997-03-01,1.5,paid";
        let path = std::env::temp_dir().join(format!("crm-parallel-{}.csv", std::process::id()));
        std::fs::write(&path, &csv).unwrap();
        let until = Some(DateTime::parse_from_rfc3339("1997-08-31T00:00:00Z").unwrap().with_timezone(&Utc));
        let options = OrderCsvOptions { until, ..OrderCsvOptions::default() };
        let one = read_orders(csv.as_bytes(), options).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let open = || std::fs::File::open(&path).map_err(|e| CrmError::invalid("path", e.to_string()));
        for threads in [2, 3, 8] {
            let many = read_parallel(&file, csv.len() as u64, threads, options, &open).unwrap().unwrap();
            assert_eq!((many.rows, many.not_paid, many.after_cutoff), (one.rows, one.not_paid, one.after_cutoff));
            // Same ids per row (indices may differ: quoted ids are interned as read, others per block).
            let ids = |r: &OrderCsv| -> Vec<String> {
                r.orders.member.iter().map(|&m| r.orders.ids.get(m).to_owned()).collect()
            };
            assert_eq!(ids(&many), ids(&one), "{threads}");
            assert_eq!(many.orders.day, one.orders.day);
            assert_eq!(many.orders.amount, one.orders.amount);
            assert_eq!(many.orders.ids.len(), one.orders.ids.len());
        }
        // A bad row fails the parallel read; `read_orders_path` then names its line sequentially.
        let bad = csv.replacen("o1500,", "o1500,x", 1);
        std::fs::write(&path, &bad).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert!(read_parallel(&file, bad.len() as u64, 2, options, &open).is_err());
        let e = read_orders(bad.as_bytes(), options).unwrap_err();
        assert_eq!(e.field(), Some("line 1505: placed_at")); // 1 header + 3 blank lines before it
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn writers_match_decimal_display() {
        for (minor, scale) in [
            (0, 2),
            (5, 2),
            (-5, 2),
            (1177, 2),
            (100_000, 2),
            (123, 0),
            (i64::MIN, 4),
            (7, 3),
            (99, 2),
            (100, 2),
            (123_456_789_012, 5),
            (i64::MAX, 18),
            (-1, 18),
        ] {
            let mut out = Vec::new();
            push_decimal(&mut out, minor, scale);
            assert_eq!(String::from_utf8(out).unwrap(), rust_decimal::Decimal::new(minor, scale).to_string());
        }
        let mut out = Vec::new();
        for v in [0, 9, 10, 99, 100, 12_345, u64::MAX] {
            let mut out = Vec::new();
            push_uint(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
        push_uint(&mut out, u64::MAX);
        push_field(&mut out, b",a\"b");
        assert_eq!(out, b"18446744073709551615\",a\"\"b\"");
    }

    #[test]
    fn summary_reads_either_header() {
        let s = read_summary("ID,x,t_x,T,zbar\n1,2,30.43,38.86,22.35\n2,0,0,38.86,0\n".as_bytes()).unwrap();
        assert_eq!(s.frequency, [2.0, 0.0]);
        assert_eq!(s.monetary, Some(vec![22.35, 0.0]));
        assert_eq!(s.id, ["1", "2"]);
        let e = read_summary("frequency,recency,T\n1,x,3\n".as_bytes()).unwrap_err();
        assert_eq!(e.field(), Some("line 2: recency"));
    }
}
