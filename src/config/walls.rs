//! `[[walls]]`: named walls, each a TV over one team's queues.
//!
//! Why a config section and not only `?queues=` in a URL: a floor has a
//! dozen screens, and the list of a team's queues belongs in one reviewed
//! place (and reloads with it), not typed into each TV's address bar. A wall
//! names its queues or a pattern; the pattern is matched when the page is
//! opened, against the queues the daemon knows then.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WallConfig {
    /// The wall's address: `/wall/{name}` (letters, digits, `-`, `_`).
    pub name: String,
    /// The heading (default: the name).
    #[serde(default)]
    pub title: Option<String>,
    /// The queues it shows, in this order...
    #[serde(default)]
    pub queues: Option<Vec<String>>,
    /// ...or a pattern over queue names: `*` any run of characters, `?` one
    /// character (`"repair-*"` is every queue starting with `repair-`).
    #[serde(default)]
    pub pattern: Option<String>,
}

impl WallConfig {
    pub fn title(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.name)
    }

    /// True when the wall shows `queue`.
    pub fn shows(&self, queue: &str) -> bool {
        match (&self.queues, &self.pattern) {
            (Some(list), _) => list.iter().any(|q| q == queue),
            (None, Some(p)) => glob(p, queue),
            (None, None) => false,
        }
    }

    /// What is wrong with this entry, if anything.
    pub fn problem(&self) -> Option<String> {
        let n = &self.name;
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Some(format!(
                "wall `{n}`: the name is its address /wall/{{name}}: use letters, digits, `-` and `_`"
            ));
        }
        match (&self.queues, &self.pattern) {
            (Some(_), Some(_)) => Some(format!("wall `{n}`: give `queues` or `pattern`, not both")),
            (None, None) => Some(format!("wall `{n}`: needs `queues` (a list) or `pattern`")),
            (Some(q), None) if q.is_empty() => Some(format!("wall `{n}`: `queues` is empty")),
            (None, Some(p)) if p.is_empty() => Some(format!("wall `{n}`: `pattern` is empty")),
            _ => None,
        }
    }
}

/// `*` matches any run of characters (also none), `?` exactly one.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point (the last `*`).
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && (p[i] == '?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_by_prefix_or_wildcards() {
        assert!(glob("repair-*", "repair-north"));
        assert!(glob("repair-*", "repair-"));
        assert!(!glob("repair-*", "billing"));
        assert!(glob("*-vip", "billing-vip"));
        assert!(glob("q?", "q7"));
        assert!(!glob("q?", "q17"));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(glob("报修*", "报修热线"));
        assert!(!glob("", "x"));
        let w = WallConfig {
            name: "team-a".into(),
            title: None,
            queues: Some(vec!["q1".into()]),
            pattern: None,
        };
        assert!(w.shows("q1") && !w.shows("q2"));
        assert_eq!(w.title(), "team-a");
        assert!(w.problem().is_none());
        let bad = WallConfig {
            name: "team a".into(),
            ..w.clone()
        };
        assert!(bad.problem().unwrap().contains("letters"));
        let both = WallConfig {
            pattern: Some("q*".into()),
            ..w
        };
        assert!(both.problem().unwrap().contains("not both"));
    }
}
