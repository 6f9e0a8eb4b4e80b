//! SQL `ILIKE` matching: case-insensitive, `%` any run, `_` any one char, `\` escapes.

#[derive(Debug, PartialEq)]
enum Part {
    AnyRun,
    AnyOne,
    Lit(char),
}

fn compile(pattern: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        parts.push(match c {
            '%' => Part::AnyRun,
            '_' => Part::AnyOne,
            // A trailing backslash stands for itself.
            '\\' => Part::Lit(chars.next().unwrap_or('\\')),
            other => Part::Lit(other),
        });
    }
    parts
}

fn same_ci(a: char, b: char) -> bool {
    a == b || a.to_lowercase().eq(b.to_lowercase())
}

/// True when `text` matches the whole `pattern`.
pub(crate) fn ilike(text: &str, pattern: &str) -> bool {
    let parts = compile(pattern);
    let text: Vec<char> = text.chars().collect();
    // reachable[j]: the parts seen so far can consume exactly text[..j].
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for part in &parts {
        let mut next = vec![false; text.len() + 1];
        match part {
            Part::AnyRun => {
                let mut on = false;
                for (j, slot) in next.iter_mut().enumerate() {
                    on = on || reachable[j];
                    *slot = on;
                }
            }
            Part::AnyOne => {
                next[1..].copy_from_slice(&reachable[..text.len()]);
            }
            Part::Lit(c) => {
                for (j, t) in text.iter().enumerate() {
                    next[j + 1] = reachable[j] && same_ci(*t, *c);
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

#[cfg(test)]
mod tests {
    use super::ilike;

    #[test]
    fn matches_like_postgres() {
        assert!(ilike("ci-deploy", "ci-deploy"));
        assert!(ilike("CI-Deploy", "ci-deploy"));
        assert!(ilike("ci-deploy", "ci_deploy"));
        assert!(!ilike("ci-deploy-2", "ci-deploy"));
        assert!(ilike("ci-deploy-2", "ci-deploy%"));
        assert!(ilike("my ci-deploy", "%ci-deploy%"));
        assert!(!ilike("ci-deploy", "ci\\_deploy"));
        assert!(ilike("ci_deploy", "ci\\_deploy"));
        assert!(ilike("100%", "100\\%"));
        assert!(!ilike("1000", "100\\%"));
        assert!(ilike("", "%"));
        assert!(!ilike("", "_"));
        assert!(ilike("abc", "a%c"));
        assert!(ilike("ac", "a%c"));
        assert!(!ilike("ab", "a%c"));
    }
}
