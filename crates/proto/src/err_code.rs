//! `ERR_NGROK_nnn` error codes and the error text carried in an RPC response's `Error` key (§7.1).
//!
//! The text format is `"human message\n\nERR_NGROK_nnn"`: the Rust SDK (hence Python and Node) takes
//! a line starting with `ERR_NGROK_` as the code and the other non-empty lines as the message; Go
//! finds `ERR_NGROK_\d+` anywhere. Codes are ngrok's where ngrok has one for the condition, so tools
//! that branch on them keep working; Warren-only conditions use the documented range
//! [`ErrCode::WARREN_RANGE`].

use std::fmt;

/// An `ERR_NGROK_nnn` code. Displays as `ERR_NGROK_nnn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ErrCode(pub u32);

/// The prefix of every code's text form.
pub const ERR_PREFIX: &str = "ERR_NGROK_";

impl ErrCode {
    // --- ngrok's own codes -------------------------------------------------------------------
    /// The authtoken is not in a form Warren issues (ngrok: malformed authtoken).
    pub const AUTHTOKEN_MALFORMED: ErrCode = ErrCode(105);
    /// The authtoken is well formed but matches no credential.
    pub const AUTHTOKEN_INVALID: ErrCode = ErrCode(107);
    /// The account or credential already has its maximum number of agent sessions.
    pub const TOO_MANY_AGENT_SESSIONS: ErrCode = ErrCode(108);
    /// The agent's source IP is not allowed by an agent IP restriction.
    pub const AGENT_IP_RESTRICTED: ErrCode = ErrCode(116);
    /// The authtoken's credential has been revoked.
    pub const CREDENTIAL_REVOKED: ErrCode = ErrCode(300);
    /// The requested TCP address is not reserved.
    pub const ADDRESS_NOT_RESERVED: ErrCode = ErrCode(307);
    /// The credential ACL does not permit binding this TCP address.
    pub const ACL_ADDRESS_DENIED: ErrCode = ErrCode(308);
    /// The requested TCP address is reserved by another account.
    pub const ADDRESS_RESERVED_BY_OTHER_ACCOUNT: ErrCode = ErrCode(309);
    /// The credential ACL does not permit binding this name.
    pub const ACL_NAME_DENIED: ErrCode = ErrCode(316);
    /// The requested wildcard name is not reserved.
    pub const WILDCARD_NOT_RESERVED: ErrCode = ErrCode(318);
    /// The requested host name is not reserved (by this account).
    pub const HOSTNAME_NOT_RESERVED: ErrCode = ErrCode(319);
    /// The session already has its maximum number of endpoints.
    pub const TOO_MANY_ENDPOINTS: ErrCode = ErrCode(324);
    /// The endpoint URL is already online (and pooling is not enabled on both).
    pub const ENDPOINT_ALREADY_ONLINE: ErrCode = ErrCode(334);
    /// The credential ACL does not permit binding random TCP addresses.
    pub const ACL_RANDOM_TCP_DENIED: ErrCode = ErrCode(356);
    /// The credential ACL does not permit binding this label.
    pub const ACL_LABEL_DENIED: ErrCode = ErrCode(399);

    // --- Warren-only codes (90000..=90999) ---------------------------------------------------
    /// Codes Warren defines for conditions ngrok has no public code for.
    pub const WARREN_RANGE: std::ops::RangeInclusive<u32> = 90000..=90999;
    /// The RPC body was not valid JSON, too large, or not the expected message.
    pub const MALFORMED_REQUEST: ErrCode = ErrCode(90001);
    /// `Bind.Proto` is not one the edge serves (e.g. `ssh`).
    pub const UNSUPPORTED_PROTO: ErrCode = ErrCode(90002);
    /// `Bind.Opts` is malformed (bad types, URL, base64, ProxyProto).
    pub const INVALID_BIND_OPTS: ErrCode = ErrCode(90003);
    /// `Bind.Opts` asks for an edge feature this server does not provide (e.g. OAuth).
    pub const UNSUPPORTED_OPTION: ErrCode = ErrCode(90004);
    /// Labeled tunnels (`StartTunnelWithLabel`) are not supported.
    pub const LABELED_TUNNELS_UNSUPPORTED: ErrCode = ErrCode(90005);
    /// The RPC names an endpoint this session does not have.
    pub const UNKNOWN_ENDPOINT: ErrCode = ErrCode(90006);
    /// The operation is not implemented by this server.
    pub const NOT_IMPLEMENTED: ErrCode = ErrCode(90007);
    /// Warren failed internally; retrying later may succeed.
    pub const INTERNAL: ErrCode = ErrCode(90008);

    /// The numeric part.
    pub const fn number(self) -> u32 {
        self.0
    }

    /// Parses `ERR_NGROK_<digits>` (exactly; no surrounding text).
    pub fn parse(text: &str) -> Option<ErrCode> {
        let digits = text.strip_prefix(ERR_PREFIX)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(ErrCode)
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ERR_PREFIX}{}", self.0)
    }
}

/// The `Error` text for an RPC response: `"message\n\nERR_NGROK_nnn"`.
///
/// Lines of `message` that would themselves start with `ERR_NGROK_` are indented by one space so
/// the agent does not mistake them for the code.
pub fn encode_error(message: &str, code: ErrCode) -> String {
    let mut out = String::with_capacity(message.len() + 20);
    for (i, line) in message.trim().lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.starts_with(ERR_PREFIX) {
            out.push(' ');
        }
        out.push_str(line);
    }
    out.push_str("\n\n");
    out.push_str(&code.to_string());
    out
}

/// Splits an `Error` text the way the Rust SDK does: a line starting with `ERR_NGROK_` is the code
/// (the last one wins), the other non-empty lines, joined by `\n`, are the message. A code line with
/// a non-numeric suffix yields no code and is dropped.
pub fn parse_error(text: &str) -> (String, Option<ErrCode>) {
    let mut code = None;
    let mut message = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with(ERR_PREFIX) {
            if let Some(parsed) = ErrCode::parse(line.trim_end()) {
                code = Some(parsed);
            }
        } else if !line.trim().is_empty() {
            message.push(line);
        }
    }
    (message.join("\n"), code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        assert_eq!(ErrCode::ACL_NAME_DENIED.to_string(), "ERR_NGROK_316");
        assert_eq!(ErrCode(9).to_string(), "ERR_NGROK_9");
    }

    #[test]
    fn encode_format() {
        assert_eq!(
            encode_error(
                "endpoint URL is already online",
                ErrCode::ENDPOINT_ALREADY_ONLINE
            ),
            "endpoint URL is already online\n\nERR_NGROK_334"
        );
    }

    #[test]
    fn encode_then_parse_roundtrips() {
        let text = encode_error(
            "The credential ACL policy does not permit binding this name.\nName: a.example.com",
            ErrCode::ACL_NAME_DENIED,
        );
        let (message, code) = parse_error(&text);
        assert_eq!(
            message,
            "The credential ACL policy does not permit binding this name.\nName: a.example.com"
        );
        assert_eq!(code, Some(ErrCode::ACL_NAME_DENIED));
    }

    #[test]
    fn message_lines_that_look_like_codes_are_escaped() {
        let text = encode_error("ERR_NGROK_1 is not my code", ErrCode(2));
        assert_eq!(
            parse_error(&text),
            (" ERR_NGROK_1 is not my code".into(), Some(ErrCode(2)))
        );
    }

    #[test]
    fn parse_without_code() {
        assert_eq!(parse_error("boom"), ("boom".into(), None));
        assert_eq!(parse_error(""), (String::new(), None));
    }

    #[test]
    fn parse_bad_code_suffix_is_dropped() {
        assert_eq!(parse_error("x\r\nERR_NGROK_abc\r\n"), ("x".into(), None));
        assert_eq!(ErrCode::parse("ERR_NGROK_"), None);
        assert_eq!(ErrCode::parse("ERR_NGROK_99999999999"), None);
        assert_eq!(
            ErrCode::parse("ERR_NGROK_107"),
            Some(ErrCode::AUTHTOKEN_INVALID)
        );
    }

    #[test]
    fn warren_codes_are_in_the_warren_range() {
        for code in [
            ErrCode::MALFORMED_REQUEST,
            ErrCode::UNSUPPORTED_PROTO,
            ErrCode::INVALID_BIND_OPTS,
            ErrCode::UNSUPPORTED_OPTION,
            ErrCode::LABELED_TUNNELS_UNSUPPORTED,
            ErrCode::UNKNOWN_ENDPOINT,
            ErrCode::NOT_IMPLEMENTED,
            ErrCode::INTERNAL,
        ] {
            assert!(ErrCode::WARREN_RANGE.contains(&code.number()));
        }
    }
}
