//! Every link in the README, the changelog and the guides leads somewhere.
//!
//! Guides were moved out of the README into `docs/`, and links copied along
//! with text stop resolving without a word (the wall's screenshot was once
//! linked as `wall.png` from the README, which only works from `docs/`).
//! This reads each Markdown file the project ships, follows every relative
//! link (and `#anchor`) from the file's own folder, and names each one that
//! leads nowhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Markdown files a user reads: the README, the changelog, the guides
/// and the notes' index.
fn shipped_markdown() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut files = vec![
        root.join("README.md"),
        root.join("CHANGELOG.md"),
        root.join("notes/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The targets of `[text](target)` and `![alt](target)` outside code
/// fences and inline code, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code spans so `[x](y)` inside backticks is not a link.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation
/// other than `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_link_in_the_readme_and_the_guides_leads_somewhere() {
    let mut broken = Vec::new();
    let mut followed = 0;
    for file in shipped_markdown() {
        let text = std::fs::read_to_string(&file).expect("a shipped Markdown file");
        let dir = file.parent().expect("a file has a folder");
        for (line, target) in links(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            followed += 1;
            let (path, frag) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            let shown = format!("{}:{line}: {target}", file.display());
            if !dest.exists() {
                broken.push(format!("{shown} (no such file)"));
                continue;
            }
            if let Some(frag) = frag {
                let dest_text = std::fs::read_to_string(&dest).unwrap_or_default();
                if !anchors(&dest_text).contains(frag) {
                    broken.push(format!("{shown} (no heading with that anchor)"));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links that lead nowhere:\n{}",
        broken.join("\n")
    );
    // The README alone links every guide; a parser that found nothing
    // would pass vacuously.
    assert!(followed >= 30, "only {followed} links found");
}

#[test]
fn the_readme_links_every_guide() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let linked: BTreeSet<String> = links(&readme).into_iter().map(|(_, t)| t).collect();
    for file in shipped_markdown() {
        let rel = file
            .strip_prefix(ROOT)
            .expect("under the crate")
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with("docs/") {
            assert!(
                linked.contains(&rel),
                "the README's guide list does not link {rel}"
            );
        }
    }
}

#[test]
fn the_readme_stays_a_front_door() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines < 400,
        "the README has {lines} lines: move guide text to docs/ (issue 12)"
    );
}
