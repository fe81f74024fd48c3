//! One self-contained HTML page: every chart inline (SVG, no scripts, no
//! files beside it) and every table, so it can be mailed or opened from
//! anywhere.

use std::fmt::Write;

use super::charts::Chart;
use super::figures::Figures;
use super::text;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn page(f: &Figures, charts: &[Chart]) -> String {
    let heading = text::heading(f);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 2em; color: #222; }}\n\
         figure {{ margin: 1.5em 0; }}\n\
         table {{ border-collapse: collapse; margin: 0.5em 0 2em; font-variant-numeric: tabular-nums; }}\n\
         th, td {{ padding: 0.2em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }}\n\
         th:first-child, td:first-child {{ text-align: left; }}\n\
         th {{ background: #f4f4f4; }}\n\
         </style></head><body>\n<h1>{}</h1>\n",
        escape(&heading),
        escape(&heading)
    );
    out.push_str("<section id=\"charts\">\n");
    for chart in charts {
        let _ = writeln!(
            out,
            "<figure id=\"chart-{}\" aria-label=\"{}\">{}</figure>",
            chart.name,
            escape(&chart.title),
            chart.svg
        );
    }
    out.push_str("</section>\n<section id=\"tables\">\n");
    for table in text::tables(f) {
        let _ = writeln!(out, "<h2>{}</h2>\n<table>", escape(&table.title));
        for (i, row) in table.rows.iter().enumerate() {
            let cell = if i == 0 { "th" } else { "td" };
            out.push_str("<tr>");
            for value in row {
                let _ = write!(out, "<{cell}>{}</{cell}>", escape(value));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    let l = &f.lines;
    let _ = writeln!(
        out,
        "</section>\n<p id=\"lines\">Lines: {} read, {} counted, {} outside the period, {} not understood.</p>",
        l.read, l.counted, l.outside_period, l.not_understood
    );
    if !l.examples.is_empty() {
        out.push_str("<ul>\n");
        for e in &l.examples {
            let _ = writeln!(out, "<li><code>{}</code></li>", escape(e));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}
