//! `mailkit report` on logs with known counts: a generated year (rotated,
//! gzip'ed, out of order, behind journal prefixes, with lines it cannot
//! understand) must come out exactly, per day, weekday and size bucket;
//! and the seed's Table 3 shares exactly from messages of those sizes.

use std::io::Write;
use std::path::Path;
use std::process::Command;

const MAILKIT: &str = env!("CARGO_BIN_EXE_mailkit");

/// xorshift64*: the same "random" year on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The calendar of 2025 written out by hand (not the report's own date
/// code): (month, day, weekday Monday = 0) of each day.
fn days_of_2025() -> Vec<(u32, u32, usize)> {
    let lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut weekday = 2; // 2025-01-01 was a Wednesday
    let mut days = Vec::new();
    for (m, &len) in lengths.iter().enumerate() {
        for d in 1..=len {
            days.push((m as u32 + 1, d, weekday));
            weekday = (weekday + 1) % 7;
        }
    }
    days
}

#[derive(Default, Clone, Debug, PartialEq)]
struct Expected {
    received: u64,
    refused: [u64; 7],
    viruses: u64,
    delivered: u64,
    spam: u64,
    user_delivered: u64,
    user_spam: u64,
    logins: [u64; 4],
}

/// The causes the generator uses, as mtad logs them, and the report's
/// name for each.
const CAUSES: [(&str, &str); 7] = [
    ("dnsbl:zen.example", "dnsbl"),
    ("check_client_access", "access"),
    ("content_checks", "rules"),
    ("virus", "virus"),
    ("relay_denied", "relay_denied"),
    ("unknown_user", "unknown_user"),
    ("sender_auth", "sender_auth"),
];

/// A UTC timestamp for a time of the site's day (the site is at +09:00):
/// `hour` 0–23 local. Written by hand, like the calendar.
fn stamp(month: u32, day: u32, hour: u32, rng: &mut Rng) -> String {
    let lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (mut y, mut m, mut d, mut h) = (2025, month, day, hour as i32 - 9);
    if h < 0 {
        h += 24;
        if d == 1 {
            if m == 1 {
                (y, m, d) = (2024, 12, 31);
            } else {
                m -= 1;
                d = lengths[m as usize - 1];
            }
        } else {
            d -= 1;
        }
    }
    format!(
        "{y}-{m:02}-{d:02}T{h:02}:{:02}:{:02}.{:06}Z",
        rng.below(60),
        rng.below(60),
        rng.below(1_000_000)
    )
}

const SIZES: [u64; 6] = [300, 4000, 60_000, 700_000, 5_000_000, 20_000_000];

fn generate() -> (Vec<Vec<String>>, Vec<Expected>, [u64; 6]) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut months: Vec<Vec<String>> = vec![Vec::new(); 12];
    let mut expected = Vec::new();
    let mut sizes = [0u64; 6];
    for (month, day, weekday) in days_of_2025() {
        let lines = &mut months[month as usize - 1];
        let mut e = Expected::default();
        // normal mail falls at weekends; refused spam does not
        let received = if weekday >= 5 {
            20 + rng.below(20)
        } else {
            80 + rng.below(60)
        };
        for _ in 0..received {
            let bucket = [0, 1, 1, 1, 2, 2, 3, 4, 5][rng.below(9) as usize];
            sizes[bucket] += 1;
            lines.push(format!(
                "{}  INFO queued event=\"accepted\" queue_id={:X} size={} nrcpt=1 hold=false client=mx.example[192.0.2.{}] helo=\"mx.example\" from=<a@example.org>",
                stamp(month, day, rng.below(24) as u32, &mut rng),
                rng.next(),
                SIZES[bucket] + rng.below(10),
                rng.below(250)
            ));
        }
        e.received = received;
        for _ in 0..30 + rng.below(20) {
            let c = rng.below(CAUSES.len() as u64) as usize;
            e.refused[c] += 1;
            lines.push(format!(
                "{}  INFO refused event=\"reject\" cause=\"{}\" client=198.51.100.{} client_name=unknown helo=\"x\" from=<s@spam.example> to=<alice@example.jp> reply=554 5.7.1 no",
                stamp(month, day, rng.below(24) as u32, &mut rng),
                CAUSES[c].0,
                rng.below(250)
            ));
        }
        // a new worm now and then
        let viruses = if rng.below(30) == 0 {
            40 + rng.below(40)
        } else {
            rng.below(3)
        };
        for _ in 0..viruses {
            lines.push(format!(
                "{}  INFO virus found event=\"virus\" viruses=[\"Worm.Example\"] action=Strip client=Some(192.0.2.1) from=None",
                stamp(month, day, rng.below(24) as u32, &mut rng)
            ));
        }
        e.viruses = viruses;
        for _ in 0..received {
            let user = if rng.below(3) == 0 { "alice" } else { "bob" };
            let spam = rng.below(7) == 0;
            e.delivered += 1;
            e.spam += u64::from(spam);
            if user == "alice" {
                e.user_delivered += 1;
                e.user_spam += u64::from(spam);
            }
            lines.push(format!(
                "{}  INFO filed event=\"delivered\" queue_id=1 verdict=\"{}\" probability=0.5 user=\"{user}\" mailbox=\"/home/{user}/mail/x\"",
                stamp(month, day, rng.below(24) as u32, &mut rng),
                if spam { "spam" } else { "clean" },
            ));
        }
        for _ in 0..rng.below(40) {
            let pop3 = rng.below(2) == 0;
            let inside = rng.below(2) == 0;
            e.logins[usize::from(pop3) * 2 + usize::from(!inside)] += 1;
            let client = match (inside, rng.below(2)) {
                (true, 0) => "10.1.2.3",
                (true, _) => "2001:db8::5",
                (false, 0) => "203.0.113.9",
                (false, _) => "2001:db9::5",
            };
            lines.push(format!(
                "{}  INFO {} event=\"login\" service=\"{}\" client={client} user=\"alice\"",
                stamp(month, day, rng.below(24) as u32, &mut rng),
                if pop3 { "POP3 login" } else { "logged in" },
                if pop3 { "pop3" } else { "imap" },
            ));
        }
        // lines of the programs that are no figure
        lines.push(format!("{}  INFO ready", stamp(month, day, 3, &mut rng)));
        lines.push(format!(
            "{}  INFO deferred event=\"deferred\" queue_id=1 reply=451 try again",
            stamp(month, day, 4, &mut rng)
        ));
        // lines shuffled within the month: a log of several programs
        for i in (1..lines.len()).rev() {
            lines.swap(i, rng.below(i as u64 + 1) as usize);
        }
        expected.push(e);
    }
    (months, expected, sizes)
}

fn gzip(path: &Path, text: &str) {
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap();
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(MAILKIT).arg("report").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_generated_year_comes_out_exactly() {
    let (months, expected, sizes) = generate();
    let dir = tempfile::tempdir().unwrap();
    // rotated as logrotate leaves them: the newest plain, the older ones
    // gzip'ed, one plain with CRLF line ends, one behind journal prefixes
    let mut names = Vec::new();
    let mut junk = 0;
    for (i, lines) in months.iter().enumerate() {
        let age = 11 - i;
        let mut text = lines.join("\n");
        text.push('\n');
        if i == 2 {
            text.push_str("a line no program of ours wrote\n\u{1b}[1mbinary\u{0}junk\n");
            junk += 2;
        }
        let name = match age {
            0 => "mtad.log".to_owned(),
            1 => "mtad.log.1".to_owned(),
            _ => format!("mtad.log.{age}.gz"),
        };
        let path = dir.path().join(&name);
        match age {
            0 => std::fs::write(&path, text).unwrap(),
            1 => std::fs::write(&path, text.replace('\n', "\r\n")).unwrap(),
            4 => {
                let prefixed: String = text
                    .lines()
                    .map(|l| format!("Apr 01 00:00:00 mx mtad[812]: {l}\n"))
                    .collect();
                gzip(&path, &prefixed);
            }
            // the last line without its line end, in a gzip'ed file
            _ => gzip(&path, text.trim_end()),
        }
        names.push(path.display().to_string());
    }
    // a day outside the period, on either side
    let outside = dir.path().join("older.log");
    std::fs::write(
        &outside,
        "2024-12-31T10:00:00Z  INFO queued event=\"accepted\" size=1 nrcpt=1\n\
         2025-12-31T15:00:00Z  INFO queued event=\"accepted\" size=1 nrcpt=1\n",
    )
    .unwrap();
    names.push(outside.display().to_string());
    // named in no order
    names.swap(0, 7);
    names.swap(3, 10);
    let mut args: Vec<&str> = names.iter().map(String::as_str).collect();
    args.extend([
        "--since",
        "2025-01-01",
        "--until",
        "2025-12-31",
        "--utc-offset",
        "+09:00",
        "--user",
        "alice",
        "--inside",
        "10.0.0.0/8,2001:db8::/32",
        "--format",
        "json",
    ]);
    let report = json(&args);

    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 365);
    let calendar = days_of_2025();
    let names_of_weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    for ((row, e), (month, day, weekday)) in days.iter().zip(&expected).zip(&calendar) {
        let date = format!("2025-{month:02}-{day:02}");
        assert_eq!(row["date"], date.as_str());
        assert_eq!(row["weekday"], names_of_weekdays[*weekday], "{date}");
        let n = |k: &str| row[k].as_u64().unwrap();
        assert_eq!(n("received"), e.received, "{date}");
        assert_eq!(n("refused"), e.refused.iter().sum::<u64>(), "{date}");
        let by: std::collections::HashMap<String, u64> = row["refused_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_u64().unwrap()))
            .collect();
        for (c, (_, name)) in CAUSES.iter().enumerate() {
            assert_eq!(by[*name], e.refused[c], "{date} {name}");
        }
        assert_eq!(n("viruses"), e.viruses, "{date}");
        assert_eq!(
            (n("delivered"), n("spam"), n("user_delivered"), n("user_spam")),
            (e.delivered, e.spam, e.user_delivered, e.user_spam),
            "{date}"
        );
        assert_eq!(
            [n("imap_inside"), n("imap_outside"), n("pop_inside"), n("pop_outside")],
            e.logins,
            "{date}"
        );
    }

    // weekday averages: the sum over that weekday's days, over their number
    for (w, row) in report["weekdays"].as_array().unwrap().iter().enumerate() {
        let of_weekday: Vec<&Expected> = expected
            .iter()
            .zip(&calendar)
            .filter(|(_, c)| c.2 == w)
            .map(|(e, _)| e)
            .collect();
        let count = of_weekday.len() as f64;
        assert_eq!(row["days"].as_u64().unwrap(), of_weekday.len() as u64);
        let mean = |f: &dyn Fn(&Expected) -> u64| of_weekday.iter().map(|e| f(e)).sum::<u64>() as f64 / count;
        // (to the last bits: JSON's decimal floats need not read back exact)
        let close = |k: &str, want: f64| {
            let got = row[k].as_f64().unwrap();
            assert!((got - want).abs() <= want.abs() * 1e-12, "{k}: {got} against {want}");
        };
        close("received", mean(&|e| e.received));
        close("refused", mean(&|e| e.refused.iter().sum()));
        close("viruses", mean(&|e| e.viruses));
    }
    // the generator's weekends are quieter; the report must show it
    let weekdays = report["weekdays"].as_array().unwrap();
    assert!(weekdays[5]["received"].as_f64().unwrap() < weekdays[2]["received"].as_f64().unwrap() / 2.0);

    let counted: Vec<u64> = report["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counted, sizes);
    assert_eq!(report["dnsbl_lists"][0][0], "zen.example");
    assert_eq!(report["virus_names"][0][0], "Worm.Example");
    assert_eq!(
        report["virus_names"][0][1].as_u64().unwrap(),
        expected.iter().map(|e| e.viruses).sum::<u64>()
    );
    assert_eq!(report["lines"]["not_understood"].as_u64().unwrap(), junk);
    assert_eq!(report["lines"]["outside_period"].as_u64().unwrap(), 2);
    let read = report["lines"]["read"].as_u64().unwrap();
    let written: usize = months.iter().map(Vec::len).sum::<usize>() + junk as usize + 2;
    assert_eq!(read, written as u64);

    // the same figures as CSV, for one day and the totals
    let mut csv_args = args.clone();
    *csv_args.last_mut().unwrap() = "csv";
    let out = Command::new(MAILKIT).arg("report").args(&csv_args).output().unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("figure,key,column,value\n"));
    assert!(
        csv.contains(&format!("day,2025-03-14,received,{}\n", expected[72].received)),
        "{}",
        &csv[..300]
    );
    let total: u64 = expected.iter().map(|e| e.received).sum();
    assert!(csv.contains(&format!("total,period,received,{total}\n")));
}

#[test]
fn the_seeds_table_3_comes_out_exactly() {
    // the seed's shares, from 100,002 messages: 2.74 % ≤1 KB, 68.98 %
    // ≤10 KB, 27.17 % ≤100 KB, 0.89 % ≤1 MB, 0.22 % ≤10 MB, 0.002 % more
    let counts = [2740u64, 68_980, 27_170, 890, 220, 2];
    // at each bucket's edges: its upper bound, and one past the bound below
    let bounds = [1024u64, 10 << 10, 100 << 10, 1 << 20, 10 << 20];
    let mut log = String::new();
    for (b, &n) in counts.iter().enumerate() {
        for i in 0..n {
            let size = match (b, i % 2) {
                (0, _) => 1 + i % 1024,
                (5, _) => (10 << 20) + 1 + i,
                (_, 0) => bounds[b],
                _ => bounds[b - 1] + 1,
            };
            log.push_str(&format!(
                "2026-12-01T10:00:00Z  INFO queued event=\"accepted\" queue_id=1 size={size} nrcpt=1\n"
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtad.log");
    std::fs::write(&path, log).unwrap();
    let out = Command::new(MAILKIT)
        .args(["report", "--utc-offset", "+00:00", "--inside", "127.0.0.0/8"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let table = text.split("Received mail by size\n").nth(1).unwrap();
    let shares: Vec<&str> = table
        .lines()
        .skip(1)
        .take(6)
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(shares, ["2.74", "68.98", "27.17", "0.89", "0.22", "0.002"], "{table}");
    let messages: Vec<u64> = table
        .lines()
        .skip(1)
        .take(6)
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(messages, counts);
}

#[test]
fn bad_arguments_say_what_to_write() {
    for (args, says) in [
        (&["--since", "2026-02-30"][..], "write it as YYYY-MM-DD"),
        (&["--utc-offset", "9"], "write it as +09:00"),
        (&["--inside", "10.0.0.0/33"], "is not a network"),
        (
            &["--since", "2026-12-02", "--until", "2026-12-01"],
            "--since is after --until",
        ),
        (&["/nonexistent/mtad.log"], "/nonexistent/mtad.log: No such file"),
    ] {
        let out = Command::new(MAILKIT)
            .arg("report")
            .args(["--inside", "127.0.0.0/8"])
            .args(args)
            .arg("/dev/null")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
