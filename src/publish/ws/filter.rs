//! Which queues a `/ws` client watches: `?queues=a,b` (names) or
//! `?pattern=repair-*` (a named wall's pattern, `*` and `?` as in
//! `[[walls]] pattern`).
//!
//! Why the pattern travels to the server instead of being resolved to names
//! when the page opens: a queue that first appears later (its first call)
//! must reach a pattern wall live, not at the next reload. Matching it here,
//! per frame, is what makes a new queue arrive as a whole document like any
//! queue the client does not hold yet.

use std::collections::HashSet;

use crate::config::walls::glob;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueFilter {
    /// These queues, by name.
    Names(HashSet<String>),
    /// Every queue whose name the pattern matches, now or later.
    Pattern(String),
}

impl QueueFilter {
    /// From the query's `queues` and `pattern` (at most one of them).
    pub fn from_query(
        queues: Option<HashSet<String>>,
        pattern: Option<String>,
    ) -> Option<QueueFilter> {
        match (queues, pattern) {
            (Some(q), _) => Some(QueueFilter::Names(q)),
            (None, Some(p)) => Some(QueueFilter::Pattern(p)),
            (None, None) => None,
        }
    }

    /// The client watches this queue.
    pub fn shows(&self, queue: &str) -> bool {
        match self {
            QueueFilter::Names(n) => n.contains(queue),
            QueueFilter::Pattern(p) => glob(p, queue),
        }
    }

    /// An agent who is a member of any of these queues belongs to the client.
    pub fn shows_any<'a>(&self, queues: impl IntoIterator<Item = &'a str>) -> bool {
        queues.into_iter().any(|q| self.shows(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_and_a_pattern_matches_queues_not_yet_seen() {
        let names = QueueFilter::Names(["billing".to_string()].into());
        assert!(names.shows("billing") && !names.shows("billing-2"));
        let repair = QueueFilter::Pattern("repair-*".into());
        assert!(repair.shows("repair-north") && repair.shows("repair-east-2"));
        assert!(!repair.shows("billing") && !repair.shows("repair"));
        assert!(repair.shows_any(["vip", "repair-x"]));
        assert!(!repair.shows_any(["vip"]));
    }
}
