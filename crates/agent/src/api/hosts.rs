//! The Host-header allow-list of the local API, against DNS rebinding: a web page on an
//! attacker's domain that resolves to 127.0.0.1 reaches the API with the attacker's name in the
//! Host header, and is refused. Pure: no IO, no clock.
//!
//! Always allowed: `localhost`, `127.0.0.1`, `::1` (bare or bracketed), and the IP address the
//! connection arrived on; any port. Added by `web_allow_hosts` entries:
//! - a host name (`agent.example.com`, compared without case) or an IP address;
//! - a CIDR block (`10.0.0.0/8`, `fd00::/8`): any IP address literal inside it;
//! - `.example.com`: any subdomain of `example.com` (not `example.com` itself; list it too).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The parsed allow-list.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowHosts {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// An exact host name, lowercase, without a trailing dot.
    Name(String),
    /// An IP address.
    Ip(IpAddr),
    /// A CIDR block: network and prefix length.
    Net(IpAddr, u8),
    /// `.suffix`: subdomains of this name (stored with its leading dot).
    Suffix(String),
}

impl AllowHosts {
    /// Parses `web_allow_hosts` entries; entries that cannot mean anything (an empty string, a
    /// bad CIDR block) are skipped with a warning.
    pub(crate) fn new(entries: &[String]) -> AllowHosts {
        let mut rules = Vec::with_capacity(entries.len());
        for entry in entries {
            match Rule::parse(entry) {
                Some(rule) => rules.push(rule),
                None => tracing::warn!(entry = %entry, "ignoring an invalid web_allow_hosts entry"),
            }
        }
        AllowHosts { rules }
    }

    /// Whether a request with this Host header value, arriving on `local_ip`, may be served.
    pub(crate) fn allows(&self, host_header: &str, local_ip: IpAddr) -> bool {
        let Some(host) = host_of(host_header) else {
            return false;
        };
        let ip = host.parse::<IpAddr>().ok();
        if host == "localhost" {
            return true;
        }
        if let Some(ip) = ip {
            let loopback =
                ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST);
            if loopback || ip == local_ip {
                return true;
            }
        }
        self.rules.iter().any(|rule| match rule {
            Rule::Name(name) => *name == host,
            Rule::Ip(allowed) => ip == Some(*allowed),
            Rule::Net(net, bits) => ip.is_some_and(|ip| in_net(ip, *net, *bits)),
            Rule::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        })
    }
}

impl Rule {
    fn parse(entry: &str) -> Option<Rule> {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() {
            return None;
        }
        if let Some((net, bits)) = entry.split_once('/') {
            let net: IpAddr = net.trim_matches(['[', ']']).parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(Rule::Net(net, bits));
        }
        if entry.starts_with('.') {
            let suffix = entry.trim_end_matches('.');
            return (suffix.len() > 1).then(|| Rule::Suffix(suffix.to_owned()));
        }
        let host = host_of(&entry)?;
        Some(match host.parse::<IpAddr>() {
            Ok(ip) => Rule::Ip(ip),
            Err(_) => Rule::Name(host),
        })
    }
}

/// The host of a Host header value, lowercase, without port, brackets or trailing dot:
/// `Localhost:4040` → `localhost`, `[::1]:4040` → `::1`, `::1` → `::1`. `None` when malformed.
fn host_of(value: &str) -> Option<String> {
    let value = value.trim();
    let host = if let Some(v6) = value.strip_prefix('[') {
        let (addr, rest) = v6.split_once(']')?;
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        addr.parse::<Ipv6Addr>().ok()?;
        addr
    } else if value.parse::<Ipv6Addr>().is_ok() {
        value
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return None,
            None => value,
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    ok.then_some(host)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `ip` is inside `net/bits` (IPv4-mapped IPv6 addresses count as IPv4).
fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let unmap = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (unmap(ip), unmap(net)) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let bits = u32::from(bits.min(32));
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let bits = u32::from(bits.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &[&str]) -> AllowHosts {
        AllowHosts::new(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn host_values() {
        assert_eq!(host_of("Localhost:4040").as_deref(), Some("localhost"));
        assert_eq!(host_of("[::1]:4040").as_deref(), Some("::1"));
        assert_eq!(host_of("[::1]").as_deref(), Some("::1"));
        assert_eq!(host_of("::1").as_deref(), Some("::1"));
        assert_eq!(host_of("example.com.").as_deref(), Some("example.com"));
        for bad in [
            "", ":80", "[::1", "[zz]:1", "a b", "h:x", "h:123456", "[::1]x",
        ] {
            assert_eq!(host_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn loopback_names_are_always_allowed() {
        let none = allow(&[]);
        for ok in [
            "localhost",
            "localhost:4040",
            "127.0.0.1",
            "127.0.0.1:4040",
            "[::1]:4040",
            "::1",
        ] {
            assert!(none.allows(ok, LOCAL), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:4040",
            "localhost.evil.com",
            "127.0.0.2",
            "10.0.0.1:4040",
        ] {
            assert!(!none.allows(bad, LOCAL), "{bad}");
        }
        let lan: IpAddr = "192.168.1.20".parse().unwrap();
        assert!(
            none.allows("192.168.1.20:4040", lan),
            "the address the connection came to"
        );
        assert!(!none.allows("192.168.1.21:4040", lan));
    }

    #[test]
    fn entries() {
        let list = allow(&[
            "Agent.Example.com",
            ".dev.example.com",
            "10.1.2.3",
            "172.16.0.0/12",
            "fd00::/8",
            "bad/99",
            "",
        ]);
        assert_eq!(list.rules.len(), 5);
        assert!(list.allows("agent.example.com:4040", LOCAL));
        assert!(list.allows("AGENT.EXAMPLE.COM", LOCAL));
        assert!(!list.allows("other.example.com", LOCAL));
        assert!(list.allows("a.dev.example.com", LOCAL));
        assert!(list.allows("x.y.dev.example.com:80", LOCAL));
        assert!(!list.allows("dev.example.com", LOCAL));
        assert!(!list.allows("evildev.example.com", LOCAL));
        assert!(list.allows("10.1.2.3:4040", LOCAL));
        assert!(list.allows("172.31.255.1", LOCAL));
        assert!(!list.allows("172.32.0.1", LOCAL));
        assert!(list.allows("[fd12::1]:4040", LOCAL));
        assert!(!list.allows("[fe80::1]:4040", LOCAL));
    }

    #[test]
    fn networks() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_net(v4("10.9.8.7"), v4("10.0.0.0"), 8));
        assert!(in_net(v4("1.2.3.4"), v4("0.0.0.0"), 0));
        assert!(in_net(v4("::ffff:10.0.0.1"), v4("10.0.0.0"), 8));
        assert!(!in_net(v4("10.0.0.1"), v4("10.0.0.0"), 32));
        assert!(in_net(v4("::1"), v4("::1"), 128));
    }
}
