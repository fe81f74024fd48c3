//! SMTP replies: a code, an enhanced status code (RFC 3463) and text,
//! written as one line or several (`250-…`, `250 …`).

use std::fmt::Write as _;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `x.y.z` without the class digit repeated: `[2, 1, 5]`; empty for
    /// replies that carry none (the greeting, 354).
    pub status: Option<[u16; 3]>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: [u16; 3], text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code.
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: None,
            lines: vec![text.into()],
        }
    }

    /// Whether it is a permanent (5xx) or temporary (4xx) refusal.
    pub fn is_refusal(&self) -> bool {
        self.code >= 400
    }

    /// `5.7.1`, or empty.
    pub fn status_text(&self) -> String {
        self.status.map(|[a, b, c]| format!("{a}.{b}.{c}")).unwrap_or_default()
    }

    /// The reply on the wire: every line `CODE-`, the last `CODE `, each
    /// with the enhanced code when there is one. CR and LF in the text
    /// (from a table or a peer) cannot end the reply early.
    pub fn write(&self, out: &mut Vec<u8>) {
        let status = self.status_text();
        let mut text = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i + 1 == self.lines.len() { ' ' } else { '-' };
            let line: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            let _ = if status.is_empty() {
                write!(text, "{}{sep}{line}\r\n", self.code)
            } else {
                write!(text, "{}{sep}{status} {line}\r\n", self.code)
            };
        }
        out.extend_from_slice(text.as_bytes());
    }

    /// One line, for logs.
    pub fn one_line(&self) -> String {
        let status = self.status_text();
        let text = self.lines.join(" / ");
        if status.is_empty() {
            format!("{} {text}", self.code)
        } else {
            format!("{} {status} {text}", self.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let mut out = Vec::new();
        Reply::new(554, [5, 7, 1], "<a@b>: Relay access denied").write(&mut out);
        assert_eq!(out, b"554 5.7.1 <a@b>: Relay access denied\r\n");
        out.clear();
        Reply {
            code: 250,
            status: None,
            lines: vec!["mx.example.jp".into(), "PIPELINING".into(), "SIZE 10240000".into()],
        }
        .write(&mut out);
        assert_eq!(out, b"250-mx.example.jp\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n");
        out.clear();
        Reply::new(550, [5, 7, 1], "evil\r\n250 ok").write(&mut out);
        assert_eq!(out, b"550 5.7.1 evil  250 ok\r\n");
    }
}
