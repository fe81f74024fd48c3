//! The site's figures, computed once from a tally; every output (text,
//! CSV, JSON, charts, HTML) shows these and nothing else. The JSON
//! output is this structure as serde writes it.

use serde::Serialize;

use super::tally::{Cause, Day, SIZE_LABELS, Tally};
use super::time;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figures {
    pub period: Period,
    /// The seed's Figure 2 (and 4, 5, 6): one row per day.
    pub days: Vec<DayRow>,
    /// The sums over the period.
    pub totals: Counts,
    /// Figure 3: averages per weekday, Monday first.
    pub weekdays: Vec<WeekdayRow>,
    /// Refusals by DNS list, most first.
    pub dnsbl_lists: Vec<(String, u64)>,
    /// Viruses by name, most first.
    pub virus_names: Vec<(String, u64)>,
    /// Table 3: received mail by size.
    pub sizes: Vec<SizeRow>,
    /// The user of the per-user columns, if one was asked for.
    pub user: Option<String>,
    pub lines: LineCounts,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Period {
    pub first_day: Option<String>,
    pub last_day: Option<String>,
    pub days: usize,
    /// `+09:00`
    pub utc_offset: String,
}

/// A day's counts, or a period's.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub received: u64,
    pub refused: u64,
    /// By cause, in [`Cause::ALL`]'s order, named.
    pub refused_by: Vec<(&'static str, u64)>,
    pub discarded: u64,
    pub viruses: u64,
    pub delivered: u64,
    pub spam: u64,
    pub user_delivered: u64,
    pub user_spam: u64,
    pub imap_inside: u64,
    pub imap_outside: u64,
    pub pop_inside: u64,
    pub pop_outside: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DayRow {
    pub date: String,
    pub weekday: &'static str,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WeekdayRow {
    pub weekday: &'static str,
    /// How many days of the period fell on it.
    pub days: u64,
    pub received: f64,
    pub refused: f64,
    pub viruses: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SizeRow {
    pub bucket: &'static str,
    pub count: u64,
    /// Percent of the received messages.
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineCounts {
    pub read: u64,
    pub counted: u64,
    pub outside_period: u64,
    pub not_understood: u64,
    pub examples: Vec<String>,
}

impl Counts {
    fn of(d: &Day) -> Counts {
        Counts {
            received: d.received,
            refused: d.refused_total(),
            refused_by: Cause::ALL.iter().map(|&c| (c.name(), d.refused[c as usize])).collect(),
            discarded: d.discarded,
            viruses: d.viruses,
            delivered: d.delivered,
            spam: d.spam,
            user_delivered: d.user_delivered,
            user_spam: d.user_spam,
            imap_inside: d.imap_inside,
            imap_outside: d.imap_outside,
            pop_inside: d.pop_inside,
            pop_outside: d.pop_outside,
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn most_first(map: &std::collections::BTreeMap<Vec<u8>, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = map.iter().map(|(k, &n)| (text(k), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

impl Figures {
    pub fn of(tally: &Tally) -> Figures {
        let mut total = Day::default();
        let mut by_weekday = [(0u64, 0u64, 0u64, 0u64); 7];
        let days: Vec<DayRow> = tally
            .days()
            .into_iter()
            .map(|(day, d)| {
                total.add(&d);
                let slot = &mut by_weekday[time::weekday(day)];
                slot.0 += 1;
                slot.1 += d.received;
                slot.2 += d.refused_total();
                slot.3 += d.viruses;
                DayRow {
                    date: time::date(day),
                    weekday: time::WEEKDAYS[time::weekday(day)],
                    counts: Counts::of(&d),
                }
            })
            .collect();
        let totals = Counts::of(&total);
        let mean = |sum: u64, n: u64| if n == 0 { 0.0 } else { sum as f64 / n as f64 };
        let weekdays = by_weekday
            .iter()
            .zip(time::WEEKDAYS)
            .map(|(&(n, received, refused, viruses), weekday)| WeekdayRow {
                weekday,
                days: n,
                received: mean(received, n),
                refused: mean(refused, n),
                viruses: mean(viruses, n),
            })
            .collect();
        let sized: u64 = tally.sizes.iter().sum();
        let sizes = tally
            .sizes
            .iter()
            .zip(SIZE_LABELS)
            .map(|(&count, bucket)| SizeRow {
                bucket,
                count,
                share: if sized == 0 {
                    0.0
                } else {
                    count as f64 * 100.0 / sized as f64
                },
            })
            .collect();
        let offset = tally.scope.utc_offset;
        Figures {
            period: Period {
                first_day: days.first().map(|d| d.date.clone()),
                last_day: days.last().map(|d| d.date.clone()),
                days: days.len(),
                utc_offset: format!(
                    "{}{:02}:{:02}",
                    if offset < 0 { '-' } else { '+' },
                    offset.abs() / 3600,
                    offset.abs() % 3600 / 60
                ),
            },
            days,
            totals,
            weekdays,
            dnsbl_lists: most_first(&tally.lists),
            virus_names: most_first(&tally.virus_names),
            sizes,
            user: tally.scope.user.clone(),
            lines: LineCounts {
                read: tally.lines.read,
                counted: tally.lines.counted,
                outside_period: tally.lines.outside_period,
                not_understood: tally.lines.not_understood,
                examples: tally.lines.examples.clone(),
            },
        }
    }
}

/// A share in percent as the seed prints them: two decimals, three
/// below 0.1 % (0.002 %, not 0.00 %).
pub fn percent(share: f64) -> String {
    if share != 0.0 && share < 0.1 {
        format!("{share:.3}")
    } else {
        format!("{share:.2}")
    }
}
