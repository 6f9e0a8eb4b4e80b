//! "Did you mean ...?" for unknown keys and values: the nearest candidate by edit distance.

/// The candidate nearest to `word` (case-insensitive edit distance), if it is close enough
/// to be a likely typo: at most 3 edits and fewer edits than `word` has characters.
pub(crate) fn nearest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word_lower = word.to_lowercase();
    let limit = word.chars().count().min(4);
    candidates
        .iter()
        .map(|c| (levenshtein(&word_lower, &c.to_lowercase()), *c))
        .filter(|(distance, _)| *distance < limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"`, or nothing.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    nearest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            let delete = previous[j + 1] + 1;
            let insert = current[j] + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }

    #[test]
    fn suggestions() {
        let keys = ["endpoint", "token", "timeout", "allow_insecure_http"];
        assert_eq!(nearest("tokne", &keys), Some("token"));
        assert_eq!(nearest("Endpont", &keys), Some("endpoint"));
        assert_eq!(nearest("zzzzzzzz", &keys), None);
        assert_eq!(nearest("x", &keys), None);
        assert_eq!(did_you_mean("timeuot", &keys), "; did you mean `timeout`?");
        assert_eq!(did_you_mean("color", &keys), "");
    }
}
