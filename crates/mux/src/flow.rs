//! Per-stream flow-control accounting (docs/agent-protocol.md §2.4), with no IO.
//!
//! Owns the two numbers each direction of a stream needs: how much we may still send
//! ([`SendWindow`]) and how much the peer may still send plus when to grant more
//! ([`RecvWindow`]). The session calls these under its lock; nothing here blocks, wakes
//! or allocates.

/// Upper bound for a send window grown by WNDINCs (extra increments are harmless and capped).
pub(crate) const MAX_SEND_WINDOW: u32 = 0x7FFF_FFFF;

/// Our view of the peer's receive window for one stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendWindow {
    available: u32,
}

impl SendWindow {
    pub(crate) fn new(window: u32) -> SendWindow {
        SendWindow { available: window }
    }

    /// Bytes we may send right now.
    pub(crate) fn available(&self) -> u32 {
        self.available
    }

    /// Takes up to `want` bytes of window; returns how many were taken.
    pub(crate) fn take(&mut self, want: usize) -> usize {
        let n = want.min(self.available as usize);
        self.available -= n as u32;
        n
    }

    /// Applies a WNDINC from the peer.
    pub(crate) fn grow(&mut self, increment: u32) {
        self.available = self
            .available
            .saturating_add(increment)
            .min(MAX_SEND_WINDOW);
    }
}

/// The peer sent more than its window allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FlowViolation;

/// Receive-side accounting for one stream.
///
/// Invariant: `credit + buffered + unacked == window` (until the peer violates it), so the
/// bytes buffered for the application never exceed `window`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecvWindow {
    window: u32,
    /// Bytes the peer may still send before our next grant.
    credit: u32,
    /// Bytes received and not yet read by the application.
    buffered: u32,
    /// Bytes read by the application but not yet granted back.
    unacked: u32,
}

impl RecvWindow {
    pub(crate) fn new(window: u32) -> RecvWindow {
        RecvWindow {
            window,
            credit: window,
            buffered: 0,
            unacked: 0,
        }
    }

    /// Accounts for `len` received payload bytes.
    pub(crate) fn receive(&mut self, len: usize) -> Result<(), FlowViolation> {
        if len > self.credit as usize {
            return Err(FlowViolation);
        }
        self.credit -= len as u32;
        self.buffered += len as u32;
        Ok(())
    }

    /// Accounts for `n` bytes read by the application; returns a WNDINC to send now, if any.
    ///
    /// Grants are batched until a quarter of the window is owed. That never stalls the peer:
    /// what it has in flight is at most `buffered + unacked`, and `unacked` stays below a quarter
    /// of the window, so once the application drains the buffer the peer has credit again. Not
    /// granting on every drain saves one frame (and, through TLS, a record and a syscall on each
    /// side) per small request/response exchange.
    pub(crate) fn consume(&mut self, n: usize) -> Option<u32> {
        debug_assert!(n <= self.buffered as usize);
        let n = n.min(self.buffered as usize) as u32;
        self.buffered -= n;
        self.unacked += n;
        let threshold = (self.window / 4).max(1);
        if self.unacked >= threshold {
            let inc = self.unacked;
            self.credit += inc;
            self.unacked = 0;
            Some(inc)
        } else {
            None
        }
    }

    /// Drops everything buffered (stream reset): the bytes are gone, nothing is granted.
    pub(crate) fn discard(&mut self) {
        self.buffered = 0;
    }

    /// Bytes buffered for the application.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered as usize
    }

    /// Bytes the peer may still send.
    #[cfg(test)]
    pub(crate) fn credit(&self) -> u32 {
        self.credit
    }
}

#[cfg(test)]
mod tests;
