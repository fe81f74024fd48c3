//! The figures as aligned plain-text tables (the default on a terminal)
//! and as CSV for scripts: one long table, `figure,key,column,value`, so
//! one file holds every figure and a new column never shifts the others.

use std::fmt::Write;

use super::figures::{Counts, Figures, percent};

/// One table of the report: its title and its rows, the header first.
pub struct Table {
    pub title: String,
    pub rows: Vec<Vec<String>>,
}

/// Columns aligned: the first to the left, numbers to the right.
fn aligned(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
}

/// The refusal causes that occur in the period (the text leaves the
/// empty ones out; CSV and JSON keep every one).
fn causes_seen(f: &Figures) -> Vec<usize> {
    (0..f.totals.refused_by.len())
        .filter(|&i| f.totals.refused_by[i].1 > 0)
        .collect()
}

/// The report's heading line.
pub fn heading(f: &Figures) -> String {
    let period = match (&f.period.first_day, &f.period.last_day) {
        (Some(a), _) if f.period.days == 1 => format!("{a}, 1 day"),
        (Some(a), Some(b)) => format!("{a} to {b}, {} days", f.period.days),
        _ => "no mail in the period".to_owned(),
    };
    format!("Mail site report: {period} (days at UTC{})", f.period.utc_offset)
}

/// Every table of the report, in order.
pub fn tables(f: &Figures) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut title: String;

    let causes = causes_seen(f);
    title = "Mail per day (received: accepted for delivery; refused by cause)".to_owned();
    let mut header: Vec<String> = ["date", "day", "received", "refused"].map(String::from).to_vec();
    header.extend(causes.iter().map(|&i| f.totals.refused_by[i].0.to_owned()));
    header.extend(["discarded", "viruses"].map(String::from));
    let counts_row = |c: &Counts| {
        let mut row = vec![c.received.to_string(), c.refused.to_string()];
        row.extend(causes.iter().map(|&i| c.refused_by[i].1.to_string()));
        row.extend([c.discarded.to_string(), c.viruses.to_string()]);
        row
    };
    let mut rows = vec![header];
    for d in &f.days {
        let mut row = vec![d.date.clone(), d.weekday.to_owned()];
        row.extend(counts_row(&d.counts));
        rows.push(row);
    }
    let mut total = vec!["total".to_owned(), String::new()];
    total.extend(counts_row(&f.totals));
    rows.push(total);
    if f.period.days > 0 {
        let n = f.period.days as f64;
        let mut mean = vec!["per day".to_owned(), String::new()];
        mean.extend(
            counts_row(&f.totals)
                .iter()
                .map(|v| format!("{:.1}", v.parse::<f64>().unwrap_or(0.0) / n)),
        );
        rows.push(mean);
    }
    tables.push(Table {
        title: std::mem::take(&mut title),
        rows,
    });

    if !f.dnsbl_lists.is_empty() {
        title = "Refused by DNS list".to_owned();
        let mut rows = vec![vec!["list".to_owned(), "refused".to_owned()]];
        rows.extend(f.dnsbl_lists.iter().map(|(l, n)| vec![l.clone(), n.to_string()]));
        tables.push(Table {
            title: std::mem::take(&mut title),
            rows,
        });
    }

    title = "Average per weekday".to_owned();
    let mut rows = vec![
        ["day", "days", "received", "refused", "viruses"]
            .map(String::from)
            .to_vec(),
    ];
    for w in &f.weekdays {
        rows.push(vec![
            w.weekday.to_owned(),
            w.days.to_string(),
            format!("{:.1}", w.received),
            format!("{:.1}", w.refused),
            format!("{:.1}", w.viruses),
        ]);
    }
    tables.push(Table {
        title: std::mem::take(&mut title),
        rows,
    });

    if !f.virus_names.is_empty() {
        title = "Viruses found".to_owned();
        let mut rows = vec![vec!["virus".to_owned(), "messages".to_owned()]];
        rows.extend(f.virus_names.iter().map(|(v, n)| vec![v.clone(), n.to_string()]));
        tables.push(Table {
            title: std::mem::take(&mut title),
            rows,
        });
    }

    let share = |spam: u64, all: u64| {
        if all == 0 {
            "-".to_owned()
        } else {
            percent(spam as f64 * 100.0 / all as f64)
        }
    };
    match &f.user {
        Some(user) => title = format!("Local deliveries per day: all users, and {user}"),
        None => title = "Local deliveries per day (--user NAME adds one user's)".to_owned(),
    }
    let mut header = ["date", "delivered", "spam", "spam %"].map(String::from).to_vec();
    if let Some(user) = &f.user {
        header.extend([user.clone(), format!("{user} spam"), format!("{user} spam %")]);
    }
    let mut rows = vec![header];
    let delivery_row = |label: String, c: &Counts| {
        let mut row = vec![
            label,
            c.delivered.to_string(),
            c.spam.to_string(),
            share(c.spam, c.delivered),
        ];
        if f.user.is_some() {
            row.extend([
                c.user_delivered.to_string(),
                c.user_spam.to_string(),
                share(c.user_spam, c.user_delivered),
            ]);
        }
        row
    };
    for d in &f.days {
        rows.push(delivery_row(d.date.clone(), &d.counts));
    }
    rows.push(delivery_row("total".to_owned(), &f.totals));
    tables.push(Table {
        title: std::mem::take(&mut title),
        rows,
    });

    title = "IMAP and POP3 logins per day, from inside and outside the site's networks".to_owned();
    let mut rows = vec![
        ["date", "imap inside", "imap outside", "pop3 inside", "pop3 outside"]
            .map(String::from)
            .to_vec(),
    ];
    let session_row = |label: String, c: &Counts| {
        vec![
            label,
            c.imap_inside.to_string(),
            c.imap_outside.to_string(),
            c.pop_inside.to_string(),
            c.pop_outside.to_string(),
        ]
    };
    for d in &f.days {
        rows.push(session_row(d.date.clone(), &d.counts));
    }
    rows.push(session_row("total".to_owned(), &f.totals));
    tables.push(Table {
        title: std::mem::take(&mut title),
        rows,
    });

    title = "Received mail by size".to_owned();
    let mut rows = vec![["size", "messages", "share %"].map(String::from).to_vec()];
    for s in &f.sizes {
        rows.push(vec![s.bucket.to_owned(), s.count.to_string(), percent(s.share)]);
    }
    tables.push(Table {
        title: std::mem::take(&mut title),
        rows,
    });

    tables
}

/// The figures as aligned text.
pub fn text(f: &Figures) -> String {
    let mut out = heading(f);
    out.push_str("\n\n");
    for t in tables(f) {
        out.push_str(&t.title);
        out.push('\n');
        aligned(&mut out, &t.rows);
    }
    let l = &f.lines;
    let _ = writeln!(
        out,
        "Lines: {} read, {} counted, {} outside the period, {} not understood",
        l.read, l.counted, l.outside_period, l.not_understood
    );
    for e in &l.examples {
        let _ = writeln!(out, "  not understood: {e}");
    }
    out
}

/// One CSV field, quoted when it must be (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub fn csv(f: &Figures) -> String {
    let mut out = String::from("figure,key,column,value\n");
    let mut row = |figure: &str, key: &str, column: &str, value: String| {
        let _ = writeln!(out, "{figure},{},{},{value}", field(key), field(column));
    };
    let counts = |row: &mut dyn FnMut(&str, &str, &str, String), figure: &str, key: &str, c: &Counts| {
        row(figure, key, "received", c.received.to_string());
        row(figure, key, "refused", c.refused.to_string());
        for (cause, n) in &c.refused_by {
            row(figure, key, &format!("refused:{cause}"), n.to_string());
        }
        for (column, n) in [
            ("discarded", c.discarded),
            ("viruses", c.viruses),
            ("delivered", c.delivered),
            ("spam", c.spam),
            ("user_delivered", c.user_delivered),
            ("user_spam", c.user_spam),
            ("imap_inside", c.imap_inside),
            ("imap_outside", c.imap_outside),
            ("pop3_inside", c.pop_inside),
            ("pop3_outside", c.pop_outside),
        ] {
            row(figure, key, column, n.to_string());
        }
    };
    for d in &f.days {
        counts(&mut row, "day", &d.date, &d.counts);
    }
    counts(&mut row, "total", "period", &f.totals);
    for w in &f.weekdays {
        row("weekday", w.weekday, "days", w.days.to_string());
        row("weekday", w.weekday, "received", format!("{:.3}", w.received));
        row("weekday", w.weekday, "refused", format!("{:.3}", w.refused));
        row("weekday", w.weekday, "viruses", format!("{:.3}", w.viruses));
    }
    for (list, n) in &f.dnsbl_lists {
        row("dnsbl_list", list, "refused", n.to_string());
    }
    for (virus, n) in &f.virus_names {
        row("virus", virus, "messages", n.to_string());
    }
    for s in &f.sizes {
        row("size", s.bucket, "messages", s.count.to_string());
        row("size", s.bucket, "share", format!("{:.6}", s.share));
    }
    row("lines", "all", "read", f.lines.read.to_string());
    row("lines", "all", "counted", f.lines.counted.to_string());
    row("lines", "all", "outside_period", f.lines.outside_period.to_string());
    row("lines", "all", "not_understood", f.lines.not_understood.to_string());
    out
}
