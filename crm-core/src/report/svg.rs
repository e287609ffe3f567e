//! Inline SVG charts of our own: grouped horizontal bars and heatmaps.
//!
//! Two shapes cover every chart of the page (counts per category, several
//! programmes side by side, matrices of flows, cohorts and RFM scores), so a
//! charting crate would bring more than it saves. Each chart is one
//! `<svg data-chart="…" role="img">` with a `<title>`, a visible title, axes
//! with their units, and a legend where colours carry meaning. Text is
//! escaped here; coordinates are printed with one decimal so the same data
//! always gives the same bytes. The page's CSS sets the font; text widths are
//! estimated (CJK characters are full width) to size margins so labels do not
//! overlap.

use std::fmt::Write;

/// Series colours (colour-blind safe, after Okabe and Ito).
pub(crate) const PALETTE: [&str; 6] = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00"];

const WIDTH: f64 = 660.0;
const TITLE_H: f64 = 30.0;
const FONT: f64 = 12.0;

/// Escape text for HTML and SVG (element content and attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML text.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Estimated width in pixels of `s` at font size `size`.
pub(crate) fn text_width(s: &str, size: f64) -> f64 {
    // Generous for DejaVu Sans and its kin, the widest common fallback: a label that is
    // estimated too wide only costs margin, one estimated too narrow is cut off.
    let em = |c: char| match c {
        c if (c as u32) >= 0x2e80 => 1.0,
        'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | ' ' => 0.34,
        'm' | 'w' | 'M' | 'W' | '%' => 0.92,
        c if c.is_ascii_uppercase() => 0.74,
        _ => 0.62,
    };
    s.chars().map(em).sum::<f64>() * size
}

/// `s` cut to about `px` pixels, with an ellipsis when cut.
pub(crate) fn clip(s: &str, px: f64, size: f64) -> String {
    if text_width(s, size) <= px {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if text_width(&out, size) + text_width("…", size) + text_width(&c.to_string(), size) > px {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// A coordinate with at most one decimal (`12`, `12.5`).
fn n(x: f64) -> String {
    let x = if x.is_finite() { (x * 10.0).round() / 10.0 } else { 0.0 };
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x:.1}")
    }
}

/// A "nice" tick step (1, 2 or 5 × 10^k) giving at most five intervals up
/// to `max`, and the number of intervals.
pub(crate) fn ticks(max: f64) -> (f64, usize) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 1);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let count = (max / step).ceil().clamp(1.0, 10.0) as usize;
    (step, count)
}

/// The opening of a chart: the `<svg>` element, its accessible title and
/// the visible one.
fn open(out: &mut String, name: &str, title: &str, w: f64, h: f64) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" data-chart="{}" role="img" viewBox="0 0 {} {}" width="{}" height="{}"><title>{}</title><rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/><text x="0" y="18" font-size="14" font-weight="600" fill="#1d2330">{}</text>"##,
        escape(name),
        n(w),
        n(h),
        n(w),
        n(h),
        escape(title),
        n(w),
        n(h),
        escape(title)
    );
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, size: f64, fill: &str, s: &str) {
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="{anchor}" font-size="{}" fill="{fill}">{}</text>"#,
        n(x),
        n(y),
        n(size),
        escape(s)
    );
}

fn line(out: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str) {
    let _ = write!(
        out,
        r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{stroke}" stroke-width="1"/>"#,
        n(x1),
        n(y1),
        n(x2),
        n(y2)
    );
}

fn rect(out: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &str) {
    let _ = write!(
        out,
        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"{extra}/>"#,
        n(x),
        n(y),
        n(w.max(0.0)),
        n(h.max(0.0))
    );
}

/// Horizontal bars, one group per category and one bar per series in it.
pub(crate) struct Bars<'a> {
    /// The `data-chart` name.
    pub name: &'a str,
    pub title: &'a str,
    /// Title of the value axis, with its unit.
    pub axis: &'a str,
    /// Series names; a legend is drawn when there are two or more.
    pub series: Vec<String>,
    /// `(category label, [(value, label at the bar's end)] per series)`.
    pub groups: Vec<(String, Vec<(f64, String)>)>,
    /// Formats a tick value.
    pub tick: &'a dyn Fn(f64) -> String,
    /// Shown instead of the bars when there are none.
    pub empty: &'a str,
}

/// Draw [`Bars`]. Negative values are drawn as empty bars (their label
/// still says the value).
pub(crate) fn bars(b: &Bars) -> String {
    let nseries = b.series.len().max(1);
    let bar_h = if nseries > 1 { 14.0 } else { 18.0 };
    let gap = 10.0;
    let label_w = b.groups.iter().map(|(l, _)| text_width(l, FONT)).fold(40.0, f64::max).min(230.0);
    let end_w = b.groups.iter().flat_map(|(_, v)| v.iter().map(|(_, t)| text_width(t, 11.0))).fold(24.0, f64::max);
    let left = label_w + 16.0;
    let right = end_w.min(200.0) + 12.0;
    let plot_w = (WIDTH - left - right).max(160.0);
    let width = left + plot_w + right;
    let legend_h = if nseries > 1 { 22.0 } else { 0.0 };
    let top = TITLE_H + legend_h + 6.0;
    let group_h = bar_h * nseries as f64 + gap;
    let rows = b.groups.len().max(1) as f64;
    let plot_h = rows * group_h;
    let height = top + plot_h + 46.0;
    let max =
        b.groups.iter().flat_map(|(_, v)| v.iter().map(|(x, _)| *x)).filter(|x| x.is_finite()).fold(0.0, f64::max);
    let (step, count) = ticks(max);
    let scale_max = step * count as f64;
    let xs = |v: f64| left + plot_w * (v.max(0.0) / scale_max).min(1.0);

    let mut out = String::new();
    open(&mut out, b.name, b.title, width, height);
    if nseries > 1 {
        let mut x = 0.0;
        for (i, s) in b.series.iter().enumerate() {
            rect(&mut out, x, TITLE_H + 2.0, 12.0, 12.0, PALETTE[i % PALETTE.len()], "");
            let label = clip(s, 180.0, FONT);
            text(&mut out, x + 16.0, TITLE_H + 12.5, "start", FONT, "#1d2330", &label);
            x += 16.0 + text_width(&label, FONT) + 18.0;
        }
    }
    // Grid lines and tick labels.
    for k in 0..=count {
        let v = step * k as f64;
        let x = xs(v);
        line(&mut out, x, top, x, top + plot_h, if k == 0 { "#5a6372" } else { "#e3e7ee" });
        text(&mut out, x, top + plot_h + 15.0, "middle", 11.0, "#5a6372", &(b.tick)(v));
    }
    line(&mut out, left, top + plot_h, left + plot_w, top + plot_h, "#5a6372");
    text(&mut out, left + plot_w / 2.0, top + plot_h + 34.0, "middle", FONT, "#1d2330", b.axis);
    if b.groups.is_empty() {
        text(&mut out, left + plot_w / 2.0, top + group_h / 2.0 + 4.0, "middle", FONT, "#5a6372", b.empty);
    }
    for (g, (label, values)) in b.groups.iter().enumerate() {
        let y0 = top + g as f64 * group_h + gap / 2.0;
        let mid = y0 + bar_h * nseries as f64 / 2.0;
        text(&mut out, left - 8.0, mid + 4.0, "end", FONT, "#1d2330", &clip(label, 230.0, FONT));
        for (i, (v, t)) in values.iter().enumerate().take(nseries) {
            let y = y0 + i as f64 * bar_h;
            let x1 = xs(if v.is_finite() { *v } else { 0.0 });
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>"#,
                n(left),
                n(y + 1.0),
                n((x1 - left).max(0.0)),
                n(bar_h - 2.0),
                PALETTE[i % PALETTE.len()],
                escape(&format!("{label}: {t}"))
            );
            text(&mut out, x1 + 4.0, y + bar_h / 2.0 + 4.0, "start", 11.0, "#1d2330", t);
        }
    }
    out.push_str("</svg>");
    out
}

/// A matrix of cells coloured by intensity.
pub(crate) struct Heat<'a> {
    pub name: &'a str,
    pub title: &'a str,
    /// Title over the column labels and left of the row labels.
    pub x_axis: &'a str,
    pub y_axis: &'a str,
    pub cols: Vec<String>,
    pub rows: Vec<String>,
    /// `cells[row][col]`: intensity in 0..=1 and the text in the cell; `None`
    /// leaves the cell blank.
    pub cells: Vec<Vec<Option<(f64, String)>>>,
    /// Labels of the legend's two ends.
    pub legend: (String, String),
    pub empty: &'a str,
}

/// The fill of an intensity: white-blue to deep blue.
fn shade(t: f64) -> String {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(239.0, 8.0), mix(243.0, 69.0), mix(255.0, 148.0))
}

/// Draw a [`Heat`] map: the x-axis title over the column labels, row labels
/// on the left under the y-axis title, a five-step legend below.
pub(crate) fn heatmap(h: &Heat) -> String {
    let cell_text_w = h.cells.iter().flatten().flatten().map(|(_, t)| text_width(t, 11.0)).fold(0.0, f64::max);
    let col_w = h.cols.iter().map(|c| text_width(c, 11.0)).fold(cell_text_w, f64::max);
    let cell_w = (col_w + 10.0).clamp(30.0, 96.0);
    let cell_h = 24.0;
    // The y-axis title heads the column of row labels, level with the column labels.
    let label_w =
        h.rows.iter().map(|r| text_width(r, FONT)).fold(text_width(h.y_axis, FONT), f64::max).clamp(30.0, 260.0);
    let left = label_w + 16.0;
    let top = TITLE_H + 40.0;
    let ncols = h.cols.len().max(1) as f64;
    let nrows = h.rows.len().max(1) as f64;
    let grid_w = ncols * cell_w;
    let grid_h = nrows * cell_h;
    let x_axis_w = text_width(h.x_axis, FONT).min(600.0);
    let width = (left + grid_w.max(x_axis_w) + 16.0).max(320.0);
    let height = top + grid_h + 48.0;

    let mut out = String::new();
    open(&mut out, h.name, h.title, width, height);
    // Centred over the grid, or from its left edge when wider than the grid.
    if x_axis_w <= grid_w {
        text(&mut out, left + grid_w / 2.0, TITLE_H + 12.0, "middle", FONT, "#1d2330", h.x_axis);
    } else {
        text(&mut out, left, TITLE_H + 12.0, "start", FONT, "#1d2330", &clip(h.x_axis, 600.0, FONT));
    }
    text(&mut out, left - 8.0, top - 6.0, "end", FONT, "#5a6372", &clip(h.y_axis, 260.0, FONT));
    for (j, c) in h.cols.iter().enumerate() {
        let x = left + (j as f64 + 0.5) * cell_w;
        text(&mut out, x, top - 6.0, "middle", 11.0, "#1d2330", &clip(c, cell_w - 2.0, 11.0));
    }
    rect(&mut out, left, top, grid_w, grid_h, "none", r##" stroke="#c9d0db" stroke-width="1""##);
    if h.rows.is_empty() {
        text(&mut out, left + grid_w / 2.0, top + cell_h / 2.0 + 4.0, "middle", FONT, "#5a6372", h.empty);
    }
    for (i, r) in h.rows.iter().enumerate() {
        let y = top + i as f64 * cell_h;
        text(&mut out, left - 8.0, y + cell_h / 2.0 + 4.0, "end", FONT, "#1d2330", &clip(r, 220.0, FONT));
        for (j, cell) in h.cells.get(i).map(|c| c.as_slice()).unwrap_or_default().iter().enumerate().take(h.cols.len())
        {
            let Some((t, label)) = cell else { continue };
            let x = left + j as f64 * cell_w;
            let tip = format!("{r} · {}: {label}", h.cols[j]);
            let _ = write!(
                out,
                r##"<rect x="{}" y="{}" width="{}" height="{}" fill="{}" stroke="#ffffff" stroke-width="1"><title>{}</title></rect>"##,
                n(x),
                n(y),
                n(cell_w),
                n(cell_h),
                shade(*t),
                escape(&tip)
            );
            let ink = if t.is_finite() && *t > 0.5 { "#ffffff" } else { "#1d2330" };
            text(
                &mut out,
                x + cell_w / 2.0,
                y + cell_h / 2.0 + 4.0,
                "middle",
                11.0,
                ink,
                &clip(label, cell_w - 2.0, 11.0),
            );
        }
    }
    // Legend: five swatches from low to high.
    let ly = top + grid_h + 16.0;
    let lx = left;
    text(&mut out, lx, ly + 11.0, "start", 11.0, "#5a6372", &h.legend.0);
    let sx = lx + text_width(&h.legend.0, 11.0) + 8.0;
    for k in 0..5 {
        rect(&mut out, sx + k as f64 * 18.0, ly + 1.0, 18.0, 12.0, &shade(k as f64 / 4.0), "");
    }
    text(&mut out, sx + 5.0 * 18.0 + 8.0, ly + 11.0, "start", 11.0, "#5a6372", &h.legend.1);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(escape("a\u{1}b"), "a\u{fffd}b");
    }

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(0.0), (1.0, 1));
        assert_eq!(ticks(f64::NAN), (1.0, 1));
        assert_eq!(ticks(1_783.0), (500.0, 4));
        assert_eq!(ticks(9.0), (2.0, 5));
        let (step, count) = ticks(123_456.0);
        assert!(step * count as f64 >= 123_456.0);
    }

    #[test]
    fn long_labels_are_clipped() {
        let s = clip("a very long label indeed, longer than the room", 60.0, 12.0);
        assert!(s.ends_with('…') && text_width(&s, 12.0) <= 60.0 + 12.0);
        assert_eq!(clip("short", 60.0, 12.0), "short");
    }
}
