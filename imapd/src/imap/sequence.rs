//! Sequence sets (`1:4,7,9:*`) to positions in the selected mailbox.

use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use crate::mailbox::Message;

/// Positions (0-based, ascending, no repeats) that `set` names, by sequence
/// number or (`by_uid`) by UID. Numbers past the end are ignored, as are
/// UIDs that do not exist.
pub fn positions(set: &SequenceSet, messages: &[Message], by_uid: bool) -> Vec<usize> {
    let mut out = Vec::new();
    if messages.is_empty() {
        return out;
    }
    let largest = largest(messages, by_uid);
    for sequence in set.0.as_ref() {
        let (a, b) = bounds(sequence, largest);
        if by_uid {
            let start = messages.partition_point(|m| m.uid < a);
            let end = messages.partition_point(|m| m.uid <= b);
            out.extend(start..end);
        } else {
            let end = b.min(largest);
            if a >= 1 && a <= end {
                out.extend((a - 1) as usize..end as usize);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether message `index` (0-based) is in `set`, by sequence number or
/// (`by_uid`) by UID — for testing one message at a time (SEARCH) without
/// listing the whole set for each.
pub fn contains(set: &SequenceSet, messages: &[Message], index: usize, by_uid: bool) -> bool {
    let largest = largest(messages, by_uid);
    let number = if by_uid { messages[index].uid } else { index as u32 + 1 };
    set.0.as_ref().iter().any(|sequence| {
        let (a, b) = bounds(sequence, largest);
        (a..=b).contains(&number)
    })
}

/// What `*` stands for: the last sequence number or the highest UID.
fn largest(messages: &[Message], by_uid: bool) -> u32 {
    if by_uid {
        messages.last().map_or(0, |m| m.uid)
    } else {
        messages.len() as u32
    }
}

/// A sequence's range, low end first (`5:2` is `2:5`).
fn bounds(sequence: &Sequence, largest: u32) -> (u32, u32) {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    match sequence {
        Sequence::Single(v) => (value(v), value(v)),
        Sequence::Range(x, y) => (value(x).min(value(y)), value(x).max(value(y))),
    }
}

/// `1:3,5` from a list of numbers, for COPYUID / APPENDUID.
pub fn compact(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_agrees_with_positions() {
        let messages: Vec<Message> = [2u32, 3, 7, 8, 20]
            .iter()
            .map(|&uid| Message {
                uid,
                flags: 0,
                keywords: Vec::new(),
                recent: false,
                from_line: std::sync::Arc::from("From a@b Sat Nov 28 04:03:56 2026"),
                content: std::sync::Arc::new(Vec::new()),
                state_block: None,
                modseq: 0,
            })
            .collect();
        for text in ["1", "*", "2:4", "4:2", "1:*", "3,8:*", "7", "9:30", "5:6"] {
            let set = SequenceSet::try_from(text).unwrap();
            for by_uid in [false, true] {
                let listed = positions(&set, &messages, by_uid);
                let tested: Vec<usize> = (0..messages.len())
                    .filter(|&i| contains(&set, &messages, i, by_uid))
                    .collect();
                assert_eq!(listed, tested, "{text} by_uid={by_uid}");
            }
        }
        // by UID, 8:* is UIDs 8 and 20; by number, with 5 messages, it is
        // 5:8 (RFC 3501: `*` is the largest number, the range is unordered)
        let set = SequenceSet::try_from("8:*").unwrap();
        assert_eq!(positions(&set, &messages, true), [3, 4]);
        assert_eq!(positions(&set, &messages, false), [4]);
    }

    #[test]
    fn compacts() {
        assert_eq!(compact(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(compact(&[]), "");
    }
}
