//! The figures as SVG charts, drawn with plotters' SVG backend (no font
//! files: text is SVG `<text>`, which the browser sets). Each chart has a
//! title, both axes labelled and a legend naming every series.

use plotters::prelude::*;

use super::figures::Figures;
use super::tally::Cause;

/// One chart: its file name (without `.svg`), its title and its SVG.
pub struct Chart {
    pub name: &'static str,
    pub title: String,
    pub svg: String,
}

const SIZE: (u32, u32) = (960, 420);

/// Colours for series, in order (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A series: its name in the legend and one value per category.
struct Series {
    name: String,
    values: Vec<f64>,
}

/// How a chart's series are drawn.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Bars, each series on top of the ones before.
    Stacked,
    /// A line per series.
    Lines,
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Draws `series` over the `categories` (days, weekdays, buckets).
fn draw(title: &str, x_desc: &str, y_desc: &str, categories: &[String], series: &[Series], kind: Kind) -> String {
    let mut svg = String::new();
    if let Err(e) = draw_into(&mut svg, title, x_desc, y_desc, categories, series, kind) {
        // plotters fails only on an impossible layout; say so in the chart
        svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"60\"><text x=\"10\" y=\"30\">{}: {}</text></svg>",
            SIZE.0,
            escape(title),
            escape(&e.to_string())
        );
    }
    svg
}

fn draw_into(
    svg: &mut String,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    categories: &[String],
    series: &[Series],
    kind: Kind,
) -> Drawn {
    let n = categories.len().max(1);
    let top = match kind {
        Kind::Stacked => (0..n)
            .map(|i| {
                series
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                    .sum::<f64>()
            })
            .fold(0.0, f64::max),
        Kind::Lines => series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max),
    };
    // room above the data for the legend (a row is ~20 of the plot's
    // ~330 pixels), so it hides no bar
    let legend = (series.len() as f64 * 20.0 + 16.0) / 330.0;
    let top = if top <= 0.0 {
        1.0
    } else {
        top * 1.05 / (1.0 - legend).max(0.4)
    };
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)?;
    // at most ~12 labels on the category axis (plotters puts them at
    // round positions); only those at a whole category are named
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(n.min(12) + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 || i as usize >= categories.len() {
                String::new()
            } else {
                categories[i as usize].clone()
            }
        })
        .y_label_formatter(&|y| {
            if top < 10.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.0}")
            }
        })
        .draw()?;
    let mut base = vec![0.0f64; n];
    for (k, s) in series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let drawn = match kind {
            Kind::Stacked => {
                let bars: Vec<Rectangle<(f64, f64)>> = s
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let bar = Rectangle::new(
                            [(i as f64 - 0.4, base[i]), (i as f64 + 0.4, base[i] + v)],
                            color.filled(),
                        );
                        base[i] += v;
                        bar
                    })
                    .collect();
                chart.draw_series(bars)?
            }
            Kind::Lines => chart.draw_series(LineSeries::new(
                s.values.iter().enumerate().map(|(i, &v)| (i as f64, v)),
                color.stroke_width(2),
            ))?,
        };
        drawn
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Every chart of the report.
pub fn charts(f: &Figures) -> Vec<Chart> {
    let dates: Vec<String> = f.days.iter().map(|d| d.date.clone()).collect();
    let per_day = |pick: &dyn Fn(&super::figures::Counts) -> u64| -> Vec<f64> {
        f.days.iter().map(|d| pick(&d.counts) as f64).collect()
    };
    let mut charts = Vec::new();

    // Figure 2: received, and refused stacked by cause
    let mut outcomes = vec![Series {
        name: "received".into(),
        values: per_day(&|c| c.received),
    }];
    for (i, cause) in Cause::ALL.iter().enumerate() {
        if f.totals.refused_by[i].1 > 0 {
            outcomes.push(Series {
                name: format!("refused: {}", cause.name()),
                values: per_day(&|c| c.refused_by[i].1),
            });
        }
    }
    let title = "Mail per day: received and refused by cause".to_owned();
    charts.push(Chart {
        name: "daily",
        svg: draw(&title, "day", "messages", &dates, &outcomes, Kind::Stacked),
        title,
    });

    // Figure 3: averages by weekday
    let weekdays: Vec<String> = f.weekdays.iter().map(|w| w.weekday.to_owned()).collect();
    let title = "Average per weekday".to_owned();
    charts.push(Chart {
        name: "weekdays",
        svg: draw(
            &title,
            "weekday",
            "messages per day",
            &weekdays,
            &[
                Series {
                    name: "received".into(),
                    values: f.weekdays.iter().map(|w| w.received).collect(),
                },
                Series {
                    name: "refused".into(),
                    values: f.weekdays.iter().map(|w| w.refused).collect(),
                },
            ],
            Kind::Lines,
        ),
        title,
    });

    // Figure 5: viruses per day
    let title = "Viruses found per day".to_owned();
    charts.push(Chart {
        name: "viruses",
        svg: draw(
            &title,
            "day",
            "infected messages",
            &dates,
            &[Series {
                name: "messages with a virus".into(),
                values: per_day(&|c| c.viruses),
            }],
            Kind::Lines,
        ),
        title,
    });

    // Figure 4: one user's mail (or the site's), clean and spam
    let (who, clean, spam) = match &f.user {
        Some(user) => (
            user.clone(),
            per_day(&|c| c.user_delivered - c.user_spam),
            per_day(&|c| c.user_spam),
        ),
        None => (
            "all users".to_owned(),
            per_day(&|c| c.delivered - c.spam),
            per_day(&|c| c.spam),
        ),
    };
    let title = format!("Mail delivered per day to {who}, and the part called spam");
    charts.push(Chart {
        name: "spam_share",
        svg: draw(
            &title,
            "day",
            "messages",
            &dates,
            &[
                Series {
                    name: "clean".into(),
                    values: clean,
                },
                Series {
                    name: "spam".into(),
                    values: spam,
                },
            ],
            Kind::Stacked,
        ),
        title,
    });

    // Figure 6: IMAP and POP3 logins, inside and outside
    let title = "IMAP and POP3 logins per day".to_owned();
    charts.push(Chart {
        name: "logins",
        svg: draw(
            &title,
            "day",
            "logins",
            &dates,
            &[
                Series {
                    name: "IMAP, inside".into(),
                    values: per_day(&|c| c.imap_inside),
                },
                Series {
                    name: "IMAP, outside".into(),
                    values: per_day(&|c| c.imap_outside),
                },
                Series {
                    name: "POP3, inside".into(),
                    values: per_day(&|c| c.pop_inside),
                },
                Series {
                    name: "POP3, outside".into(),
                    values: per_day(&|c| c.pop_outside),
                },
            ],
            Kind::Stacked,
        ),
        title,
    });

    // Table 3: sizes
    let buckets: Vec<String> = f.sizes.iter().map(|s| s.bucket.to_owned()).collect();
    let title = "Received mail by size".to_owned();
    charts.push(Chart {
        name: "sizes",
        svg: draw(
            &title,
            "size",
            "share of received mail (%)",
            &buckets,
            &[Series {
                name: "share (%)".into(),
                values: f.sizes.iter().map(|s| s.share).collect(),
            }],
            Kind::Stacked,
        ),
        title,
    });
    charts
}
