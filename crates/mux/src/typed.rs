//! The typed-stream prefix (docs/agent-protocol.md §3): every stream begins with a 4-byte
//! big-endian `u32` type.
//!
//! Owns only the prefix's encoding and reading. The type numbers themselves (Auth, Bind,
//! Proxy, …) belong to `warren-proto`; the heartbeat's lives in [`crate::heartbeat`].
//! [`crate::Session::open_typed`] and [`crate::Session::accept_typed`] are the usual entry
//! points; these helpers serve code holding a raw stream.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Length of the type prefix.
pub const TYPE_PREFIX_LEN: usize = 4;

/// Encodes a stream type as its wire prefix.
pub const fn encode_type(ty: u32) -> [u8; TYPE_PREFIX_LEN] {
    ty.to_be_bytes()
}

/// Decodes a wire prefix.
pub const fn decode_type(prefix: [u8; TYPE_PREFIX_LEN]) -> u32 {
    u32::from_be_bytes(prefix)
}

/// Reads the type prefix from `stream`, however it is split across frames.
/// Fails with `UnexpectedEof` if the stream ends first.
pub async fn read_type<R: AsyncRead + Unpin + ?Sized>(stream: &mut R) -> io::Result<u32> {
    let mut prefix = [0u8; TYPE_PREFIX_LEN];
    stream.read_exact(&mut prefix).await?;
    Ok(decode_type(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_big_endian() {
        assert_eq!(encode_type(3), [0, 0, 0, 3]);
        assert_eq!(encode_type(0xFFFF_FFFF), [0xFF; 4]);
        assert_eq!(decode_type([0x01, 0x02, 0x03, 0x04]), 0x0102_0304);
    }

    #[tokio::test]
    async fn read_type_across_chunks() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let t = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            b.write_all(&[0, 0]).await.unwrap();
            b.flush().await.unwrap();
            b.write_all(&[1, 7]).await.unwrap();
        });
        assert_eq!(read_type(&mut a).await.unwrap(), 0x0107);
        t.await.unwrap();
    }
}
