//! The session state machine: every stream's buffers and windows, id allocation and
//! checking, the limits, and the scheduling of output, all behind one mutex.
//!
//! Owns the protocol decisions: what an incoming frame means (§2.2–§2.4), when a stream is
//! refused, reset or freed, and which frames the IO task writes next. It does no IO and
//! never blocks; callers ([`crate::Stream`], [`crate::Session`], the driver) lock, call one
//! method, unlock, then wake whatever the method asked to wake.
//!
//! Protocol-error policy (documented choice): an incoming SYN with our id parity, a SYN for
//! a live stream, or a SYN reusing an id already seen (or older than
//! [`crate::REMOTE_ID_REORDER_WINDOW`] below the highest remote id) ends the session with
//! GOAWAY(ProtocolError): such a peer can no longer be trusted to route frames to the right
//! stream. Out-of-order SYNs for never-seen ids inside that window are accepted, because
//! the Rust SDK may send concurrently opened streams' SYNs out of order. Non-empty DATA for
//! a stream we do not know gets RST(StreamClosed) once per id; frames racing a recent RST of
//! ours, WNDINC/RST for unknown streams, and empty DATA for unknown streams are dropped
//! quietly.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::ReadBuf;

use crate::chunks::ChunkQueue;
use crate::driver::WriteBuf;
use crate::error::CloseReason;
use crate::flow::{RecvWindow, SendWindow};
use crate::frame::{ErrorCode, Flags, Frame, STREAM_ID_MASK};
use crate::typed::TYPE_PREFIX_LEN;
use crate::{
    COPY_PAYLOAD_BELOW, Config, Error, MAX_GOAWAY_DEBUG, MAX_WRITE_FRAME, RECENT_RESETS,
    REMOTE_ID_REORDER_WINDOW, Role,
};

/// What the session shares between its handles and its IO task.
pub(crate) struct Shared {
    /// Normalized configuration (read without the lock).
    pub(crate) cfg: Config,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(cfg: Config) -> Shared {
        let cfg = cfg.normalized();
        Shared {
            state: Mutex::new(State::new(cfg.clone())),
            cfg,
        }
    }

    /// Locks the state. A panic while locked does not wedge the session for others.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the lock, then wakes the IO task if `f` queued output for it.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut g = self.lock();
        let r = f(&mut g);
        let waker = if std::mem::take(&mut g.kick) {
            g.driver_waker.take()
        } else {
            None
        };
        drop(g);
        if let Some(w) = waker {
            w.wake();
        }
        r
    }

    /// Ends the session (no GOAWAY) unless it already ended.
    pub(crate) fn close(&self, reason: CloseReason) {
        let mut wakes = Vec::new();
        self.with(|st| st.fail(reason, None, &mut wakes));
        wakes.into_iter().for_each(Waker::wake);
    }

    /// Sends GOAWAY, then ends the session.
    pub(crate) fn go_away(&self, code: ErrorCode, debug: &str) {
        let mut wakes = Vec::new();
        self.with(|st| st.fail(CloseReason::Local, Some((code, debug)), &mut wakes));
        wakes.into_iter().for_each(Waker::wake);
    }
}

/// Who holds a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handle {
    /// Remote-opened, waiting in the accept queue.
    Queued,
    /// A [`crate::Stream`] exists.
    Attached,
    /// The handle is gone; the state lives only until its last frames are written.
    Dropped,
}

#[derive(Clone, Copy, Debug)]
struct Reset {
    code: ErrorCode,
    by_peer: bool,
}

/// One stream's state. Empty queues hold no allocation, so an idle stream is ~200 bytes.
pub(crate) struct StreamState {
    local: bool,
    handle: Handle,
    // Receive side.
    recv: RecvWindow,
    recv_buf: ChunkQueue,
    recv_fin: bool,
    // Send side.
    send: SendWindow,
    /// Payload accepted from `poll_write`; each chunk becomes one DATA frame.
    out: ChunkQueue,
    syn_sent: bool,
    /// `poll_flush` before any write: send an empty SYN.
    syn_wanted: bool,
    fin_queued: bool,
    fin_sent: bool,
    /// Window increment owed to the peer, sent by the IO task.
    wndinc: u32,
    rst_pending: Option<ErrorCode>,
    reset: Option<Reset>,
    /// In `State::ready`.
    scheduled: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

impl StreamState {
    fn new(local: bool, handle: Handle, window: u32) -> StreamState {
        StreamState {
            local,
            handle,
            recv: RecvWindow::new(window),
            recv_buf: ChunkQueue::default(),
            recv_fin: false,
            send: SendWindow::new(window),
            out: ChunkQueue::default(),
            syn_sent: !local,
            syn_wanted: false,
            fin_queued: false,
            fin_sent: false,
            wndinc: 0,
            rst_pending: None,
            reset: None,
            scheduled: false,
            read_waker: None,
            write_waker: None,
        }
    }

    fn has_output(&self) -> bool {
        self.wndinc > 0
            || self.rst_pending.is_some()
            || !self.out.is_empty()
            || (self.fin_queued && !self.fin_sent)
            || (self.syn_wanted && !self.syn_sent)
    }

    /// Drops queued output; returns the payload bytes freed.
    fn abort_output(&mut self) -> usize {
        let freed = self.out.clear();
        self.syn_wanted = false;
        self.fin_sent = true;
        self.wndinc = 0;
        freed
    }

    fn discard_input(&mut self) {
        self.recv_buf.clear();
        self.recv.discard();
    }

    /// Copies buffered payload into `dst`; returns the byte count.
    fn copy_out(&mut self, dst: &mut [u8]) -> usize {
        self.recv_buf.copy_out(dst)
    }

    fn reset_error(&self) -> Option<io::Error> {
        self.reset.map(|r| {
            let who = if r.by_peer { "peer" } else { "local" };
            io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("stream reset ({who}): {}", r.code),
            )
        })
    }
}

/// Tracks which remote stream ids have been opened, tolerating out-of-order SYNs.
#[derive(Debug)]
pub(crate) struct RemoteIds {
    /// Highest remote id opened so far (0 = none).
    max: u32,
    /// Bit `k` set = id `max - 2k` was opened (bit 0 is `max` itself).
    seen: u128,
}

impl RemoteIds {
    fn new() -> RemoteIds {
        RemoteIds { max: 0, seen: 0 }
    }

    /// Claims `id` for a new stream; false if it was used before or is too old to tell.
    fn claim(&mut self, id: u32) -> bool {
        if id > self.max {
            let shift = (id - self.max) / 2;
            self.seen = if shift >= 128 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.max = id;
            return true;
        }
        let back = (self.max - id) / 2;
        if back >= REMOTE_ID_REORDER_WINDOW.min(128) {
            return false;
        }
        let bit = 1u128 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

/// A session-ending condition found while handling input.
#[derive(Debug)]
pub(crate) struct Fatal {
    pub(crate) reason: CloseReason,
    /// GOAWAY to send before closing.
    pub(crate) goaway: Option<(ErrorCode, String)>,
}

impl Fatal {
    fn protocol(msg: String) -> Fatal {
        Fatal {
            goaway: Some((ErrorCode::ProtocolError, msg.clone())),
            reason: CloseReason::Protocol(msg),
        }
    }
}

/// A set of wakers, deduplicated by `will_wake`.
#[derive(Default)]
pub(crate) struct WakerList(Vec<Waker>);

impl WakerList {
    fn register(&mut self, w: &Waker) {
        if !self.0.iter().any(|x| x.will_wake(w)) {
            self.0.push(w.clone());
        }
    }

    fn drain_into(&mut self, out: &mut Vec<Waker>) {
        out.append(&mut self.0);
        if self.0.capacity() > 8 {
            self.0 = Vec::new();
        }
    }
}

fn take_waker(slot: &mut Option<Waker>, out: &mut Vec<Waker>) {
    if let Some(w) = slot.take() {
        out.push(w);
    }
}

fn store_waker(slot: &mut Option<Waker>, w: &Waker) {
    match slot {
        Some(old) if old.will_wake(w) => {}
        _ => *slot = Some(w.clone()),
    }
}

/// Everything mutable about a session.
pub(crate) struct State {
    cfg: Config,
    /// Boxed: an idle session's map with one stream stays small.
    streams: HashMap<u32, Box<StreamState>>,
    next_local_id: u32,
    /// Live streams we opened / the peer opened (entries of `streams`).
    local_count: usize,
    remote_count: usize,
    remote_ids: RemoteIds,
    accept_queue: VecDeque<u32>,
    accept_waiters: WakerList,
    /// Streams with output for the IO task, round robin.
    ready: VecDeque<u32>,
    /// Frames not tied to a live stream (RSTs for unknown/refused streams, GOAWAY).
    pub(crate) ctrl: VecDeque<Frame>,
    /// Local ids opened but not yet announced, ascending; SYNs go out in this order.
    syn_order: VecDeque<u32>,
    /// Stream payload queued in `out` buffers, bounded by `write_queue_bytes`.
    queued_bytes: usize,
    capacity_waiters: WakerList,
    pub(crate) driver_waker: Option<Waker>,
    /// The IO task has new work.
    kick: bool,
    pub(crate) closed: Option<CloseReason>,
    /// The IO task must flush `ctrl` (holding a GOAWAY) before closing the transport.
    pub(crate) goaway_pending: bool,
    closed_waiters: WakerList,
    recent_resets: VecDeque<u32>,
}

impl State {
    fn new(cfg: Config) -> State {
        State {
            next_local_id: match cfg.role {
                Role::Client => 3,
                Role::Server => 2,
            },
            cfg,
            streams: HashMap::new(),
            local_count: 0,
            remote_count: 0,
            remote_ids: RemoteIds::new(),
            accept_queue: VecDeque::new(),
            accept_waiters: WakerList::default(),
            ready: VecDeque::new(),
            ctrl: VecDeque::new(),
            syn_order: VecDeque::new(),
            queued_bytes: 0,
            capacity_waiters: WakerList::default(),
            driver_waker: None,
            kick: false,
            closed: None,
            goaway_pending: false,
            closed_waiters: WakerList::default(),
            recent_resets: VecDeque::new(),
        }
    }

    fn is_local_id(&self, id: u32) -> bool {
        match self.cfg.role {
            Role::Client => !id.is_multiple_of(2),
            Role::Server => id.is_multiple_of(2),
        }
    }

    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }

    fn schedule(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id)
            && !s.scheduled
        {
            s.scheduled = true;
            self.ready.push_back(id);
        }
        self.kick = true;
    }

    fn remove(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            if s.local {
                self.local_count -= 1;
                if !s.syn_sent {
                    self.syn_order.retain(|&x| x != id);
                }
            } else {
                self.remote_count -= 1;
            }
            self.queued_bytes -= s.out.len();
        }
        if self.streams.is_empty() && self.streams.capacity() > 64 {
            self.streams = HashMap::new();
        }
    }

    fn remember_reset(&mut self, id: u32) {
        if self.recent_resets.len() >= RECENT_RESETS {
            self.recent_resets.pop_front();
        }
        self.recent_resets.push_back(id);
    }

    /// Answers a stream we will not keep with an RST from the control queue.
    fn refuse(&mut self, id: u32, code: ErrorCode) {
        self.ctrl.push_back(Frame::Rst {
            stream_id: id,
            code,
        });
        self.remember_reset(id);
        self.kick = true;
    }

    /// Resets a live stream: drops its buffers, wakes its handle, and (if ours) sends RST.
    fn reset_stream(&mut self, id: u32, code: ErrorCode, by_peer: bool, wakes: &mut Vec<Waker>) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.reset.is_some() {
            return;
        }
        s.reset = Some(Reset { code, by_peer });
        let freed = s.abort_output();
        s.discard_input();
        take_waker(&mut s.read_waker, wakes);
        take_waker(&mut s.write_waker, wakes);
        let announced = s.syn_sent;
        let dropped = s.handle == Handle::Dropped;
        if !by_peer && announced {
            s.rst_pending = Some(code);
        }
        let has_output = s.has_output();
        self.queued_bytes -= freed;
        if !by_peer {
            self.remember_reset(id);
        }
        if has_output {
            self.schedule(id);
        } else if dropped {
            self.remove(id);
        }
    }

    /// Ends the session: records the reason, fails every waiter, drops queued output, and
    /// optionally queues a GOAWAY for the IO task to flush first.
    pub(crate) fn fail(
        &mut self,
        reason: CloseReason,
        goaway: Option<(ErrorCode, &str)>,
        wakes: &mut Vec<Waker>,
    ) {
        if self.closed.is_some() {
            return;
        }
        tracing::debug!(?reason, "muxado session closing");
        self.closed = Some(reason);
        self.ctrl.clear();
        if let Some((code, debug)) = goaway {
            let debug = truncate_utf8(debug, MAX_GOAWAY_DEBUG);
            self.ctrl.push_back(Frame::GoAway {
                last_stream_id: self.remote_ids.max,
                code,
                debug: Bytes::copy_from_slice(debug.as_bytes()),
            });
            self.goaway_pending = true;
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            let s = self.streams.get_mut(&id).expect("listed");
            s.abort_output();
            s.wndinc = 0;
            s.rst_pending = None;
            take_waker(&mut s.read_waker, wakes);
            take_waker(&mut s.write_waker, wakes);
            if s.handle != Handle::Attached {
                self.remove(id);
            }
        }
        self.queued_bytes = 0;
        self.ready = VecDeque::new();
        self.syn_order = VecDeque::new();
        self.accept_queue = VecDeque::new();
        self.recent_resets = VecDeque::new();
        self.accept_waiters.drain_into(wakes);
        self.capacity_waiters.drain_into(wakes);
        self.closed_waiters.drain_into(wakes);
        self.kick = true;
    }

    // ----- Session operations -------------------------------------------------------

    /// Allocates a local stream id and its state.
    pub(crate) fn open_local(&mut self) -> Result<u32, Error> {
        if let Some(r) = &self.closed {
            return Err(r.to_error());
        }
        if self.local_count >= self.cfg.max_local_streams || self.next_local_id > STREAM_ID_MASK {
            return Err(Error::StreamsExhausted);
        }
        let id = self.next_local_id;
        self.next_local_id += 2;
        self.streams.insert(
            id,
            Box::new(StreamState::new(true, Handle::Attached, self.cfg.window)),
        );
        self.local_count += 1;
        self.syn_order.push_back(id);
        Ok(id)
    }

    /// Opens a local stream whose first (SYN) frame is `first`, queued as one DATA frame.
    pub(crate) fn open_with(&mut self, first: Bytes) -> Result<u32, Error> {
        if first.len() > (self.cfg.window as usize).min(crate::MAX_FRAME_LEN) {
            return Err(Error::FirstFrameTooLarge {
                len: first.len(),
                window: self.cfg.window,
            });
        }
        let id = self.open_local()?;
        let s = self.streams.get_mut(&id).expect("just opened");
        let n = s.send.take(first.len());
        debug_assert_eq!(n, first.len());
        self.queued_bytes += n;
        s.out.push_bytes(first);
        self.schedule(id);
        Ok(id)
    }

    /// Waits until the write queue has room (or the session is over).
    pub(crate) fn poll_capacity(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(r) = &self.closed {
            return Poll::Ready(Err(r.to_error()));
        }
        if self.queued_bytes >= self.cfg.write_queue_bytes {
            self.capacity_waiters.register(cx.waker());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// Next remote-opened stream; with `typed`, the next one whose 4-byte type has arrived
    /// (a stream still waiting for its type never blocks the others).
    pub(crate) fn poll_accept(
        &mut self,
        cx: &mut Context<'_>,
        typed: bool,
    ) -> Poll<Result<(u32, Option<u32>), Error>> {
        let mut i = 0;
        while i < self.accept_queue.len() {
            let id = self.accept_queue[i];
            let Some(s) = self.streams.get_mut(&id) else {
                self.accept_queue.remove(i);
                continue;
            };
            if s.reset.is_some() {
                self.accept_queue.remove(i);
                s.handle = Handle::Dropped;
                if !s.has_output() {
                    self.remove(id);
                }
                continue;
            }
            if !typed {
                self.accept_queue.remove(i);
                s.handle = Handle::Attached;
                return Poll::Ready(Ok((id, None)));
            }
            if s.recv.buffered() >= TYPE_PREFIX_LEN {
                self.accept_queue.remove(i);
                s.handle = Handle::Attached;
                let mut prefix = [0u8; TYPE_PREFIX_LEN];
                let n = s.copy_out(&mut prefix);
                debug_assert_eq!(n, TYPE_PREFIX_LEN);
                self.after_read(id, n);
                return Poll::Ready(Ok((id, Some(crate::typed::decode_type(prefix)))));
            }
            if s.recv_fin {
                // Closed before sending its type: nobody can use it.
                self.accept_queue.remove(i);
                s.handle = Handle::Attached;
                self.release(id);
                continue;
            }
            i += 1;
        }
        if let Some(r) = &self.closed {
            return Poll::Ready(Err(r.to_error()));
        }
        self.accept_waiters.register(cx.waker());
        Poll::Pending
    }

    pub(crate) fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        match &self.closed {
            Some(r) => Poll::Ready(r.to_error()),
            None => {
                self.closed_waiters.register(cx.waker());
                Poll::Pending
            }
        }
    }

    // ----- Stream operations --------------------------------------------------------

    pub(crate) fn poll_read(
        &mut self,
        id: u32,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let closed = self.closed.clone();
        let Some(s) = self.streams.get_mut(&id) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if let Some(e) = s.reset_error() {
            return Poll::Ready(Err(e));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if s.recv.buffered() > 0 {
            let n = s.copy_out(buf.initialize_unfilled());
            buf.advance(n);
            self.after_read(id, n);
            return Poll::Ready(Ok(()));
        }
        if s.recv_fin {
            return Poll::Ready(Ok(()));
        }
        if let Some(r) = closed {
            return Poll::Ready(Err(r.to_io()));
        }
        store_waker(&mut s.read_waker, cx.waker());
        Poll::Pending
    }

    /// Window accounting after the application consumed `n` bytes of stream `id`.
    fn after_read(&mut self, id: u32, n: usize) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if let Some(inc) = s.recv.consume(n)
            && !s.recv_fin
            && self.closed.is_none()
        {
            s.wndinc = s.wndinc.saturating_add(inc);
            self.schedule(id);
        }
    }

    pub(crate) fn poll_write(
        &mut self,
        id: u32,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(s) = self.streams.get_mut(&id) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if let Some(e) = s.reset_error() {
            return Poll::Ready(Err(e));
        }
        if let Some(r) = &self.closed {
            return Poll::Ready(Err(r.to_io()));
        }
        if s.fin_queued {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            )));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if s.send.available() == 0 {
            store_waker(&mut s.write_waker, cx.waker());
            return Poll::Pending;
        }
        if self.queued_bytes >= self.cfg.write_queue_bytes {
            self.capacity_waiters.register(cx.waker());
            return Poll::Pending;
        }
        let n = s.send.take(data.len().min(MAX_WRITE_FRAME));
        s.out.push_copy(&data[..n], MAX_WRITE_FRAME);
        self.queued_bytes += n;
        self.schedule(id);
        Poll::Ready(Ok(n))
    }

    pub(crate) fn flush(&mut self, id: u32) -> io::Result<()> {
        let Some(s) = self.streams.get_mut(&id) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if let Some(e) = s.reset_error() {
            return Err(e);
        }
        if let Some(r) = &self.closed {
            return Err(r.to_io());
        }
        if !s.syn_sent && !s.syn_wanted {
            s.syn_wanted = true;
            self.schedule(id);
        }
        Ok(())
    }

    pub(crate) fn shutdown(&mut self, id: u32) -> io::Result<()> {
        let Some(s) = self.streams.get_mut(&id) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if let Some(e) = s.reset_error() {
            return Err(e);
        }
        if s.fin_queued {
            return Ok(());
        }
        if let Some(r) = &self.closed {
            return Err(r.to_io());
        }
        s.fin_queued = true;
        self.schedule(id);
        Ok(())
    }

    /// `Stream::reset`: abort with `code`.
    pub(crate) fn reset_local(&mut self, id: u32, code: ErrorCode) {
        let mut wakes = Vec::new();
        self.reset_stream(id, code, false, &mut wakes);
        drop(wakes); // our own handle is the only waiter, and it is going away
        self.release(id);
    }

    /// The stream's handle was dropped: free it. Unless it finished cleanly (we sent FIN and
    /// left no unread data from a peer still sending), queued output is discarded and
    /// RST(StreamCancelled) is sent (if the peer ever heard of the stream).
    pub(crate) fn release(&mut self, id: u32) {
        let closed = self.closed.is_some();
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.handle = Handle::Dropped;
        s.read_waker = None;
        s.write_waker = None;
        let unread = s.recv.buffered() > 0;
        s.discard_input();
        s.wndinc = 0;
        if closed {
            self.remove(id);
            return;
        }
        if s.reset.is_none() {
            let clean = s.fin_queued && (s.recv_fin || !unread);
            if !clean {
                // Aborted: what is still queued would be discarded by the RST anyway.
                let freed = s.abort_output();
                self.queued_bytes -= freed;
                if !s.syn_sent {
                    // Never announced to the peer: nothing to tell it.
                    self.remove(id);
                    return;
                }
                s.reset = Some(Reset {
                    code: ErrorCode::StreamCancelled,
                    by_peer: false,
                });
                s.rst_pending = Some(ErrorCode::StreamCancelled);
                self.remember_reset(id);
            }
        }
        let s = self.streams.get_mut(&id).expect("present");
        if s.has_output() {
            self.schedule(id);
        } else {
            self.remove(id);
        }
    }

    // ----- Input from the peer ------------------------------------------------------

    /// Applies one frame from the peer. `Err` ends the session.
    pub(crate) fn on_frame(&mut self, frame: Frame, wakes: &mut Vec<Waker>) -> Result<(), Fatal> {
        match frame {
            Frame::Data {
                stream_id,
                flags,
                payload,
            } => self.on_data(stream_id, flags, payload, wakes),
            Frame::WndInc {
                stream_id,
                increment,
            } => {
                if let Some(s) = self.streams.get_mut(&stream_id) {
                    s.send.grow(increment);
                    take_waker(&mut s.write_waker, wakes);
                }
                Ok(())
            }
            Frame::Rst { stream_id, code } => {
                if self.streams.contains_key(&stream_id) {
                    self.reset_stream(stream_id, code, true, wakes);
                    // A queued stream reset before accept also wakes accepters (it vanishes).
                }
                Ok(())
            }
            Frame::GoAway { code, debug, .. } => {
                let debug = String::from_utf8_lossy(&debug[..debug.len().min(MAX_GOAWAY_DEBUG)])
                    .into_owned();
                Err(Fatal {
                    reason: CloseReason::RemoteGoAway { code, debug },
                    goaway: None,
                })
            }
        }
    }

    fn on_data(
        &mut self,
        id: u32,
        flags: Flags,
        payload: Bytes,
        wakes: &mut Vec<Waker>,
    ) -> Result<(), Fatal> {
        if flags.is_syn() {
            if self.is_local_id(id) {
                return Err(Fatal::protocol(format!(
                    "peer opened stream {id} with our id parity"
                )));
            }
            if self.streams.contains_key(&id) {
                return Err(Fatal::protocol(format!("SYN for live stream {id}")));
            }
            if !self.remote_ids.claim(id) {
                return Err(Fatal::protocol(format!("SYN reuses stream id {id}")));
            }
            if self.remote_count >= self.cfg.max_streams {
                tracing::debug!(id, "refusing remote stream: max_streams");
                self.refuse(id, ErrorCode::StreamRefused);
                return Ok(());
            }
            if self.accept_queue.len() >= self.cfg.accept_backlog {
                tracing::debug!(id, "refusing remote stream: accept backlog full");
                self.refuse(id, ErrorCode::AcceptQueueFull);
                return Ok(());
            }
            self.streams.insert(
                id,
                Box::new(StreamState::new(false, Handle::Queued, self.cfg.window)),
            );
            self.remote_count += 1;
            self.accept_queue.push_back(id);
            self.accept_waiters.drain_into(wakes);
        }
        let Some(s) = self.streams.get_mut(&id) else {
            if !payload.is_empty() && !self.recent_resets.contains(&id) {
                self.refuse(id, ErrorCode::StreamClosed);
            }
            return Ok(());
        };
        if s.reset.is_some() || s.handle == Handle::Dropped {
            return Ok(());
        }
        if s.recv_fin {
            if !payload.is_empty() {
                self.reset_stream(id, ErrorCode::StreamClosed, false, wakes);
            }
            return Ok(());
        }
        let news = !payload.is_empty() || flags.is_fin();
        if !payload.is_empty() {
            if s.recv.receive(payload.len()).is_err() {
                tracing::debug!(id, "peer overran the stream window");
                self.reset_stream(id, ErrorCode::FlowControlError, false, wakes);
                return Ok(());
            }
            if payload.len() < COPY_PAYLOAD_BELOW {
                // Small payloads are coalesced: bookkeeping stays proportional to bytes,
                // and nothing pins the (large) read buffer.
                s.recv_buf.push_copy(&payload, usize::MAX);
            } else {
                s.recv_buf.push_bytes(payload);
            }
        }
        if flags.is_fin() {
            s.recv_fin = true;
        }
        if news {
            take_waker(&mut s.read_waker, wakes);
            if s.handle == Handle::Queued {
                self.accept_waiters.drain_into(wakes);
            }
        }
        Ok(())
    }

    /// Whether the IO task should stop reading until control frames drain.
    pub(crate) fn read_paused(&self) -> bool {
        self.ctrl.len() >= crate::MAX_PENDING_CONTROL
    }

    // ----- Output for the IO task ---------------------------------------------------

    /// Moves frames into `w` until about `budget` bytes are gathered: control frames first,
    /// then one frame per ready stream in turn.
    pub(crate) fn take_output(&mut self, w: &mut WriteBuf, budget: usize, wakes: &mut Vec<Waker>) {
        while let Some(f) = self.ctrl.pop_front() {
            w.frame(&f);
        }
        if self.closed.is_some() {
            return;
        }
        while w.len() < budget {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(s) = self.streams.get_mut(&id) else {
                continue;
            };
            s.scheduled = false;
            if s.wndinc > 0 {
                w.frame(&Frame::WndInc {
                    stream_id: id,
                    increment: s.wndinc,
                });
                s.wndinc = 0;
            }
            let announces =
                !s.syn_sent && (!s.out.is_empty() || (s.fin_queued && !s.fin_sent) || s.syn_wanted);
            if announces {
                self.announce_before(id, w);
            }
            let s = self.streams.get_mut(&id).expect("present");
            let mut flags = Flags::NONE;
            if announces {
                flags |= Flags::SYN;
                s.syn_sent = true;
            }
            if let Some(chunk) = s.out.pop_chunk() {
                self.queued_bytes -= chunk.len();
                if s.out.is_empty() && s.fin_queued && !s.fin_sent {
                    flags |= Flags::FIN;
                    s.fin_sent = true;
                }
                w.data(id, flags, chunk);
            } else if s.fin_queued && !s.fin_sent {
                s.fin_sent = true;
                w.data(id, flags | Flags::FIN, Bytes::new());
            } else if announces {
                w.data(id, flags, Bytes::new());
            } else if let Some(code) = s.rst_pending.take() {
                w.frame(&Frame::Rst {
                    stream_id: id,
                    code,
                });
            }
            if s.has_output() {
                s.scheduled = true;
                self.ready.push_back(id);
            } else if s.handle == Handle::Dropped {
                self.remove(id);
            }
        }
        if self.ready.is_empty() && self.ready.capacity() > 64 {
            self.ready = VecDeque::new();
        }
        if self.ctrl.is_empty() && self.ctrl.capacity() > 16 {
            self.ctrl = VecDeque::new();
        }
        if self.queued_bytes < self.cfg.write_queue_bytes {
            self.capacity_waiters.drain_into(wakes);
        }
    }

    /// Before announcing local stream `id`, announces (empty SYN) every lower local id still
    /// unannounced, so our SYNs reach the peer in increasing id order.
    fn announce_before(&mut self, id: u32, w: &mut WriteBuf) {
        while let Some(&first) = self.syn_order.front() {
            if first > id {
                break;
            }
            self.syn_order.pop_front();
            if first == id {
                continue;
            }
            if let Some(s) = self.streams.get_mut(&first)
                && !s.syn_sent
                && s.reset.is_none()
            {
                s.syn_sent = true;
                s.syn_wanted = false;
                w.data(first, Flags::SYN, Bytes::new());
            }
        }
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
