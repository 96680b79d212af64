//! Pure: charts as inline SVG, drawn on the server. No script and no style attributes (the
//! Content-Security-Policy allows neither inline): colours are presentation attributes and
//! classes from the console's stylesheet. Every bar has a `<title>`, so pointing at it says
//! its number, and each chart has a text alternative for screen readers.

use std::fmt::Write as _;

use super::html::esc;

/// Two series per day (drift opened and resolved) as grouped bars with a y axis, day labels
/// and a legend.
pub(crate) fn daily_bars(title: &str, days: &[(i64, u64, u64)], names: [&str; 2]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 28.0;
    const TOP: f64 = 24.0;
    let max = days.iter().map(|(_, a, b)| (*a).max(*b)).max().unwrap_or(0);
    let top = nice_ceiling(max);
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT - 8.0) / days.len().max(1) as f64;
    let bar = (slot * 0.38).clamp(1.0, 24.0);
    let total: (u64, u64) = days.iter().fold((0, 0), |(a, b), (_, x, y)| (a + x, b + y));
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(&format!(
            "{title}: {} {} and {} {} over {} days",
            total.0,
            names[0],
            total.1,
            names[1],
            days.len()
        ))
    );
    // Grid lines and the y axis's numbers.
    for i in 0..=5 {
        let v = top * i / 5;
        let y = TOP + plot_h - plot_h * v as f64 / top.max(1) as f64;
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            W - 8.0,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for (i, (day, a, b)) in days.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - 2.0 * bar) / 2.0;
        let date = crate::clock::rfc3339(*day, false).unwrap_or_default();
        let label = date.get(5..10).unwrap_or("");
        for (j, (v, class, name)) in [(a, "opened", names[0]), (b, "resolved", names[1])]
            .into_iter()
            .enumerate()
        {
            let h = plot_h * *v as f64 / top.max(1) as f64;
            let _ = write!(
                svg,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\"><title>{}: {v} {}</title></rect>",
                x + bar * j as f64,
                TOP + plot_h - h,
                esc(date.get(..10).unwrap_or("")),
                esc(name)
            );
        }
        if days.len() <= 16 || i % 2 == 0 {
            let _ = write!(
                svg,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + bar,
                H - 10.0,
                esc(label)
            );
        }
    }
    let _ = write!(
        svg,
        "<rect class=\"opened\" x=\"{LEFT}\" y=\"4\" width=\"10\" height=\"10\"/><text class=\"axis\" x=\"{}\" y=\"13\">{}</text>\
         <rect class=\"resolved\" x=\"{}\" y=\"4\" width=\"10\" height=\"10\"/><text class=\"axis\" x=\"{}\" y=\"13\">{}</text></svg>",
        LEFT + 14.0,
        esc(names[0]),
        LEFT + 110.0,
        LEFT + 124.0,
        esc(names[1])
    );
    svg
}

/// Parts of a whole as one stacked horizontal bar, with a legend giving each part's count.
/// `parts`: (label, CSS class, count).
pub(crate) fn stacked(title: &str, parts: &[(&str, &str, usize)]) -> String {
    const W: f64 = 640.0;
    let total: usize = parts.iter().map(|p| p.2).sum();
    let summary: Vec<String> = parts.iter().map(|(l, _, n)| format!("{n} {l}")).collect();
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} 56\" role=\"img\" aria-label=\"{}\">",
        esc(&format!("{title}: {}", summary.join(", ")))
    );
    let mut x = 0.0;
    for (label, class, n) in parts {
        if *n == 0 || total == 0 {
            continue;
        }
        let w = W * *n as f64 / total as f64;
        let _ = write!(
            svg,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"22\"><title>{n} {}</title></rect>",
            esc(label)
        );
        x += w;
    }
    if total == 0 {
        svg.push_str("<rect class=\"empty\" x=\"0\" y=\"0\" width=\"640\" height=\"22\"/>");
    }
    let mut lx = 0.0;
    for (label, class, n) in parts {
        let text = format!("{label} {n}");
        let _ = write!(
            svg,
            "<rect class=\"{class}\" x=\"{lx:.1}\" y=\"36\" width=\"10\" height=\"10\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"45\">{}</text>",
            lx + 14.0,
            esc(&text)
        );
        lx += 24.0 + 7.0 * text.len() as f64;
    }
    svg.push_str("</svg>");
    svg
}

/// One horizontal bar per label, longest first as given: (label, count).
pub(crate) fn bars(title: &str, rows: &[(String, usize)]) -> String {
    const W: f64 = 640.0;
    const LABEL: f64 = 160.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let h = 24.0 * rows.len().max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{}\">",
        esc(&format!(
            "{title}: {}",
            rows.iter()
                .map(|(l, n)| format!("{l} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    );
    if rows.is_empty() {
        svg.push_str("<text class=\"axis\" x=\"0\" y=\"16\">none</text>");
    }
    for (i, (label, n)) in rows.iter().enumerate() {
        let y = 24.0 * i as f64;
        let w = (W - LABEL - 60.0) * *n as f64 / max as f64;
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"opened\" x=\"{LABEL}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"16\"><title>{}: {n}</title></rect>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\">{n}</text>",
            LABEL - 8.0,
            y + 13.0,
            esc(label),
            y + 2.0,
            esc(label),
            LABEL + w + 6.0,
            y + 13.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The smallest of 5, 10, 20, 50 × 10ⁿ at or above `n`: five whole steps on the axis.
fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1;
    loop {
        for m in [5, 10, 20] {
            if m * step >= n {
                return m * step;
            }
        }
        step *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_say_their_numbers_and_escape_labels() {
        let day = 86_400_000;
        let svg = daily_bars("drift", &[(0, 3, 1), (day, 0, 7)], ["opened", "resolved"]);
        assert!(svg.contains("aria-label=\"drift: 3 opened and 8 resolved over 2 days\""));
        assert!(
            svg.contains("<title>1970-01-02: 7 resolved</title>"),
            "{svg}"
        );
        assert!(!svg.contains("style="), "no inline style (CSP)");
        let svg = bars("by origin", &[("<b>".into(), 2)]);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        let svg = stacked(
            "hosts",
            &[("in sync", "in_sync", 3), ("drifted", "drifted", 1)],
        );
        assert!(svg.contains("<title>3 in sync</title>") && svg.contains("drifted 1"));
        assert_eq!(
            [0, 4, 5, 7, 11, 99, 101].map(nice_ceiling),
            [5, 5, 5, 10, 20, 100, 200]
        );
    }
}
