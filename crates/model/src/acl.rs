//! Authtoken ACLs: which names, addresses and labels a credential may bind.
//!
//! A rule is `*` (anything) or `bind:<value>`, where the value is `*` (anything), a
//! domain (`foo.example.com` or a leading wildcard `*.example.com`), an address
//! (`host:port`, IPv6 as `[addr]:port`), or a label `key=value` in which key and value
//! may contain `*` wildcards (each `*` matches any run of characters). Anything else is
//! rejected with the ERR_NGROK_600 text.
//!
//! Evaluation: an empty list is unrestricted; otherwise a bind is permitted when **any**
//! rule permits it. A wildcard domain rule permits every name strictly below its suffix
//! (any depth, never the suffix itself) and also the wildcard patterns it covers, the
//! literal `*.suffix` included, so `bind:*.x.com` may start the `*.x.com` endpoint. A
//! random TCP address is permitted only when the list is unrestricted or holds `*`.
//!
//! Limits (Warren's own; ngrok documents none): at most [`MAX_ACL_RULES`] rules of at
//! most [`MAX_ACL_RULE_LEN`] bytes each.

use std::fmt;
use std::net::Ipv6Addr;

use crate::host::{DomainPattern, HostName};

#[cfg(test)]
mod tests;

/// Most rules one ACL may hold.
pub const MAX_ACL_RULES: usize = 100;
/// Longest rule, in bytes, `bind:` included.
pub const MAX_ACL_RULE_LEN: usize = 512;
/// The ngrok error code for an invalid ACL.
pub const ACL_ERROR_CODE: &str = "ERR_NGROK_600";

/// Longest excerpt of an offending rule quoted back in an error.
const QUOTED_RULE_LEN: usize = 80;

/// Why an ACL was rejected. `Display` carries the ERR_NGROK_600 text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// One rule is malformed.
    #[error(
        "ERR_NGROK_600: invalid ACL rule {rule:?} ({reason}). A rule must be '*' or start with \
         'bind:', and the bind value must match the format of a domain, address, or label."
    )]
    InvalidRule {
        /// The offending rule (truncated to 80 bytes).
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More than [`MAX_ACL_RULES`] rules.
    #[error("ERR_NGROK_600: an ACL may hold at most {MAX_ACL_RULES} rules, got {count}.")]
    TooManyRules {
        /// How many rules were given.
        count: usize,
    },
}

impl AclError {
    /// The ngrok error code ([`ACL_ERROR_CODE`]).
    pub fn code(&self) -> &'static str {
        ACL_ERROR_CODE
    }

    fn invalid(rule: &str, reason: impl fmt::Display) -> AclError {
        let mut end = rule.len().min(QUOTED_RULE_LEN);
        while !rule.is_char_boundary(end) {
            end -= 1;
        }
        AclError::InvalidRule {
            rule: rule[..end].to_string(),
            reason: reason.to_string(),
        }
    }
}

/// One parsed ACL rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AclRule {
    /// `*` or `bind:*`: permits everything.
    Any,
    /// `bind:<domain>`: an exact name or a leading wildcard.
    Domain(DomainPattern),
    /// `bind:<host>:<port>`: one TCP address.
    Addr(BindAddr),
    /// `bind:<key>=<value>`: a label, with `*` wildcards.
    Label(LabelRule),
}

impl AclRule {
    /// Parses one rule.
    pub fn parse(rule: &str) -> Result<AclRule, AclError> {
        if rule.len() > MAX_ACL_RULE_LEN {
            return Err(AclError::invalid(
                rule,
                format_args!("longer than {MAX_ACL_RULE_LEN} bytes"),
            ));
        }
        if rule == "*" {
            return Ok(AclRule::Any);
        }
        let Some(value) = rule.strip_prefix("bind:") else {
            return Err(AclError::invalid(rule, "does not start with 'bind:'"));
        };
        if value.is_empty() {
            return Err(AclError::invalid(rule, "empty bind value"));
        }
        if value == "*" {
            return Ok(AclRule::Any);
        }
        if value.contains('=') {
            return LabelRule::parse(value)
                .map(AclRule::Label)
                .map_err(|reason| AclError::invalid(rule, reason));
        }
        if value.contains(':') {
            return BindAddr::parse(value)
                .map(AclRule::Addr)
                .map_err(|reason| AclError::invalid(rule, reason));
        }
        DomainPattern::parse(value)
            .map(AclRule::Domain)
            .map_err(|e| AclError::invalid(rule, e))
    }
}

impl fmt::Display for AclRule {
    /// The canonical (normalized) spelling; parsing it yields the same rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclRule::Any => f.write_str("*"),
            AclRule::Domain(pattern) => write!(f, "bind:{pattern}"),
            AclRule::Addr(addr) => write!(f, "bind:{addr}"),
            AclRule::Label(label) => write!(f, "bind:{label}"),
        }
    }
}

/// A TCP address `host:port`, host normalized (lowercase name, IPv4, or `[IPv6]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindAddr {
    host: String,
    port: u16,
}

impl BindAddr {
    /// Parses `host:port` (`[v6]:port` for IPv6). Port 1..=65535, decimal.
    pub fn parse(s: &str) -> Result<BindAddr, String> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| "address must be host:port".to_string())?;
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("port must be a decimal number".to_string());
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err("port must be between 1 and 65535".to_string()),
        };
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => {
                let ip: Ipv6Addr = v6
                    .parse()
                    .map_err(|_| "bracketed host must be an IPv6 address".to_string())?;
                format!("[{ip}]")
            }
            None => HostName::parse(host)
                .map_err(|e| format!("address host: {e}"))?
                .to_string(),
        };
        Ok(BindAddr { host, port })
    }

    /// The normalized host (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A label rule `key=value`; `*` in either part matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelRule {
    key: String,
    value: String,
}

impl LabelRule {
    /// Parses `key=value`: both parts non-empty, of `[A-Za-z0-9._/-]` and `*`.
    pub fn parse(s: &str) -> Result<LabelRule, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| "label must be key=value".to_string())?;
        for (what, part) in [("key", key), ("value", value)] {
            if part.is_empty() {
                return Err(format!("label {what} is empty"));
            }
            if let Some(c) = part
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-' | '*')))
            {
                return Err(format!("label {what} contains {c:?}"));
            }
        }
        Ok(LabelRule {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    /// The key pattern.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value pattern.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the label `key=value` matches this rule (case-sensitive).
    pub fn matches(&self, key: &str, value: &str) -> bool {
        glob_matches(&self.key, key) && glob_matches(&self.value, value)
    }
}

impl fmt::Display for LabelRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// Whether `s` matches `pattern`, in which each `*` matches any run of bytes (possibly
/// empty) and every other byte matches itself. Linear-time greedy matcher with
/// backtracking to the last `*` only.
pub(crate) fn glob_matches(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    // Position after the last '*' seen, and the input position it is currently matched to.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            pi += 1;
            star = Some((pi, si));
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((after_star, matched_to)) = star {
            // Let the last '*' swallow one more byte and retry.
            pi = after_star;
            si = matched_to + 1;
            star = Some((after_star, si));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// A credential's ACL: a list of rules with OR semantics; empty means unrestricted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl(Vec<AclRule>);

impl Acl {
    /// The empty, unrestricted ACL.
    pub fn unrestricted() -> Acl {
        Acl(Vec::new())
    }

    /// Parses every rule; fails on the first invalid one or when there are too many.
    pub fn parse<I>(rules: I) -> Result<Acl, AclError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut parsed = Vec::new();
        let mut count = 0;
        for rule in rules {
            count += 1;
            if count <= MAX_ACL_RULES {
                parsed.push(AclRule::parse(rule.as_ref())?);
            }
        }
        if count > MAX_ACL_RULES {
            return Err(AclError::TooManyRules { count });
        }
        Ok(Acl(parsed))
    }

    /// Builds an ACL from already-parsed rules (not checked against [`MAX_ACL_RULES`]).
    pub fn from_rules(rules: Vec<AclRule>) -> Acl {
        Acl(rules)
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[AclRule] {
        &self.0
    }

    /// The canonical spelling of every rule.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Whether the ACL permits everything (empty, or holds `*`).
    pub fn is_unrestricted(&self) -> bool {
        self.0.is_empty() || self.0.contains(&AclRule::Any)
    }

    /// Whether the credential may bind the host name `host`.
    pub fn permits_host(&self, host: &HostName) -> bool {
        self.permits(|rule| matches!(rule, AclRule::Domain(p) if p.matches(host)))
    }

    /// Whether the credential may bind `pattern`: an exact name as [`Acl::permits_host`];
    /// a wildcard only under a domain rule that covers it (`bind:*.x.com` permits
    /// `*.x.com` and `*.y.x.com`, never `*.com`).
    pub fn permits_domain(&self, pattern: &DomainPattern) -> bool {
        self.permits(|rule| matches!(rule, AclRule::Domain(p) if p.covers(pattern)))
    }

    /// Whether the credential may bind the TCP address `addr` (`host:port`). An address
    /// that does not parse is permitted only by an unrestricted ACL.
    pub fn permits_addr(&self, addr: &str) -> bool {
        if self.is_unrestricted() {
            return true;
        }
        let Ok(addr) = BindAddr::parse(addr) else {
            return false;
        };
        self.permits(|rule| matches!(rule, AclRule::Addr(a) if *a == addr))
    }

    /// Whether the credential may bind a TCP address chosen by the edge.
    pub fn permits_random_addr(&self) -> bool {
        self.is_unrestricted()
    }

    /// Whether the credential may bind the label `key=value`. A labeled tunnel carries
    /// several labels; the caller checks each.
    pub fn permits_label(&self, key: &str, value: &str) -> bool {
        self.permits(|rule| matches!(rule, AclRule::Label(l) if l.matches(key, value)))
    }

    fn permits(&self, rule_permits: impl Fn(&AclRule) -> bool) -> bool {
        self.is_unrestricted() || self.0.iter().any(rule_permits)
    }
}
