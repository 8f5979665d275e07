//! Length-prefixed frames: a 4-byte big-endian body length, then the body
//! (one JSON object). Bodies larger than [`MAX_FRAME`] are refused before a
//! byte of them is read, so a peer cannot make the reader allocate more.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame body, in bytes (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announced more than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut len[1..]).await.map_err(eof_truncated)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(eof_truncated)?;
    Ok(Some(body))
}

fn eof_truncated(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(e)
    }
}

/// The frame for `body` (length prefix + body).
pub fn encode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Writes already encoded frames from `rx` to `w`, flushing whenever no more
/// are waiting (so bursts share one system call). With `stall`, a write or
/// flush that makes no progress for that long ends the loop (the peer does
/// not read): the caller closes the connection when the loop ends.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    w: W,
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    stall: Option<std::time::Duration>,
) {
    let mut w = tokio::io::BufWriter::with_capacity(64 * 1024, w);
    async fn timed<F: std::future::Future<Output = std::io::Result<()>>>(
        stall: Option<std::time::Duration>,
        f: F,
    ) -> bool {
        match stall {
            Some(d) => matches!(tokio::time::timeout(d, f).await, Ok(Ok(()))),
            None => f.await.is_ok(),
        }
    }
    while let Some(frame) = rx.recv().await {
        if !timed(stall, w.write_all(&frame)).await {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if !timed(stall, w.write_all(&more)).await {
                return;
            }
        }
        if !timed(stall, w.flush()).await {
            return;
        }
    }
    let _ = timed(stall, w.shutdown()).await;
}
