//! IPv4/IPv6 CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) and the IP-restriction verdict built on
//! them: which source addresses an IP policy's `allow`/`deny` rules admit.
//!
//! Pure: parsing and matching only; loading rules and enforcing verdicts belong to the edge.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A CIDR block. The address is stored with its host bits cleared, so `10.1.2.3/8` reads as
/// `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/`.
    #[error("a CIDR block needs a prefix length: `address/length`")]
    MissingPrefix,
    /// The address part is not an IP address.
    #[error("`{0}` is not an IPv4 or IPv6 address")]
    BadAddress(String),
    /// The prefix length is not a number within the family's width.
    #[error("prefix length `{0}` is out of range (0-32 for IPv4, 0-128 for IPv6)")]
    BadPrefix(String),
}

impl Cidr {
    /// Parses `address/length`. A bare address is refused: rules must say how wide they are.
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = s.trim().split_once('/').ok_or(CidrError::MissingPrefix)?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(addr.to_owned()))?;
        let width = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix.parse::<u8>() {
            Ok(p) if p <= width && !prefix.starts_with('+') => p,
            _ => return Err(CidrError::BadPrefix(prefix.to_owned())),
        };
        Ok(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in the block. IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) count as
    /// their IPv4 address, so a dual-stack listener matches IPv4 rules.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(s)
    }
}

/// What an IP policy rule does with the addresses it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// `allow`.
    Allow,
    /// `deny`.
    Deny,
}

impl RuleAction {
    /// Parses `allow` or `deny`.
    pub fn parse(s: &str) -> Option<RuleAction> {
        match s {
            "allow" => Some(RuleAction::Allow),
            "deny" => Some(RuleAction::Deny),
            _ => None,
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
        }
    }
}

/// The rules of every IP policy one IP restriction names, flattened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// `(block, action)` pairs, in no particular order.
    pub rules: Vec<(Cidr, RuleAction)>,
}

impl RuleSet {
    /// Whether `ip` passes: it matches no `deny` rule (deny wins), and it matches an `allow`
    /// rule unless the set has no `allow` rules at all (then everything not denied passes, so a
    /// policy of only `deny` rules is a block list).
    pub fn admits(&self, ip: IpAddr) -> bool {
        let mut has_allow = false;
        let mut allowed = false;
        for (cidr, action) in &self.rules {
            match action {
                RuleAction::Deny if cidr.contains(ip) => return false,
                RuleAction::Deny => {}
                RuleAction::Allow => {
                    has_allow = true;
                    allowed |= cidr.contains(ip);
                }
            }
        }
        allowed || !has_allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(Cidr::parse(" 0.0.0.0/0 ").unwrap().prefix(), 0);
        assert_eq!(
            Cidr::parse("2001:db8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(Cidr::parse("::/0").unwrap().to_string(), "::/0");
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "::/129",
            "x/8",
            "",
            "/8",
            "10.0.0/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn contains_within_family() {
        let v4 = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(v4.contains(ip("127.1.2.3")));
        assert!(!v4.contains(ip("128.0.0.1")));
        assert!(v4.contains(ip("::ffff:127.0.0.1")), "IPv4-mapped");
        assert!(!v4.contains(ip("::1")));
        let host = Cidr::parse("127.0.0.1/32").unwrap();
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
    }

    #[test]
    fn deny_wins_and_no_allow_rules_means_block_list() {
        let c = |s| Cidr::parse(s).unwrap();
        let empty = RuleSet::default();
        assert!(empty.admits(ip("1.2.3.4")));
        let block = RuleSet {
            rules: vec![(c("127.0.0.1/32"), RuleAction::Deny)],
        };
        assert!(!block.admits(ip("127.0.0.1")));
        assert!(block.admits(ip("127.0.0.2")));
        let mixed = RuleSet {
            rules: vec![
                (c("10.0.0.0/8"), RuleAction::Allow),
                (c("10.9.0.0/16"), RuleAction::Deny),
            ],
        };
        assert!(mixed.admits(ip("10.1.0.1")));
        assert!(!mixed.admits(ip("10.9.0.1")), "deny wins");
        assert!(!mixed.admits(ip("192.168.0.1")), "not allowed");
    }
}
