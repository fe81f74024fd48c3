//! THREAD (RFC 5256): ORDEREDSUBJECT, and REFERENCES (Jamie Zawinski's
//! algorithm as the RFC states it, steps numbered as there), written as
//! the `(1 2 (3)(4 5))` lists of the THREAD response.

use std::collections::HashMap;

use super::sort::Facts;

/// One container of the thread tree: a message (an index into the facts)
/// or a dummy standing for a referenced message that is not here.
#[derive(Default)]
struct Node {
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Tree<'f> {
    nodes: Vec<Node>,
    facts: &'f [Facts],
}

impl Tree<'_> {
    fn new_node(&mut self, message: Option<usize>) -> usize {
        self.nodes.push(Node {
            message,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    fn is_ancestor(&self, ancestor: usize, mut node: usize) -> bool {
        loop {
            if node == ancestor {
                return true;
            }
            match self.nodes[node].parent {
                Some(p) => node = p,
                None => return false,
            }
        }
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    /// The sent date and sequence number a node sorts by: its message's,
    /// or for a dummy its first child's.
    fn sort_key(&self, node: usize) -> (i64, u32) {
        let mut node = node;
        loop {
            match (self.nodes[node].message, self.nodes[node].children.first()) {
                (Some(m), _) => return (self.facts[m].sent, self.facts[m].number),
                (None, Some(&c)) => node = c,
                (None, None) => return (i64::MAX, u32::MAX),
            }
        }
    }

    fn sort_siblings(&self, list: &mut [usize]) {
        list.sort_by_key(|&n| self.sort_key(n));
    }

    /// Writes `(…)` for the thread rooted at `node`.
    fn write(&self, node: usize, out: &mut String) {
        out.push('(');
        self.write_members(node, out);
        out.push(')');
    }

    fn write_members(&self, mut node: usize, out: &mut String) {
        let mut first = true;
        loop {
            let n = &self.nodes[node];
            if let Some(m) = n.message {
                if !first {
                    out.push(' ');
                }
                out.push_str(&self.facts[m].number.to_string());
                first = false;
            }
            match n.children.len() {
                0 => return,
                1 if n.message.is_some() => node = n.children[0],
                _ => {
                    if !first {
                        out.push(' ');
                    }
                    for &c in &n.children {
                        self.write(c, out);
                    }
                    return;
                }
            }
        }
    }
}

/// ORDEREDSUBJECT: messages with the same base subject form a thread,
/// the earliest its parent and every other one its child; threads in the
/// order of their first messages' dates.
pub fn ordered_subject(facts: &[Facts]) -> String {
    let mut order: Vec<usize> = (0..facts.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&facts[a], &facts[b]);
        (&a.base_subject, a.sent, a.number).cmp(&(&b.base_subject, b.sent, b.number))
    });
    let mut tree = Tree {
        nodes: Vec::new(),
        facts,
    };
    let mut roots: Vec<usize> = Vec::new();
    let mut last_subject: Option<&str> = None;
    for m in order {
        let node = tree.new_node(Some(m));
        match (last_subject, roots.last()) {
            (Some(s), Some(&root)) if s == facts[m].base_subject => tree.link(root, node),
            _ => roots.push(node),
        }
        last_subject = Some(&facts[m].base_subject);
    }
    tree.sort_siblings(&mut roots);
    let mut out = String::new();
    for root in roots {
        tree.write(root, &mut out);
    }
    out
}

/// REFERENCES.
pub fn references(facts: &[Facts]) -> String {
    let mut tree = Tree {
        nodes: Vec::new(),
        facts,
    };
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    // (1) containers for every message and every message it references
    for (m, f) in facts.iter().enumerate() {
        let mut previous: Option<usize> = None;
        let mut refs: Vec<usize> = Vec::new();
        for id in &f.references {
            let node = *by_id.entry(id.as_str()).or_insert_with(|| {
                tree.nodes.push(Node::default());
                tree.nodes.len() - 1
            });
            // (1A) each reference the parent of the next, unless linked
            // already or the link would make a loop
            if let Some(p) = previous
                && tree.nodes[node].parent.is_none()
                && !tree.is_ancestor(node, p)
            {
                tree.link(p, node);
            }
            previous = Some(node);
            refs.push(node);
        }
        // (1B) the message's own container (a new one if its ID is missing
        // or already held by another message)
        let own = match f.message_id.as_deref() {
            Some(id) => match by_id.get(id) {
                Some(&node) if tree.nodes[node].message.is_none() => node,
                Some(_) => tree.new_node(None),
                None => {
                    let node = tree.new_node(None);
                    by_id.insert(id, node);
                    node
                }
            },
            None => tree.new_node(None),
        };
        tree.nodes[own].message = Some(m);
        // its parent is its last reference (unless that makes a loop)
        match refs.last() {
            Some(&last) if !tree.is_ancestor(own, last) => tree.link(last, own),
            Some(_) => {}
            None => tree.unlink(own),
        }
    }
    // (2) the root set; (3) the ID table is no longer needed
    drop(by_id);
    let mut roots: Vec<usize> = (0..tree.nodes.len())
        .filter(|&n| tree.nodes[n].parent.is_none())
        .collect();
    // (4) prune dummies
    roots = prune(&mut tree, roots, true);
    // (5) sort the root set by date (a dummy by its first child, sorted)
    for &r in &roots {
        if tree.nodes[r].message.is_none() {
            let mut children = std::mem::take(&mut tree.nodes[r].children);
            tree.sort_siblings(&mut children);
            tree.nodes[r].children = children;
        }
    }
    tree.sort_siblings(&mut roots);
    // (6) threads with the same base subject merged
    let mut roots = merge_by_subject(&mut tree, roots);
    // (7) every set of siblings sorted by date, depth first
    sort_tree(&mut tree, &mut roots);
    let mut out = String::new();
    for root in roots {
        tree.write(root, &mut out);
    }
    out
}

/// Step 4 on the children `list` of one container: dummies without
/// children go; a dummy's children take its place, except that at the
/// root a dummy with more than one child stays.
fn prune(tree: &mut Tree<'_>, list: Vec<usize>, at_root: bool) -> Vec<usize> {
    let mut out = Vec::new();
    for node in list {
        let children = std::mem::take(&mut tree.nodes[node].children);
        let children = prune(tree, children, false);
        for &c in &children {
            tree.nodes[c].parent = Some(node);
        }
        tree.nodes[node].children = children;
        if tree.nodes[node].message.is_some() {
            out.push(node);
            continue;
        }
        let n = tree.nodes[node].children.len();
        if n == 0 {
            continue;
        }
        if at_root && n > 1 {
            out.push(node);
            continue;
        }
        let parent = tree.nodes[node].parent;
        for c in std::mem::take(&mut tree.nodes[node].children) {
            tree.nodes[c].parent = parent;
            out.push(c);
        }
    }
    out
}

/// Step 6: a root whose base subject another root has is merged with it.
fn merge_by_subject(tree: &mut Tree<'_>, roots: Vec<usize>) -> Vec<usize> {
    let subject_of = |tree: &Tree<'_>, node: usize| -> Option<(String, bool)> {
        let n = &tree.nodes[node];
        let m = n
            .message
            .or_else(|| n.children.first().and_then(|&c| tree.nodes[c].message))?;
        let f = &tree.facts[m];
        (!f.base_subject.is_empty()).then(|| (f.base_subject.clone(), f.is_reply))
    };
    // (6A, 6B) the subject table
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let Some((subject, reply)) = subject_of(tree, r) else {
            continue;
        };
        let dummy = tree.nodes[r].message.is_none();
        match table.get(&subject) {
            None => {
                table.insert(subject, r);
            }
            Some(&old) => {
                let old_dummy = tree.nodes[old].message.is_none();
                let old_reply = subject_of(tree, old).is_some_and(|(_, reply)| reply);
                if !old_dummy && (dummy || (old_reply && !reply)) {
                    table.insert(subject, r);
                }
            }
        }
    }
    // (6C) merge; `result` is the new root set
    let mut result: Vec<usize> = Vec::new();
    let replace = |result: &mut Vec<usize>, old: usize, new: usize| match result.iter().position(|&x| x == old) {
        Some(i) => result[i] = new,
        None => result.push(new),
    };
    for &r in &roots {
        let emptied = tree.nodes[r].message.is_none() && tree.nodes[r].children.is_empty();
        if tree.nodes[r].parent.is_some() || emptied {
            continue; // merged into another root already
        }
        let Some((subject, reply)) = subject_of(tree, r) else {
            result.push(r);
            continue;
        };
        let that = table[&subject];
        if that == r {
            if !result.contains(&r) {
                result.push(r);
            }
            continue;
        }
        let (this_dummy, that_dummy) = (tree.nodes[r].message.is_none(), tree.nodes[that].message.is_none());
        let that_reply = subject_of(tree, that).is_some_and(|(_, reply)| reply);
        if this_dummy && that_dummy {
            for c in std::mem::take(&mut tree.nodes[r].children) {
                tree.link(that, c);
            }
        } else if that_dummy || (!this_dummy && reply && !that_reply) {
            tree.link(that, r);
        } else if this_dummy {
            tree.link(r, that);
            table.insert(subject, r);
            replace(&mut result, that, r);
        } else {
            let dummy = tree.new_node(None);
            tree.link(dummy, that);
            tree.link(dummy, r);
            table.insert(subject, dummy);
            replace(&mut result, that, dummy);
        }
    }
    result
}

/// Step 7: siblings by date at every level (children before parents, so
/// a dummy sorts by its earliest child).
fn sort_tree(tree: &mut Tree<'_>, list: &mut [usize]) {
    for &n in list.iter() {
        let mut children = std::mem::take(&mut tree.nodes[n].children);
        sort_tree(tree, &mut children);
        tree.nodes[n].children = children;
    }
    tree.sort_siblings(list);
}
