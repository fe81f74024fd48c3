//! The HTML report in a real browser (Debian's Chromium, headless): every
//! chart is laid out at its size, its title, axis names and legend are
//! rendered text, and a screenshot of the page shows each chart drawn
//! (coloured bars and lines, not a blank box).

use std::path::Path;
use std::process::Command;

const MAILKIT: &str = env!("CARGO_BIN_EXE_mailkit");

/// Chromium, headless, as root, with nothing that reaches the network.
fn chromium(profile: &Path) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn run(mut c: Command) -> String {
    let out = c.output().expect("chromium runs (apt-get install chromium)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Measures each chart as laid out and the text it shows, into the page.
const PROBE: &str = r#"<script>
window.addEventListener('load', () => {
  const charts = [...document.querySelectorAll('figure > svg')].map(svg => {
    const r = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll('text')]
      .filter(t => { const b = t.getBBox(); return b.width > 0 && b.height > 0; })
      .map(t => t.textContent.trim());
    return { id: svg.parentElement.id, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height, texts };
  });
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = 'PROBE' + JSON.stringify(charts) + 'EBORP';
  document.body.appendChild(pre);
});
</script></body>"#;

fn log() -> String {
    let mut log = String::new();
    for day in 1..=14 {
        let weekend = matches!(day % 7, 5 | 6);
        for i in 0..if weekend { 15 } else { 60 } {
            log.push_str(&format!(
                "2026-11-{day:02}T0{}:00:00Z  INFO queued event=\"accepted\" queue_id=1 size={} nrcpt=1\n",
                i % 10,
                [500, 5_000, 50_000, 500_000][i % 4]
            ));
        }
        for (i, cause) in [
            "dnsbl:zen.example",
            "check_client_access",
            "content_checks",
            "relay_denied",
        ]
        .iter()
        .enumerate()
        {
            for _ in 0..5 + i {
                log.push_str(&format!(
                    "2026-11-{day:02}T03:00:00Z  INFO refused event=\"reject\" cause=\"{cause}\" client=192.0.2.1\n"
                ));
            }
        }
        for _ in 0..day % 4 {
            log.push_str(&format!(
                "2026-11-{day:02}T04:00:00Z  INFO virus found event=\"virus\" viruses=[\"Worm.X\"] action=Strip\n"
            ));
        }
        for i in 0..20 {
            log.push_str(&format!(
                "2026-11-{day:02}T05:00:00Z  INFO filed event=\"delivered\" queue_id=1 verdict=\"{}\" user=\"alice\"\n",
                if i % 5 == 0 { "spam" } else { "clean" }
            ));
        }
        for (service, client) in [
            ("imap", "127.0.0.1"),
            ("imap", "192.0.2.9"),
            ("pop3", "127.0.0.1"),
            ("pop3", "192.0.2.9"),
        ] {
            log.push_str(&format!(
                "2026-11-{day:02}T06:00:00Z  INFO logged in event=\"login\" service=\"{service}\" client={client} user=\"alice\"\n"
            ));
        }
    }
    log
}

#[test]
fn the_html_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let logfile = dir.path().join("mtad.log");
    std::fs::write(&logfile, log()).unwrap();
    let page = dir.path().join("report.html");
    let out = Command::new(MAILKIT)
        .args([
            "report",
            "--utc-offset",
            "+00:00",
            "--inside",
            "127.0.0.0/8",
            "--user",
            "alice",
            "--html",
        ])
        .arg(&page)
        .arg(&logfile)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "self-contained, nothing fetched"
    );

    // the layout and the text, measured by the browser
    let probe = dir.path().join("probe.html");
    std::fs::write(&probe, html.replace("</body>", PROBE)).unwrap();
    let mut dump = chromium(&dir.path().join("profile-1"));
    dump.arg("--dump-dom").arg(format!("file://{}", probe.display()));
    let dom = run(dump);
    let json = dom
        .split("<pre id=\"probe\">PROBE")
        .nth(1)
        .and_then(|s| s.split("EBORP").next())
        .unwrap_or_else(|| panic!("the probe ran:\n{}", &dom[dom.len().saturating_sub(2000)..]));
    let json = json
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let charts: serde_json::Value = serde_json::from_str(&json).unwrap();
    let charts = charts.as_array().unwrap();
    let expected: [(&str, &[&str]); 6] = [
        (
            "chart-daily",
            &[
                "Mail per day: received and refused by cause",
                "day",
                "messages",
                "received",
                "refused: dnsbl",
                "refused: relay_denied",
            ],
        ),
        (
            "chart-weekdays",
            &[
                "Average per weekday",
                "weekday",
                "messages per day",
                "received",
                "refused",
                "Mon",
                "Sun",
            ],
        ),
        (
            "chart-viruses",
            &["Viruses found per day", "infected messages", "messages with a virus"],
        ),
        (
            "chart-spam_share",
            &[
                "Mail delivered per day to alice, and the part called spam",
                "clean",
                "spam",
            ],
        ),
        (
            "chart-logins",
            &[
                "IMAP and POP3 logins per day",
                "logins",
                "IMAP, inside",
                "POP3, outside",
            ],
        ),
        (
            "chart-sizes",
            &[
                "Received mail by size",
                "size",
                "share of received mail (%)",
                "<=1KB",
                ">10MB",
            ],
        ),
    ];
    assert_eq!(charts.len(), expected.len(), "{charts:?}");
    let mut bottom = 0.0f64;
    for (chart, (id, texts)) in charts.iter().zip(expected) {
        assert_eq!(chart["id"], id);
        let (w, h) = (chart["w"].as_f64().unwrap(), chart["h"].as_f64().unwrap());
        assert!(w >= 900.0 && h >= 400.0, "{id} laid out at {w}×{h}");
        let shown: Vec<&str> = chart["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        for text in texts {
            assert!(shown.contains(text), "{id} shows {text:?}: {shown:?}");
        }
        // tick labels: numbers on the value axis
        assert!(
            shown.iter().filter(|t| t.parse::<f64>().is_ok()).count() >= 3,
            "{id}: {shown:?}"
        );
        bottom = bottom.max(chart["y"].as_f64().unwrap() + h);
    }

    // what the browser drew: each chart's area holds the series' colours
    let shot = dir.path().join("shot.png");
    let mut screenshot = chromium(&dir.path().join("profile-2"));
    screenshot
        .arg(format!("--window-size=1100,{}", bottom.ceil() as u32 + 20))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()));
    run(screenshot);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    for (chart, (id, _)) in charts.iter().zip(expected) {
        let (x0, y0) = (
            chart["x"].as_f64().unwrap() as usize,
            chart["y"].as_f64().unwrap() as usize,
        );
        let (w, h) = (
            chart["w"].as_f64().unwrap() as usize,
            chart["h"].as_f64().unwrap() as usize,
        );
        let mut coloured = 0usize;
        let mut colours = std::collections::HashSet::new();
        for y in y0..(y0 + h).min(info.height as usize) {
            for x in x0..(x0 + w).min(info.width as usize) {
                let at = (y * info.width as usize + x) * channels;
                let (r, g, b) = (pixels[at], pixels[at + 1], pixels[at + 2]);
                // a saturated colour: a series, not the grey of text and mesh
                if r.max(g).max(b) - r.min(g).min(b) > 60 {
                    coloured += 1;
                    colours.insert((r / 32, g / 32, b / 32));
                }
            }
        }
        let share = coloured as f64 / (w * h) as f64;
        assert!(share > 0.003, "{id}: {:.4} of its pixels coloured", share);
        assert!(!colours.is_empty(), "{id}");
    }
}
