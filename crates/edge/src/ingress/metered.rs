//! Counting wrappers for visitor traffic: bytes are added to the tunnel's meter (metrics series
//! and usage counters) as they move, so counters rise while a long connection is open.
//!
//! - [`Counted`] — an `AsyncRead + AsyncWrite` visitor stream (TCP, TLS passthrough, upgraded
//!   HTTP connections): reads are bytes in, writes are bytes out.
//! - [`RequestBody`] — a visitor's HTTP request body on its way to the agent.
//! - [`ResponseBody`] — an agent's HTTP response body on its way to the visitor; when it ends
//!   (or is dropped unfinished) it hands its length to an optional completion, which emits
//!   `http_request_complete.v0`.
//!
//! Per chunk: relaxed atomic adds and plain integer arithmetic, no locks, no allocations.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::tunnel::Tunnel;

pin_project_lite::pin_project! {
    /// A visitor stream whose traffic is counted for `tunnel`.
    pub(crate) struct Counted<T> {
        #[pin]
        inner: T,
        tunnel: Arc<Tunnel>,
        read: u64,
        written: u64,
    }
}

impl<T> Counted<T> {
    pub(crate) fn new(inner: T, tunnel: Arc<Tunnel>) -> Counted<T> {
        Counted {
            inner,
            tunnel,
            read: 0,
            written: 0,
        }
    }

    /// Bytes read from the visitor so far.
    pub(crate) fn bytes_in(&self) -> u64 {
        self.read
    }

    /// Bytes written to the visitor so far.
    pub(crate) fn bytes_out(&self) -> u64 {
        self.written
    }
}

impl<T: AsyncRead> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            *this.read += n;
            this.tunnel.meter.bytes_in(n);
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            *this.written += n as u64;
            this.tunnel.meter.bytes_out(n as u64);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

pin_project_lite::pin_project! {
    /// A visitor's request body, counted as bytes in for `tunnel`. When an event will be
    /// emitted, `length` collects its total for it.
    pub(crate) struct RequestBody<B> {
        #[pin]
        inner: B,
        tunnel: Arc<Tunnel>,
        length: Option<Arc<AtomicU64>>,
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, tunnel: Arc<Tunnel>, length: Option<Arc<AtomicU64>>) -> Self {
        RequestBody {
            inner,
            tunnel,
            length,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && !data.is_empty()
        {
            let n = data.len() as u64;
            this.tunnel.meter.bytes_in(n);
            if let Some(length) = this.length {
                length.fetch_add(n, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Called once with the response body's length when it ends or is dropped.
pub(crate) type Completion = Box<dyn FnOnce(u64) + Send + Sync>;

pin_project_lite::pin_project! {
    /// An agent's response body, counted as bytes out for `tunnel` (when `count` is set; the
    /// edge's own error pages are not endpoint traffic). Runs `done` once at its end.
    pub(crate) struct ResponseBody<B> {
        #[pin]
        inner: B,
        tunnel: Arc<Tunnel>,
        count: bool,
        length: u64,
        done: Option<Completion>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(done) = this.done.take() {
                done(*this.length);
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(
        inner: B,
        tunnel: Arc<Tunnel>,
        count: bool,
        done: Option<Completion>,
    ) -> ResponseBody<B> {
        ResponseBody {
            inner,
            tunnel,
            count,
            length: 0,
            done,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    *this.length += n;
                    if *this.count && n > 0 {
                        this.tunnel.meter.bytes_out(n);
                    }
                }
                if this.inner.is_end_stream()
                    && let Some(done) = this.done.take()
                {
                    done(*this.length);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(done) = this.done.take() {
                    done(*this.length);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn tunnel() -> Arc<Tunnel> {
        crate::tunnel::tests::tunnel_for_tests("http://a.example")
    }

    #[tokio::test]
    async fn streams_and_bodies_count_as_they_go_and_complete_once() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut counted = Counted::new(a, tunnel());
        counted.write_all(b"hello").await.unwrap();
        b.write_all(b"abc").await.unwrap();
        let mut buf = [0u8; 3];
        counted.read_exact(&mut buf).await.unwrap();
        assert_eq!((counted.bytes_in(), counted.bytes_out()), (3, 5));

        let length = Arc::new(AtomicU64::new(0));
        let body = RequestBody::new(
            Full::new(Bytes::from_static(b"12345678")),
            tunnel(),
            Some(length.clone()),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 8);
        assert_eq!(length.load(Ordering::Relaxed), 8);

        let seen = Arc::new(Mutex::new(Vec::new()));
        let done: Completion = {
            let seen = seen.clone();
            Box::new(move |n| seen.lock().unwrap().push(n))
        };
        let body = ResponseBody::new(
            Full::new(Bytes::from_static(b"0123456789")),
            tunnel(),
            true,
            Some(done),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 10);
        assert_eq!(*seen.lock().unwrap(), vec![10]);

        // Dropped unread: completes with what was sent.
        let done: Completion = {
            let seen = seen.clone();
            Box::new(move |n| seen.lock().unwrap().push(n))
        };
        drop(ResponseBody::new(
            Full::new(Bytes::from_static(b"x")),
            tunnel(),
            true,
            Some(done),
        ));
        assert_eq!(*seen.lock().unwrap(), vec![10, 0]);
    }
}
