//! Policy problems: one located message each (`file:line:column: key: message`), reported all at once.
//!
//! Error policy: loading never stops at the first problem. Every check records a
//! [`PolicyError`] and carries on, so a user fixes a policy in one round. Messages name keys,
//! values that are not secret, paths and variable names, never the content of a secret.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the whole file (it cannot be read).
    pub line: usize,
    /// 1-based, in characters; 0 together with `line`.
    pub column: usize,
    /// Dotted path of the offending key, e.g. `token[0].github[1].visibility`, or empty.
    pub key: String,
    pub message: String,
}

impl PolicyError {
    /// A problem at byte offset `offset` of `source`.
    pub(crate) fn at(
        file: &Path,
        source: &str,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_column(source, offset);
        Self {
            file: file.to_path_buf(),
            line,
            column,
            key: key.into(),
            message: crate::secret::scrub(&message.into()),
        }
    }

    /// A problem with the file as a whole (no position).
    pub(crate) fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: crate::secret::scrub(&message.into()),
        }
    }

    fn sort_key(&self) -> (usize, usize) {
        (self.line, self.column)
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// Every problem found in a policy, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    /// Sorts by position (stable, so problems at one spot keep the order they were found in).
    pub(crate) fn sorted(mut errors: Vec<PolicyError>) -> Self {
        errors.sort_by_key(PolicyError::sort_key);
        Self(errors)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, PolicyError> {
        self.0.iter()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

impl<'a> IntoIterator for &'a PolicyErrors {
    type Item = &'a PolicyError;
    type IntoIter = std::slice::Iter<'a, PolicyError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(source: &str, mut offset: usize) -> usize {
    while offset > 0 && !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Where a value sits in the source, for building errors later.
pub(crate) type Span = Range<usize>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 6), (2, 1));
        // byte 12 is the quote after `bé = ` (é is two bytes): column 6
        assert_eq!(line_column(src, 12), (2, 6));
        assert_eq!(line_column(src, 10_000), (3, 1));
    }

    #[test]
    fn display_formats() {
        let e = PolicyError {
            file: "p.toml".into(),
            line: 3,
            column: 7,
            key: "eci.token".into(),
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "p.toml:3:7: eci.token: boom");
        let e = PolicyError {
            key: String::new(),
            ..e
        };
        assert_eq!(e.to_string(), "p.toml:3:7: boom");
        let e = PolicyError::whole_file(Path::new("p.toml"), "cannot read");
        assert_eq!(e.to_string(), "p.toml: cannot read");
    }
}
