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
    let largest = if by_uid {
        messages.last().map_or(0, |m| m.uid)
    } else {
        messages.len() as u32
    };
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    for sequence in set.0.as_ref() {
        let (a, b) = match sequence {
            Sequence::Single(v) => (value(v), value(v)),
            Sequence::Range(x, y) => (value(x).min(value(y)), value(x).max(value(y))),
        };
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
    fn compacts() {
        assert_eq!(compact(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(compact(&[]), "");
    }
}
