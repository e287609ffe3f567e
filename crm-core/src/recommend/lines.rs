//! Order lines as columns, and a fast reader for the order-line CSV.
//!
//! CSV: a header naming at least `member_id`, `order_id`, `placed_at` and `sku` (any
//! order, other columns ignored); `category` (empty: none) and `qty` (a positive
//! integer, 1 when the column is absent) are read when present; `price` is allowed
//! and not used (the model is about what is bought together, not what it cost). When
//! there is a `status` column only `paid` and `completed` lines count, as for points.
//! `placed_at` is RFC 3339 or a bare date (midnight UTC), as in the order CSV of
//! [`crate::analytics::csv`], whose line splitter this reader shares.
//!
//! A large file is cut at line ends into one block per core; each block is parsed on its
//! own thread with its own id tables, and the blocks are appended in file order (ids
//! of later blocks re-interned, so the indices are the ones a sequential read assigns).
//! On any error the input is parsed again on one thread, so errors always name the
//! same line (`line 12: qty`).
//!
//! Interning is most of the cost (four id columns, ten million lines for the benchmark),
//! so: a line whose member or order id is the one of the line before (the lines of an
//! order come together) reuses its index, found by comparing the raw bytes with that
//! line's rather than looking the previous id up (a random read per line for a million
//! members); and integer ids are indexed directly up to one value per 32 bytes of input,
//! so the second block, whose first order id is already in the millions, does not hash
//! them all.

use std::io::Read;

use crate::analytics::csv::{memchr_nl, next_line, parse_instant, split, text, trim};
use crate::analytics::orders::prefix;
use crate::analytics::MemberIds;
use crate::error::{CrmError, Result};

/// Marker for "no category".
pub const NO_CATEGORY: u32 = u32::MAX;

/// Order lines as columns: row `i` is `qty[i]` of `sku[i]` in order `order[i]` of
/// member `member[i]`, placed at `placed_at[i]` (seconds since the epoch, UTC).
#[derive(Debug, Clone, Default)]
pub struct OrderLines {
    pub members: MemberIds,
    pub orders: MemberIds,
    pub skus: MemberIds,
    pub categories: MemberIds,
    pub member: Vec<u32>,
    pub order: Vec<u32>,
    pub placed_at: Vec<i64>,
    pub sku: Vec<u32>,
    /// Category index per line, [`NO_CATEGORY`] when empty.
    pub category: Vec<u32>,
    pub qty: Vec<u32>,
    /// Lines skipped for their status (not paid or completed).
    pub not_paid: u64,
}

impl OrderLines {
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.member.len()
    }

    /// True when there is no line.
    pub fn is_empty(&self) -> bool {
        self.member.is_empty()
    }

    /// Append one line, interning its ids. `category` empty or `None`: no category.
    /// Errors name the field: an empty id, or a zero `qty`.
    pub fn push(
        &mut self,
        member_id: &str,
        order_id: &str,
        placed_at: i64,
        sku: &str,
        category: Option<&str>,
        qty: u32,
    ) -> Result<()> {
        let row = Row {
            member: member_id.as_bytes(),
            order: order_id.as_bytes(),
            placed_at,
            sku: sku.as_bytes(),
            category: category.unwrap_or("").as_bytes(),
            qty,
        };
        let n = self.member.len();
        let same = |ids: &MemberIds, col: &[u32], v: &[u8]| n > 0 && ids.bytes(col[n - 1]) == v;
        let (same_member, same_order) =
            (same(&self.members, &self.member, row.member), same(&self.orders, &self.order, row.order));
        self.push_row(&row, same_member, same_order).map_err(|(field, reason)| CrmError::invalid(field, reason))
    }

    /// Append a row; `same_member` / `same_order`: its member / order id is the one of the
    /// line before (the lines of an order come together: their ids are not looked up again).
    fn push_row(
        &mut self,
        r: &Row<'_>,
        same_member: bool,
        same_order: bool,
    ) -> std::result::Result<(), (&'static str, String)> {
        let intern = |ids: &mut MemberIds, v: &[u8], field: &'static str| {
            if v.is_empty() {
                return Err((field, "is empty".to_owned()));
            }
            ids.intern(v).map_err(|e| (field, reason_of(&e)))
        };
        if r.qty == 0 {
            return Err(("qty", "must be a positive integer".to_owned()));
        }
        let n = self.member.len();
        let member =
            if same_member && n > 0 { self.member[n - 1] } else { intern(&mut self.members, r.member, "member_id")? };
        let order =
            if same_order && n > 0 { self.order[n - 1] } else { intern(&mut self.orders, r.order, "order_id")? };
        let sku = intern(&mut self.skus, r.sku, "sku")?;
        let category =
            if r.category.is_empty() { NO_CATEGORY } else { intern(&mut self.categories, r.category, "category")? };
        self.member.push(member);
        self.order.push(order);
        self.placed_at.push(r.placed_at);
        self.sku.push(sku);
        self.category.push(category);
        self.qty.push(r.qty);
        Ok(())
    }

    /// Append `other` (ids re-interned into this one's tables).
    fn append(&mut self, other: OrderLines) -> Result<()> {
        fn remap(into: &mut MemberIds, from: &MemberIds, field: &str) -> Result<Vec<u32>> {
            (0..from.len() as u32)
                .map(|i| into.intern(from.bytes(i)).map_err(|e| CrmError::invalid(field, reason_of(&e))))
                .collect()
        }
        let m = remap(&mut self.members, &other.members, "member_id")?;
        let o = remap(&mut self.orders, &other.orders, "order_id")?;
        let s = remap(&mut self.skus, &other.skus, "sku")?;
        let c = remap(&mut self.categories, &other.categories, "category")?;
        let more = other.len();
        self.member.reserve_exact(more);
        self.order.reserve_exact(more);
        self.sku.reserve_exact(more);
        self.category.reserve_exact(more);
        self.placed_at.reserve_exact(more);
        self.qty.reserve_exact(more);
        self.member.extend(other.member.iter().map(|&i| m[i as usize]));
        self.order.extend(other.order.iter().map(|&i| o[i as usize]));
        self.sku.extend(other.sku.iter().map(|&i| s[i as usize]));
        self.category.extend(other.category.iter().map(|&i| if i == NO_CATEGORY { i } else { c[i as usize] }));
        self.placed_at.extend_from_slice(&other.placed_at);
        self.qty.extend_from_slice(&other.qty);
        self.not_paid += other.not_paid;
        Ok(())
    }
}

fn reason_of(e: &CrmError) -> String {
    match e {
        CrmError::Validation { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

struct Row<'a> {
    member: &'a [u8],
    order: &'a [u8],
    placed_at: i64,
    sku: &'a [u8],
    category: &'a [u8],
    qty: u32,
}

/// Column positions found in the header.
#[derive(Debug, Clone, Copy)]
struct Columns {
    member: usize,
    order: usize,
    placed_at: usize,
    sku: usize,
    category: Option<usize>,
    qty: Option<usize>,
    status: Option<usize>,
    needed: usize,
}

impl Columns {
    fn from_header(fields: &[&[u8]]) -> Result<Columns> {
        let find = |name: &str| fields.iter().position(|f| trim(f) == name.as_bytes());
        let need = |name: &'static str| {
            find(name).ok_or_else(|| CrmError::invalid(name, "the order-line CSV header has no such column"))
        };
        let (member, order, placed_at, sku) = (need("member_id")?, need("order_id")?, need("placed_at")?, need("sku")?);
        let (category, qty, status) = (find("category"), find("qty"), find("status"));
        let needed = 1 + [Some(member), Some(order), Some(placed_at), Some(sku), category, qty, status]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0);
        Ok(Columns { member, order, placed_at, sku, category, qty, status, needed })
    }
}

/// Read an order-line CSV (see the module docs) from a reader, on one thread.
pub fn read_order_lines(mut input: impl Read) -> Result<OrderLines> {
    let mut buf = Vec::new();
    input.read_to_end(&mut buf).map_err(|e| CrmError::invalid("csv", format!("read failed: {e}")))?;
    parse(&buf, 1)
}

/// Read an order-line CSV file, in parallel on `threads` threads (0: every core).
pub fn read_order_lines_path(path: impl AsRef<std::path::Path>, threads: usize) -> Result<OrderLines> {
    let path = path.as_ref();
    let buf =
        std::fs::read(path).map_err(|e| CrmError::invalid("path", format!("cannot read {}: {e}", path.display())))?;
    parse(&buf, threads)
}

/// Inputs below this size are parsed on one thread.
const PARALLEL_MIN_BYTES: usize = 8 << 20;

/// Parse a whole CSV held in memory (see [`read_order_lines_path`]).
pub fn parse(buf: &[u8], threads: usize) -> Result<OrderLines> {
    let threads = super::threads(threads);
    let header_end = memchr_nl(buf).map_or(buf.len(), |p| p + 1);
    let columns = header(&buf[..header_end])?;
    let body = &buf[header_end..];
    // Integer ids are indexed directly up to one value per 32 bytes of input (see
    // `MemberIds::with_direct_range`): a later block starts at large order ids.
    let direct = body.len() / 32;
    if threads > 1 && body.len() >= PARALLEL_MIN_BYTES {
        let mut bounds = vec![0];
        for k in 1..threads {
            let target = body.len() * k / threads;
            let at = memchr_nl(&body[target..]).map_or(body.len(), |p| target + p + 1);
            bounds.push(at.max(*bounds.last().unwrap_or(&0)));
        }
        bounds.push(body.len());
        bounds.dedup();
        let blocks: Vec<Result<OrderLines>> = std::thread::scope(|scope| {
            let handles: Vec<_> = bounds
                .windows(2)
                .map(|w| {
                    let block = &body[w[0]..w[1]];
                    // The first block's columns become the result: sized for every line.
                    let reserve = if w[0] == 0 { body.len() } else { block.len() };
                    scope.spawn(move || parse_body(block, columns, 1, reserve, direct))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(CrmError::invalid("csv", "reader panicked"))))
                .collect()
        });
        if blocks.iter().all(Result::is_ok) {
            let mut blocks = blocks.into_iter().flatten();
            let mut out = blocks.next().unwrap_or_default();
            for b in blocks {
                out.append(b)?;
            }
            return Ok(out);
        }
        // Fall through: the sequential parse names the line of the first error.
    }
    parse_body(body, columns, 1, body.len(), direct)
}

fn header(line: &[u8]) -> Result<Columns> {
    let mut line = line.strip_suffix(b"\n").unwrap_or(line);
    line = line.strip_suffix(b"\r").unwrap_or(line);
    line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    if trim(line).is_empty() {
        return Err(CrmError::invalid("csv", "empty input (expected a header)"));
    }
    let (mut scratch, mut fields) = (Vec::new(), Vec::new());
    split(line, &mut scratch, &mut fields).map_err(|e| CrmError::invalid("line 1: csv", reason_of(&e)))?;
    let names: Vec<&[u8]> = fields.iter().map(|&(q, a, b)| if q { &scratch[a..b] } else { &line[a..b] }).collect();
    Columns::from_header(&names)
}

/// Parse data rows; `first_line` is the line number of the header (rows follow it). The
/// columns are sized for `reserve_bytes` of input; `direct`: see [`MemberIds::with_direct_range`].
fn parse_body(body: &[u8], cols: Columns, first_line: u64, reserve_bytes: usize, direct: usize) -> Result<OrderLines> {
    let mut out = OrderLines {
        members: MemberIds::with_direct_range(direct),
        orders: MemberIds::with_direct_range(direct),
        skus: MemberIds::with_direct_range(direct),
        ..OrderLines::default()
    };
    // The member and order ids of the line before, as (first 8 bytes, length): the lines of
    // an order come together, and comparing with the line before costs no lookup.
    let key = |b: &[u8]| (b.len() <= 8).then(|| (prefix(b), b.len()));
    let (mut last_member, mut last_order) = (None, None);
    let estimate = reserve_bytes / 48;
    for v in [&mut out.member, &mut out.order, &mut out.sku, &mut out.category, &mut out.qty] {
        v.reserve(estimate);
    }
    out.placed_at.reserve(estimate);
    let mut fields: Vec<(bool, usize, usize)> = Vec::new();
    let mut scratch = Vec::new();
    let mut line_no = first_line;
    let mut pos = 0;
    while pos < body.len() {
        line_no += 1;
        let at = |field: &str, reason: String| CrmError::invalid(format!("line {line_no}: {field}"), reason);
        let line = match next_line(body, &mut pos, true, false, &mut fields, &mut scratch) {
            Ok(Some(line)) => line,
            Ok(None) => continue,
            Err(e) => return Err(at("csv", reason_of(&e))),
        };
        if fields.len() < cols.needed {
            return Err(at("csv", format!("{} fields, the header needs {}", fields.len(), cols.needed)));
        }
        let get = |i: usize| {
            let (quoted, a, b) = fields[i];
            trim(if quoted { &scratch[a..b] } else { &line[a..b] })
        };
        if let Some(s) = cols.status {
            match get(s) {
                b"paid" | b"completed" => {}
                b"placed" | b"cancelled" => {
                    out.not_paid += 1;
                    continue;
                }
                other => return Err(at("status", format!("unknown status {:?}", text(other)))),
            }
        }
        let placed = get(cols.placed_at);
        let placed_at =
            parse_instant(placed).ok_or_else(|| at("placed_at", format!("{:?} is not RFC 3339", text(placed))))?;
        let qty = match cols.qty {
            None => 1,
            Some(q) => {
                let v = get(q);
                parse_qty(v).ok_or_else(|| at("qty", format!("{:?} is not a positive integer", text(v))))?
            }
        };
        let row = Row {
            member: get(cols.member),
            order: get(cols.order),
            placed_at,
            sku: get(cols.sku),
            category: cols.category.map_or(&b""[..], get),
            qty,
        };
        let (member, order) = (key(row.member), key(row.order));
        let (same_member, same_order) =
            (member.is_some() && member == last_member, order.is_some() && order == last_order);
        out.push_row(&row, same_member, same_order).map_err(|(field, reason)| at(field, reason))?;
        (last_member, last_order) = (member, order);
    }
    Ok(out)
}

/// A positive integer of at most 9 digits.
fn parse_qty(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = b.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0'));
    (v > 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "member_id,order_id,placed_at,sku,category,qty,price\n\
                       m1,o1,2024-01-01T10:00:00Z,A,fruit,2,1.50\n\
                       m1,o1,2024-01-01T10:00:00Z,B,,1,3\n\
                       \"m,2\",o2,2024-01-02,A,fruit,1,1.50\r\n\
                       \n\
                       m1,o3,2024-02-01T10:00:00+08:00,C,veg,3,2\n";

    #[test]
    fn reads_lines_with_quotes_and_empty_categories() {
        let l = read_order_lines(CSV.as_bytes()).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l.member, [0, 0, 1, 0]);
        assert_eq!(l.members.get(1), "m,2");
        assert_eq!(l.sku, [0, 1, 0, 2]);
        assert_eq!(l.category, [0, NO_CATEGORY, 0, 1]);
        assert_eq!(l.qty, [2, 1, 1, 3]);
        assert_eq!(l.placed_at[3], 1_706_781_600 - 8 * 3600);
    }

    #[test]
    fn errors_name_line_and_field() {
        let bad = CSV.replace("C,veg,3", "C,veg,0");
        assert_eq!(read_order_lines(bad.as_bytes()).unwrap_err().field(), Some("line 6: qty"));
        let bad = CSV.replace("m1,o1,2024-01-01T10:00:00Z,B", "m1,,2024-01-01T10:00:00Z,B");
        assert_eq!(read_order_lines(bad.as_bytes()).unwrap_err().field(), Some("line 3: order_id"));
        let e = read_order_lines("member_id,order_id,placed_at\n".as_bytes()).unwrap_err();
        assert_eq!(e.field(), Some("sku"));
        assert_eq!(read_order_lines("".as_bytes()).unwrap_err().field(), Some("csv"));
    }

    #[test]
    fn parallel_blocks_parse_like_one() {
        let mut csv = String::from("member_id,order_id,placed_at,sku,category,qty\n");
        for i in 0..200_000u32 {
            csv += &format!(
                "m{},o{},2024-01-{:02}T00:00:00Z,s{},c{},{}\n",
                i % 977,
                i / 3,
                1 + i % 28,
                i % 313,
                i % 7,
                1 + i % 4
            );
        }
        let buf = csv.as_bytes();
        let one = parse(buf, 1).unwrap();
        let header_end = memchr_nl(buf).unwrap() + 1;
        let cols = header(&buf[..header_end]).unwrap();
        let mut many = OrderLines::default();
        let body = &buf[header_end..];
        let cut = memchr_nl(&body[body.len() / 2..]).unwrap() + body.len() / 2 + 1;
        many.append(parse_body(&body[..cut], cols, 1, cut, 0).unwrap()).unwrap();
        many.append(parse_body(&body[cut..], cols, 1, body.len() - cut, 1 << 22).unwrap()).unwrap();
        assert_eq!(many.member, one.member);
        assert_eq!(many.order, one.order);
        assert_eq!(many.sku, one.sku);
        assert_eq!(many.category, one.category);
        assert_eq!(many.qty, one.qty);
        assert_eq!(many.placed_at, one.placed_at);
    }
}
