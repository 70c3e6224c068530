//! Prompt ACKs toward agents.
//!
//! The official SDKs do not disable Nagle's algorithm on their connection to the edge, so an agent
//! that writes a response as two small TLS records holds the second until the first is
//! acknowledged — and a Linux receiver delays that ACK by up to 40 ms. Re-arming `TCP_QUICKACK`
//! after every read that drains the agent socket makes the edge acknowledge at once, which removes
//! that stall from every request/response exchange (one cheap syscall per such read; reads that
//! fill the buffer during bulk transfers skip it).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that asks the kernel to acknowledge received data immediately.
pub struct QuickAck(pub TcpStream);

impl QuickAck {
    fn rearm(&self) {
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let room = buf.remaining();
        let result = Pin::new(&mut self.0).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        // A read that filled the buffer means more data is queued: the kernel acknowledges a
        // bulk stream by itself. Only a read that drained the socket can leave a lone small
        // segment waiting for a delayed ACK.
        if matches!(result, Poll::Ready(Ok(()))) && n > 0 && n < room {
            self.rearm();
        }
        result
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
