//! A byte queue of payload chunks that coalesces small pieces.
//!
//! Owns the memory shape of a stream's send and receive buffers: large payloads are kept
//! as the `Bytes` they arrived in (no copy), small ones are appended to one growing tail
//! buffer. This bounds the bookkeeping per buffered byte: a peer sending one-byte DATA
//! frames (or an application doing one-byte writes) costs about one byte per byte, not
//! one allocation and one queue slot per byte. Empty queues hold no allocation.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

#[derive(Debug, Default)]
pub(crate) struct ChunkQueue {
    /// Whole chunks, oldest first; every byte here precedes `tail`.
    chunks: VecDeque<Bytes>,
    /// Coalesced small pieces, after all of `chunks`.
    tail: BytesMut,
    len: usize,
}

impl ChunkQueue {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks
                .push_back(std::mem::take(&mut self.tail).freeze());
        }
    }

    /// Appends a chunk as is.
    pub(crate) fn push_bytes(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.seal_tail();
        self.len += b.len();
        self.chunks.push_back(b);
    }

    /// Appends a copy of `data` to the tail; the tail is sealed first if it would grow past
    /// `max_chunk`, so no chunk popped later is longer than `max_chunk` (for data no longer
    /// than that).
    pub(crate) fn push_copy(&mut self, data: &[u8], max_chunk: usize) {
        if data.is_empty() {
            return;
        }
        if self.tail.len() + data.len() > max_chunk {
            self.seal_tail();
        }
        self.tail.extend_from_slice(data);
        self.len += data.len();
    }

    /// Removes the oldest chunk (the tail counts as one chunk).
    pub(crate) fn pop_chunk(&mut self) -> Option<Bytes> {
        let chunk = match self.chunks.pop_front() {
            Some(c) => c,
            None if !self.tail.is_empty() => std::mem::take(&mut self.tail).freeze(),
            None => return None,
        };
        self.len -= chunk.len();
        self.shrink();
        Some(chunk)
    }

    /// Copies from the front into `dst`; returns the byte count.
    pub(crate) fn copy_out(&mut self, dst: &mut [u8]) -> usize {
        let mut n = 0;
        while n < dst.len() {
            let src: &mut dyn Buf = match self.chunks.front_mut() {
                Some(front) => front,
                None if !self.tail.is_empty() => &mut self.tail,
                None => break,
            };
            let k = src.remaining().min(dst.len() - n);
            src.copy_to_slice(&mut dst[n..n + k]);
            n += k;
            if self.chunks.front().is_some_and(Bytes::is_empty) {
                self.chunks.pop_front();
            }
        }
        self.len -= n;
        self.shrink();
        n
    }

    /// Drops everything; returns how many bytes were dropped.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.len;
        *self = ChunkQueue::default();
        n
    }

    fn shrink(&mut self) {
        if self.chunks.is_empty() && self.chunks.capacity() > 4 {
            self.chunks = VecDeque::new();
        }
        if self.tail.is_empty() {
            // An emptied `BytesMut` may still own its allocation even when `capacity()`
            // reports 0 (it was advanced to the end), so always replace it.
            self.tail = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_pieces_coalesce_and_order_is_kept() {
        let mut q = ChunkQueue::default();
        q.push_copy(b"ab", 4);
        q.push_copy(b"cd", 4);
        q.push_copy(b"e", 4);
        q.push_bytes(Bytes::from_static(b"FGH"));
        q.push_copy(b"i", 4);
        assert_eq!(q.len(), 9);
        assert_eq!(q.pop_chunk().unwrap(), "abcd");
        assert_eq!(q.pop_chunk().unwrap(), "e");
        assert_eq!(q.pop_chunk().unwrap(), "FGH");
        assert_eq!(q.pop_chunk().unwrap(), "i");
        assert!(q.pop_chunk().is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn one_byte_pieces_cost_one_slot() {
        let mut q = ChunkQueue::default();
        for _ in 0..10_000 {
            q.push_copy(b"x", usize::MAX);
        }
        assert_eq!(q.chunks.len(), 0);
        assert_eq!(q.len(), 10_000);
    }

    proptest! {
        #[test]
        fn behaves_like_a_byte_fifo(ops in proptest::collection::vec(
            (0u8..3, proptest::collection::vec(any::<u8>(), 0..40), 1usize..50), 0..100)) {
            let mut q = ChunkQueue::default();
            let mut model = std::collections::VecDeque::new();
            for (op, data, n) in ops {
                match op {
                    0 => { q.push_copy(&data, 16); model.extend(data.iter().copied()); }
                    1 => { q.push_bytes(Bytes::from(data.clone())); model.extend(data.iter().copied()); }
                    _ => {
                        let mut buf = vec![0u8; n];
                        let k = q.copy_out(&mut buf);
                        let want: Vec<u8> = model.drain(..k.min(model.len())).collect();
                        prop_assert_eq!(&buf[..k], &want[..]);
                        prop_assert!(k == n || model.is_empty());
                    }
                }
                prop_assert_eq!(q.len(), model.len());
            }
            let mut rest = Vec::new();
            while let Some(c) = q.pop_chunk() { rest.extend_from_slice(&c); }
            prop_assert_eq!(rest, model.into_iter().collect::<Vec<_>>());
        }
    }
}
