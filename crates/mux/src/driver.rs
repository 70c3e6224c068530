//! The one IO task per session: owns the transport, reads and dispatches frames, and
//! writes the output the state machine schedules.
//!
//! Owns the transport's buffers and their sizing: the read buffer grows for bulk traffic
//! and shrinks back to [`MIN_READ_BUF`] when reads get small; both IO buffers are kept
//! (and reused in place) while traffic flows and freed after [`IDLE_RELEASE_AFTER`]
//! without IO, so an idle session holds no IO buffers. Large
//! DATA payloads travel without copies where the transport supports vectored writes and
//! out of the read buffer by reference. It makes no protocol decisions: every frame goes
//! to [`State::on_frame`], every outgoing frame comes from [`State::take_output`].

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use crate::error::CloseReason;
use crate::frame::{Flags, Frame, FrameHeader, FrameType, HEADER_LEN};
use crate::state::Shared;
use crate::{
    GOAWAY_FLUSH_TIMEOUT, IDLE_RELEASE_AFTER, MAX_READ_BUF, MIN_READ_BUF, WRITE_BATCH_BYTES,
};

/// Payloads at least this long go to the socket as their own slice (vectored transports).
const ZERO_COPY_MIN: usize = 4 * 1024;

/// Most slices handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// Loop turns before the task yields to the runtime even if it could go on.
const MAX_TURNS: usize = 64;

/// Frames encoded for the socket: headers and small payloads copied into one scratch
/// buffer, large payloads kept as their own `Bytes` when the transport writes vectored.
pub(crate) struct WriteBuf {
    segs: VecDeque<Bytes>,
    scratch: BytesMut,
    len: usize,
    vectored: bool,
}

impl WriteBuf {
    fn new(vectored: bool) -> WriteBuf {
        WriteBuf {
            segs: VecDeque::new(),
            scratch: BytesMut::new(),
            len: 0,
            vectored,
        }
    }

    #[cfg(test)]
    pub(crate) fn new_for_test() -> WriteBuf {
        WriteBuf::new(false)
    }

    #[cfg(test)]
    pub(crate) fn take_bytes(&mut self) -> Vec<u8> {
        self.seal();
        self.segs.iter().flat_map(|s| s.iter().copied()).collect()
    }

    /// Bytes gathered and not yet written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a control frame (RST, WNDINC, GOAWAY).
    pub(crate) fn frame(&mut self, f: &Frame) {
        let before = self.scratch.len();
        f.encode(&mut self.scratch);
        self.len += self.scratch.len() - before;
    }

    /// Appends a DATA frame.
    pub(crate) fn data(&mut self, stream_id: u32, flags: Flags, payload: Bytes) {
        self.scratch.reserve(HEADER_LEN);
        FrameHeader {
            length: payload.len() as u32,
            ty: FrameType::Data as u8,
            flags,
            stream_id,
        }
        .encode(&mut self.scratch);
        self.len += HEADER_LEN + payload.len();
        if self.vectored && payload.len() >= ZERO_COPY_MIN {
            self.seal();
            self.segs.push_back(payload);
        } else {
            self.scratch.extend_from_slice(&payload);
        }
    }

    /// Moves the scratch bytes into the segment queue.
    fn seal(&mut self) {
        if !self.scratch.is_empty() {
            self.segs.push_back(self.scratch.split().freeze());
        }
    }

    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let front = self.segs.front_mut().expect("wrote more than buffered");
            if n >= front.len() {
                n -= front.len();
                self.segs.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Releases the buffers (only when everything is written).
    fn release(&mut self) {
        debug_assert!(self.is_empty());
        // `capacity()` of a split-off `BytesMut` understates what it keeps alive, so the
        // scratch buffer is replaced whatever it reports.
        self.scratch = BytesMut::new();
        self.segs = VecDeque::new();
    }

    fn holds_memory(&self) -> bool {
        self.scratch.capacity() > 0 || self.segs.capacity() > 0
    }
}

enum Phase {
    Running,
    /// Writing the GOAWAY (and anything before it), then shutting the transport down.
    Flushing {
        deadline: Pin<Box<Sleep>>,
    },
}

/// The session's IO future; completes when the session is over, dropping the transport.
pub(crate) struct Driver<T> {
    io: Pin<Box<T>>,
    shared: Arc<Shared>,
    rbuf: BytesMut,
    /// Size of the next read, adapted to the traffic.
    read_target: usize,
    wbuf: WriteBuf,
    /// Bytes went out since the last flush of the transport.
    needs_flush: bool,
    phase: Phase,
    /// Wakers collected under the lock, woken after it is released (kept for its capacity).
    wakes: Vec<Waker>,
    /// Armed while IO buffers are held: when it fires after a period without IO, the
    /// buffers are released. One timer operation per period, not per read.
    release_timer: Option<Pin<Box<Sleep>>>,
    /// IO happened since the release timer was (re)armed.
    active: bool,
}

impl<T: AsyncRead + AsyncWrite + Send + 'static> Driver<T> {
    pub(crate) fn new(io: T, shared: Arc<Shared>) -> Driver<T> {
        let vectored = io.is_write_vectored();
        Driver {
            io: Box::pin(io),
            shared,
            rbuf: BytesMut::new(),
            read_target: MIN_READ_BUF,
            wbuf: WriteBuf::new(vectored),
            needs_flush: false,
            phase: Phase::Running,
            wakes: Vec::new(),
            release_timer: None,
            active: false,
        }
    }

    fn wake_all(&mut self) {
        for w in self.wakes.drain(..) {
            w.wake();
        }
        if self.wakes.capacity() > 64 {
            self.wakes = Vec::new();
        }
    }

    fn fail(&mut self, reason: CloseReason) {
        self.shared.close(reason);
    }

    /// Writes gathered output. Ready(Ok(true)) = made progress.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut progressed = false;
        while !self.wbuf.is_empty() {
            let res = if self.wbuf.vectored && self.wbuf.segs.len() > 1 {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut k = 0;
                for (slot, seg) in slices.iter_mut().zip(self.wbuf.segs.iter()) {
                    *slot = IoSlice::new(seg);
                    k += 1;
                }
                self.io.as_mut().poll_write_vectored(cx, &slices[..k])
            } else {
                let seg = self.wbuf.segs.front().expect("non-empty");
                self.io.as_mut().poll_write(cx, seg)
            };
            match res {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.wbuf.advance(n);
                    self.needs_flush = true;
                    progressed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    return if progressed {
                        Poll::Ready(Ok(true))
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
        Poll::Ready(Ok(progressed))
    }

    /// Makes room for the next read, shrinking the buffer when traffic is light.
    fn prepare_read(&mut self) {
        let need = match FrameHeader::peek(&self.rbuf) {
            // The header was validated by the decoder, so the length is bounded.
            Some(h) => (HEADER_LEN + h.length as usize).saturating_sub(self.rbuf.len()),
            None => 0,
        };
        let want = need.max(self.read_target);
        let spare = self.rbuf.capacity() - self.rbuf.len();
        if self.rbuf.is_empty() && self.rbuf.capacity() > 2 * want {
            // Light traffic after a burst: give the big allocation back.
            self.rbuf = BytesMut::with_capacity(want);
        } else if spare < need || spare < (self.read_target / 2).max(1) {
            // Reclaims the allocation in place when no payload still references it.
            self.rbuf.reserve(want);
        }
    }

    fn adapt_read_target(&mut self, n: usize, room: usize) {
        if n >= room {
            self.read_target = (self.read_target * 2).min(MAX_READ_BUF);
        } else if n < self.read_target / 4 {
            self.read_target = (self.read_target / 4).max(MIN_READ_BUF);
        }
    }

    /// Frees the IO buffers after [`IDLE_RELEASE_AFTER`] without IO; keeps them (and
    /// their allocations) while traffic flows.
    fn poll_release(&mut self, cx: &mut Context<'_>) {
        let holds = self.rbuf.capacity() > 0 || self.wbuf.holds_memory();
        if !holds {
            self.release_timer = None;
            return;
        }
        loop {
            let Some(timer) = &mut self.release_timer else {
                self.release_timer = Some(Box::pin(tokio::time::sleep(IDLE_RELEASE_AFTER)));
                self.active = false;
                continue;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return;
            }
            if std::mem::take(&mut self.active) {
                let next = tokio::time::Instant::now() + IDLE_RELEASE_AFTER;
                timer.as_mut().reset(next);
                continue;
            }
            // Quiet for a whole period: give the memory back.
            if self.rbuf.is_empty() {
                self.rbuf = BytesMut::new();
            }
            if self.wbuf.is_empty() && !self.needs_flush {
                self.wbuf.release();
            }
            self.read_target = MIN_READ_BUF;
            self.release_timer = None;
            return;
        }
    }

    /// Decodes and applies every complete frame in the read buffer.
    fn dispatch(&mut self) {
        let max_body = self.shared.cfg.max_frame_body;
        let mut fatal = None;
        {
            let mut st = self.shared.lock();
            loop {
                match Frame::decode(&mut self.rbuf, max_body) {
                    Ok(Some(frame)) => {
                        if let Err(f) = st.on_frame(frame, &mut self.wakes) {
                            fatal = Some(f);
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "invalid frame from peer");
                        fatal = Some(crate::state::Fatal {
                            reason: CloseReason::Protocol(e.to_string()),
                            goaway: Some((e.error_code(), e.to_string())),
                        });
                        break;
                    }
                }
            }
            if let Some(f) = fatal {
                let goaway = f.goaway.as_ref().map(|(c, d)| (*c, d.as_str()));
                st.fail(f.reason, goaway, &mut self.wakes);
                self.rbuf = BytesMut::new();
            }
        }
        self.wake_all();
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_TURNS {
            let mut progressed = false;

            // Gather output and learn the session's phase.
            let (closed, goaway, paused) = {
                let mut st = self.shared.lock();
                match &st.driver_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.driver_waker = Some(cx.waker().clone()),
                }
                if self.wbuf.len() < WRITE_BATCH_BYTES {
                    st.take_output(&mut self.wbuf, WRITE_BATCH_BYTES, &mut self.wakes);
                    self.wbuf.seal();
                }
                (st.closed.is_some(), st.goaway_pending, st.read_paused())
            };
            self.wake_all();

            if closed {
                if !goaway {
                    return Poll::Ready(());
                }
                if let Phase::Running = self.phase {
                    self.phase = Phase::Flushing {
                        deadline: Box::pin(tokio::time::sleep(GOAWAY_FLUSH_TIMEOUT)),
                    };
                }
                if let Phase::Flushing { deadline } = &mut self.phase
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    tracing::debug!("GOAWAY flush timed out");
                    return Poll::Ready(());
                }
            }

            // Write.
            match self.poll_write_out(cx) {
                Poll::Ready(Ok(p)) => {
                    progressed |= p;
                    self.active |= p;
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "muxado transport write failed");
                    self.fail(CloseReason::from_io(&e));
                    return Poll::Ready(());
                }
                Poll::Pending => {}
            }
            if self.wbuf.is_empty() {
                if self.needs_flush {
                    match self.io.as_mut().poll_flush(cx) {
                        Poll::Ready(Ok(())) => self.needs_flush = false,
                        Poll::Ready(Err(e)) => {
                            self.fail(CloseReason::from_io(&e));
                            return Poll::Ready(());
                        }
                        Poll::Pending => {}
                    }
                }

                if closed {
                    // GOAWAY written: close our side and finish.
                    return match self.io.as_mut().poll_shutdown(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(_) => Poll::Ready(()),
                    };
                }
            }
            if closed {
                if progressed {
                    continue;
                }
                return Poll::Pending;
            }

            // Read.
            if !paused {
                self.prepare_read();
                let room = self.rbuf.capacity() - self.rbuf.len();
                match tokio_util::io::poll_read_buf(self.io.as_mut(), cx, &mut self.rbuf) {
                    Poll::Ready(Ok(0)) => {
                        tracing::debug!("muxado peer EOF");
                        self.fail(CloseReason::PeerEof);
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(n)) => {
                        self.adapt_read_target(n, room);
                        self.dispatch();
                        progressed = true;
                        self.active = true;
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "muxado transport read failed");
                        self.fail(CloseReason::from_io(&e));
                        return Poll::Ready(());
                    }
                    Poll::Pending => {}
                }
            }

            if !progressed {
                self.poll_release(cx);
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T: AsyncRead + AsyncWrite + Send + 'static> Future for Driver<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let res = this.poll_inner(cx);
        if res.is_ready() {
            // Make sure every handle sees the end even if the transport just failed.
            this.shared.close(CloseReason::Local);
            this.shared.lock().driver_waker = None;
        }
        res
    }
}
