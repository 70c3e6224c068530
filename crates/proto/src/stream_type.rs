//! Stream type numbers: the big-endian `u32` that starts every mux stream (§3).
//!
//! This module only names the numbers; writing and reading the 4-byte prefix is the mux layer's job.

/// Client → edge RPC: authenticate the session ([`crate::msg::Auth`]).
pub const AUTH: u32 = 0;
/// Client → edge RPC: start an endpoint ([`crate::msg::Bind`]).
pub const BIND: u32 = 1;
/// Client → edge RPC: stop an endpoint ([`crate::msg::Unbind`]).
pub const UNBIND: u32 = 2;
/// Edge → agent: one public connection, led by a [`crate::msg::ProxyHeader`].
pub const PROXY: u32 = 3;
/// Edge → agent command: restart the agent ([`crate::msg::Restart`]).
pub const RESTART: u32 = 4;
/// Edge → agent command: stop the agent ([`crate::msg::Stop`]).
pub const STOP: u32 = 5;
/// Edge → agent command: update the agent ([`crate::msg::Update`]).
pub const UPDATE: u32 = 6;
/// Client → edge RPC: start a labeled tunnel ([`crate::msg::StartTunnelWithLabel`]).
pub const START_TUNNEL_WITH_LABEL: u32 = 7;
/// Client → edge RPC (Go only): ask for server info ([`crate::msg::SrvInfo`]).
pub const SRV_INFO: u32 = 8;
/// Edge → agent notice: one endpoint was stopped by the edge ([`crate::msg::StopTunnel`]).
pub const STOP_TUNNEL: u32 = 9;
/// Client → edge RPC (Go v2 only): change an endpoint's state ([`crate::msg::PatchTunnelState`]).
pub const PATCH_TUNNEL_STATE: u32 = 10;
/// Either side: 4-byte heartbeat echo (§4).
pub const HEARTBEAT: u32 = 0xFFFF_FFFF;

/// Which side opens streams of a given type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opener {
    /// Only the agent opens it (RPCs); the edge must refuse it from itself.
    Agent,
    /// Only the edge opens it (proxy streams, commands); an agent-opened one is a protocol error.
    Edge,
    /// Either side (heartbeat).
    Both,
}

/// Every known stream type, as an enum for exhaustive matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum StreamType {
    /// See [`AUTH`].
    Auth = AUTH,
    /// See [`BIND`].
    Bind = BIND,
    /// See [`UNBIND`].
    Unbind = UNBIND,
    /// See [`PROXY`].
    Proxy = PROXY,
    /// See [`RESTART`].
    Restart = RESTART,
    /// See [`STOP`].
    Stop = STOP,
    /// See [`UPDATE`].
    Update = UPDATE,
    /// See [`START_TUNNEL_WITH_LABEL`].
    StartTunnelWithLabel = START_TUNNEL_WITH_LABEL,
    /// See [`SRV_INFO`].
    SrvInfo = SRV_INFO,
    /// See [`STOP_TUNNEL`].
    StopTunnel = STOP_TUNNEL,
    /// See [`PATCH_TUNNEL_STATE`].
    PatchTunnelState = PATCH_TUNNEL_STATE,
    /// See [`HEARTBEAT`].
    Heartbeat = HEARTBEAT,
}

impl StreamType {
    /// Every variant, in numeric order.
    pub const ALL: [StreamType; 12] = [
        StreamType::Auth,
        StreamType::Bind,
        StreamType::Unbind,
        StreamType::Proxy,
        StreamType::Restart,
        StreamType::Stop,
        StreamType::Update,
        StreamType::StartTunnelWithLabel,
        StreamType::SrvInfo,
        StreamType::StopTunnel,
        StreamType::PatchTunnelState,
        StreamType::Heartbeat,
    ];

    /// The stream type for a wire number, or `None` for an unknown one.
    pub const fn from_u32(value: u32) -> Option<StreamType> {
        Some(match value {
            AUTH => StreamType::Auth,
            BIND => StreamType::Bind,
            UNBIND => StreamType::Unbind,
            PROXY => StreamType::Proxy,
            RESTART => StreamType::Restart,
            STOP => StreamType::Stop,
            UPDATE => StreamType::Update,
            START_TUNNEL_WITH_LABEL => StreamType::StartTunnelWithLabel,
            SRV_INFO => StreamType::SrvInfo,
            STOP_TUNNEL => StreamType::StopTunnel,
            PATCH_TUNNEL_STATE => StreamType::PatchTunnelState,
            HEARTBEAT => StreamType::Heartbeat,
            _ => return None,
        })
    }

    /// The wire number.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// Which side may open a stream of this type.
    pub const fn opener(self) -> Opener {
        match self {
            StreamType::Auth
            | StreamType::Bind
            | StreamType::Unbind
            | StreamType::StartTunnelWithLabel
            | StreamType::SrvInfo
            | StreamType::PatchTunnelState => Opener::Agent,
            StreamType::Proxy
            | StreamType::Restart
            | StreamType::Stop
            | StreamType::Update
            | StreamType::StopTunnel => Opener::Edge,
            StreamType::Heartbeat => Opener::Both,
        }
    }
}

impl From<StreamType> for u32 {
    fn from(value: StreamType) -> u32 {
        value.as_u32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_protocol_table() {
        let expected = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xFFFF_FFFF];
        for (ty, n) in StreamType::ALL.iter().zip(expected) {
            assert_eq!(ty.as_u32(), n);
            assert_eq!(StreamType::from_u32(n), Some(*ty));
        }
    }

    #[test]
    fn unknown_numbers_are_none() {
        for n in [11, 12, 255, 0x8000_0000, 0xFFFF_FFFE] {
            assert_eq!(StreamType::from_u32(n), None);
        }
    }

    #[test]
    fn openers() {
        assert_eq!(StreamType::Bind.opener(), Opener::Agent);
        assert_eq!(StreamType::Proxy.opener(), Opener::Edge);
        assert_eq!(StreamType::StopTunnel.opener(), Opener::Edge);
        assert_eq!(StreamType::Heartbeat.opener(), Opener::Both);
    }
}
