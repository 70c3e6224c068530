//! Host names and domain patterns: validation, normalization, wildcard matching.
//!
//! A [`HostName`] is normalized on parse: ASCII-lowercased, one trailing dot removed. It
//! must have at least one label; each label is 1..=63 characters of `[a-z0-9-]` and
//! neither starts nor ends with `-`; the whole name is at most 253 characters.
//! Underscores are rejected: they are not valid in host names (RFC 952/1123), public CAs
//! will not issue certificates for them, and accepting them would let two spellings reach
//! different routes depending on the client. Non-ASCII names must arrive as punycode
//! (`xn--…`). IPv4 literals pass as all-numeric labels.
//!
//! A [`DomainPattern`] is an exact host name or a leading wildcard `*.<suffix>`. A
//! wildcard matches every name with at least one more label under its suffix
//! (`*.a.example.com` matches `x.a.example.com` and `y.x.a.example.com`) but never the
//! suffix itself. Route lookup is: exact name first, then [`wildcard_lookup_keys`] from
//! the most to the least specific, first hit wins.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// Longest host name, in bytes, after normalization.
pub const MAX_HOST_LEN: usize = 253;
/// Longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a string is not a host name or domain pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing (or only a dot) was given.
    #[error("host name is empty")]
    Empty,
    /// The normalized name exceeds [`MAX_HOST_LEN`].
    #[error("host name is {len} bytes long; at most {MAX_HOST_LEN} are allowed")]
    TooLong {
        /// Length of the normalized name.
        len: usize,
    },
    /// Two dots in a row, or a leading dot.
    #[error("host name has an empty label")]
    EmptyLabel,
    /// A label exceeds [`MAX_LABEL_LEN`].
    #[error("host name label is longer than {MAX_LABEL_LEN} bytes")]
    LabelTooLong,
    /// A character outside `[a-z0-9-]` (after lowercasing).
    #[error("host name contains {0:?}; only letters, digits, '-' and '.' are allowed")]
    BadCharacter(char),
    /// A label starts or ends with `-`.
    #[error("host name label starts or ends with '-'")]
    HyphenAtLabelEdge,
    /// `*` somewhere other than as the whole first label of a pattern.
    #[error("'*' is only allowed as the whole first label of a wildcard pattern")]
    MisplacedWildcard,
    /// A wildcard pattern with nothing after `*`.
    #[error("wildcard pattern needs a domain after \"*.\"")]
    WildcardWithoutSuffix,
}

/// A validated, normalized host name (no wildcard).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostName(String);

impl HostName {
    /// Validates and normalizes `s` (lowercase, trailing dot removed).
    pub fn parse(s: &str) -> Result<HostName, HostError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(HostError::Empty);
        }
        if s.len() > MAX_HOST_LEN {
            return Err(HostError::TooLong { len: s.len() });
        }
        let name = s.to_ascii_lowercase();
        for label in name.split('.') {
            check_label(label)?;
        }
        Ok(HostName(name))
    }

    /// The normalized name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels, left to right.
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('.')
    }

    /// Number of labels.
    pub fn label_count(&self) -> usize {
        self.0.bytes().filter(|&b| b == b'.').count() + 1
    }

    /// Whether `self` lies strictly below `parent` (`a.b.c` under `b.c`; not `b.c` itself).
    pub fn is_strict_subdomain_of(&self, parent: &HostName) -> bool {
        self.0
            .strip_suffix(parent.as_str())
            .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
    }
}

fn check_label(label: &str) -> Result<(), HostError> {
    if label.is_empty() {
        return Err(HostError::EmptyLabel);
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(HostError::LabelTooLong);
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(if c == '*' {
            HostError::MisplacedWildcard
        } else {
            HostError::BadCharacter(c)
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(HostError::HyphenAtLabelEdge);
    }
    Ok(())
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for HostName {
    type Err = HostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostName::parse(s)
    }
}

impl AsRef<str> for HostName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HostName {
    type Error = HostError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        HostName::parse(&s)
    }
}

impl From<HostName> for String {
    fn from(h: HostName) -> String {
        h.0
    }
}

/// A host name or a leading-wildcard pattern, as used by reserved domains, endpoint URLs
/// and ACL rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DomainPattern {
    /// Matches exactly this name.
    Exact(HostName),
    /// `*.<suffix>`: matches every name strictly below `suffix`, at any depth.
    Wildcard {
        /// The fixed part after `*.`.
        suffix: HostName,
    },
}

impl DomainPattern {
    /// Parses `name` or `*.name` (normalized like [`HostName::parse`]).
    pub fn parse(s: &str) -> Result<DomainPattern, HostError> {
        if s == "*" || s == "*." {
            return Err(HostError::WildcardWithoutSuffix);
        }
        match s.strip_prefix("*.") {
            Some(suffix) => {
                let suffix = HostName::parse(suffix).map_err(|e| match e {
                    HostError::Empty => HostError::WildcardWithoutSuffix,
                    // Keep the limit about the whole pattern, which is two bytes longer.
                    HostError::TooLong { len } => HostError::TooLong { len: len + 2 },
                    other => other,
                })?;
                if suffix.as_str().len() + 2 > MAX_HOST_LEN {
                    return Err(HostError::TooLong {
                        len: suffix.as_str().len() + 2,
                    });
                }
                Ok(DomainPattern::Wildcard { suffix })
            }
            None => HostName::parse(s).map(DomainPattern::Exact),
        }
    }

    /// Whether this is a wildcard pattern.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, DomainPattern::Wildcard { .. })
    }

    /// Whether `host` is matched by this pattern.
    pub fn matches(&self, host: &HostName) -> bool {
        match self {
            DomainPattern::Exact(name) => name == host,
            DomainPattern::Wildcard { suffix } => host.is_strict_subdomain_of(suffix),
        }
    }

    /// Whether every name `other` matches is also matched by `self` (so `*.a.com` covers
    /// itself, `*.b.a.com` and `x.a.com`; an exact name covers only itself).
    pub fn covers(&self, other: &DomainPattern) -> bool {
        match (self, other) {
            (_, DomainPattern::Exact(host)) => self.matches(host),
            (DomainPattern::Exact(_), DomainPattern::Wildcard { .. }) => false,
            (DomainPattern::Wildcard { suffix }, DomainPattern::Wildcard { suffix: inner }) => {
                inner == suffix || inner.is_strict_subdomain_of(suffix)
            }
        }
    }

    /// How specific the pattern is: the number of fixed labels. Among patterns matching
    /// the same name the larger value wins, and an exact name (which has more fixed labels
    /// than any wildcard matching it) always beats a wildcard.
    pub fn specificity(&self) -> usize {
        match self {
            DomainPattern::Exact(name) => name.label_count(),
            DomainPattern::Wildcard { suffix } => suffix.label_count(),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(name) => f.write_str(name.as_str()),
            DomainPattern::Wildcard { suffix } => write!(f, "*.{suffix}"),
        }
    }
}

impl FromStr for DomainPattern {
    type Err = HostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DomainPattern::parse(s)
    }
}

impl TryFrom<String> for DomainPattern {
    type Error = HostError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DomainPattern::parse(&s)
    }
}

impl From<DomainPattern> for String {
    fn from(p: DomainPattern) -> String {
        p.to_string()
    }
}

/// The wildcard patterns that could match `host`, most specific first, in their
/// [`Display`](DomainPattern) form: for `a.b.c.d` that is `*.b.c.d`, `*.c.d`, `*.d`.
/// A single-label name yields nothing.
pub fn wildcard_lookup_keys(host: &HostName) -> impl Iterator<Item = String> + '_ {
    let name = host.as_str();
    name.match_indices('.')
        .map(move |(dot, _)| format!("*{}", &name[dot..]))
}
