//! Figures of a scored test set, computed as `../shared/peers/metrics.py`
//! computes them, so ours and the peers' compare: FPR and FNR at the
//! filter's own verdict, unsure %, (1-AUC)% by Mann-Whitney with ties
//! counted ½; and the ROC curve as CSV and SVG.

use std::fmt::Write as _;

use crate::samples::Label;

/// A filter's verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Spam,
    Ham,
    Unsure,
}

impl Verdict {
    pub fn letter(self) -> char {
        match self {
            Verdict::Spam => 'S',
            Verdict::Ham => 'H',
            Verdict::Unsure => 'U',
        }
    }
}

/// One scored test message.
#[derive(Debug, Clone)]
pub struct Scored {
    pub label: Label,
    /// Spam probability; higher is spammier.
    pub score: f64,
    pub verdict: Verdict,
    pub name: String,
}

/// The `scores` line format of `../shared/peers/`.
pub fn scores_line(s: &Scored) -> String {
    format!("{} {} {} {}", s.label.name(), s.score, s.verdict.letter(), s.name)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub messages: usize,
    pub ham: usize,
    pub spam: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    /// Percent of ham judged spam.
    pub fpr: f64,
    /// Percent of spam not judged spam (unsure counts as a miss).
    pub fnr: f64,
    /// Percent of all messages judged unsure.
    pub unsure: f64,
    /// (1 − AUC) × 100.
    pub one_minus_auc: f64,
}

pub fn summarize(scored: &[Scored]) -> Summary {
    let ham = scored.iter().filter(|s| s.label == Label::Ham).count();
    let spam = scored.len() - ham;
    let fp = scored
        .iter()
        .filter(|s| s.label == Label::Ham && s.verdict == Verdict::Spam)
        .count();
    let fn_ = scored
        .iter()
        .filter(|s| s.label == Label::Spam && s.verdict != Verdict::Spam)
        .count();
    let unsure = scored.iter().filter(|s| s.verdict == Verdict::Unsure).count();
    let pct = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    Summary {
        messages: scored.len(),
        ham,
        spam,
        false_positives: fp,
        false_negatives: fn_,
        fpr: pct(fp, ham),
        fnr: pct(fn_, spam),
        unsure: pct(unsure, scored.len()),
        one_minus_auc: 100.0 * (1.0 - auc(scored)),
    }
}

/// Area under the ROC curve: the probability that a random spam scores
/// above a random ham, ties counting ½ (Mann-Whitney U).
pub fn auc(scored: &[Scored]) -> f64 {
    let mut points: Vec<(f64, bool)> = scored
        .iter()
        .filter(|s| !s.score.is_nan())
        .map(|s| (s.score, s.label == Label::Spam))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let spam = points.iter().filter(|p| p.1).count() as f64;
    let ham = points.len() as f64 - spam;
    if spam == 0.0 || ham == 0.0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < points.len() {
        let mut j = i;
        while j < points.len() && points[j].0 == points[i].0 {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += average_rank * points[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    (rank_sum - spam * (spam + 1.0) / 2.0) / (spam * ham)
}

/// A point of a ROC curve: (false-positive rate, true-positive rate,
/// score threshold).
pub type RocPoint = (f64, f64, f64);

/// ROC points from the strictest threshold to the loosest.
pub fn roc(scored: &[Scored]) -> Vec<RocPoint> {
    let mut by_score: Vec<&Scored> = scored.iter().filter(|s| !s.score.is_nan()).collect();
    by_score.sort_by(|a, b| b.score.total_cmp(&a.score));
    let spam = by_score.iter().filter(|s| s.label == Label::Spam).count().max(1) as f64;
    let ham = by_score.iter().filter(|s| s.label == Label::Ham).count().max(1) as f64;
    let mut points = vec![(0.0, 0.0, f64::INFINITY)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < by_score.len() {
        let threshold = by_score[i].score;
        while i < by_score.len() && by_score[i].score == threshold {
            match by_score[i].label {
                Label::Spam => tp += 1.0,
                Label::Ham => fp += 1.0,
            }
            i += 1;
        }
        points.push((fp / ham, tp / spam, threshold));
    }
    points
}

pub fn roc_csv(points: &[RocPoint]) -> String {
    let mut out = String::from("fpr,tpr,threshold\n");
    for (fpr, tpr, t) in points {
        let _ = writeln!(out, "{fpr},{tpr},{t}");
    }
    out
}

/// The ROC curve as an SVG: false-positive rate on a log axis (where
/// filters differ: 0.01 % to 100 %), true-positive rate linear.
pub fn roc_svg(curves: &[(&str, &[RocPoint])]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 480.0;
    const LEFT: f64 = 70.0;
    const BOTTOM: f64 = 50.0;
    const TOP: f64 = 20.0;
    const RIGHT: f64 = 20.0;
    let (min_log, max_log) = (-4.0f64, 0.0f64);
    let x = |fpr: f64| {
        let l = fpr.max(1e-4).log10().clamp(min_log, max_log);
        LEFT + (l - min_log) / (max_log - min_log) * (W - LEFT - RIGHT)
    };
    let y = |tpr: f64| TOP + (1.0 - tpr) * (H - TOP - BOTTOM);
    let colours = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for decade in -4..=0 {
        let px = x(10f64.powi(decade));
        let _ = writeln!(
            svg,
            "<line x1=\"{px}\" y1=\"{TOP}\" x2=\"{px}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{px}\" y=\"{}\" text-anchor=\"middle\">{}%</text>",
            H - BOTTOM,
            H - BOTTOM + 16.0,
            100.0 * 10f64.powi(decade)
        );
    }
    for tick in 0..=10 {
        let t = f64::from(tick) / 10.0;
        let py = y(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{py}\" x2=\"{}\" y2=\"{py}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0}%</text>",
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            t * 100.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">false-positive rate (log)</text>\
         <text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">spam caught (true-positive rate)</text>",
        (LEFT + W - RIGHT) / 2.0,
        H - 10.0,
        (TOP + H - BOTTOM) / 2.0
    );
    for (k, (name, points)) in curves.iter().enumerate() {
        let colour = colours[k % colours.len()];
        let mut path = String::new();
        for (i, (fpr, tpr, _)) in points.iter().enumerate() {
            let _ = write!(path, "{}{:.1},{:.1} ", if i == 0 { "M" } else { "L" }, x(*fpr), y(*tpr));
        }
        let _ = writeln!(
            svg,
            "<path d=\"{path}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>"
        );
        let ly = TOP + 20.0 + 18.0 * k as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>",
            W - 200.0,
            W - 180.0,
            W - 175.0,
            ly + 4.0,
            xml_escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(label: Label, score: f64) -> Scored {
        let verdict = if score > 0.5 { Verdict::Spam } else { Verdict::Ham };
        Scored {
            label,
            score,
            verdict,
            name: String::new(),
        }
    }

    #[test]
    fn auc_with_ties_counts_half() {
        // perfect separation
        assert_eq!(auc(&[s(Label::Ham, 0.1), s(Label::Spam, 0.9)]), 1.0);
        // all tied: ½
        assert_eq!(auc(&[s(Label::Ham, 0.5), s(Label::Spam, 0.5)]), 0.5);
        // one inversion among 2×2 pairs: 3/4
        let v = [
            s(Label::Ham, 0.1),
            s(Label::Ham, 0.6),
            s(Label::Spam, 0.5),
            s(Label::Spam, 0.9),
        ];
        assert_eq!(auc(&v), 0.75);
        let sum = summarize(&v);
        assert_eq!((sum.false_positives, sum.false_negatives), (1, 1));
        assert_eq!(sum.fpr, 50.0);
        assert!((sum.one_minus_auc - 25.0).abs() < 1e-9);
    }

    #[test]
    fn roc_runs_from_origin_to_corner() {
        let v = [
            s(Label::Ham, 0.1),
            s(Label::Ham, 0.6),
            s(Label::Spam, 0.5),
            s(Label::Spam, 0.9),
        ];
        let r = roc(&v);
        assert_eq!(r.first().map(|p| (p.0, p.1)), Some((0.0, 0.0)));
        assert_eq!(r.last().map(|p| (p.0, p.1)), Some((1.0, 1.0)));
        assert!(roc_csv(&r).starts_with("fpr,tpr,threshold\n0,0,inf\n"));
        let svg = roc_svg(&[("ours <x>", &r)]);
        assert!(svg.starts_with("<svg") && svg.contains("ours &lt;x&gt;") && svg.trim_end().ends_with("</svg>"));
    }
}
