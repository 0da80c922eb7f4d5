//! A git client's request body on its way to `git`: read piece by piece as the client sends
//! it, inflated when it is gzip-encoded, and counted against a limit. No request is ever held
//! whole in memory, and a small gzip body cannot make the server inflate more than the limit
//! (a 1 MB body of zeros inflates to 1 GB): the count stops it at the limit, with
//! [`Error::TooLarge`].
//!
//! GitLab Workhorse also streams request bodies to Gitaly, inflating gzip on the way
//! (`workhorse/internal/upstream/handlers.go`, `contentEncodingHandler`).

use std::io::Write;
use std::pin::Pin;

use bytes::{Buf, Bytes};
use flate2::write::MultiGzDecoder;
use futures_util::{Stream, StreamExt};

use crate::{Error, Result};

/// After refusing a body as too large, up to this much more of it is read and dropped, for at
/// most [`DRAIN_TIME`], so the client (still sending) gets to read the 413 instead of a
/// connection reset.
const DRAIN_BYTES: u64 = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Inflated output is handed on in pieces of about this size (the decoder adds at most its
/// own 32 KiB buffer on top), whatever the compression ratio.
const PIECE: usize = 64 * 1024;

type Chunks = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A request body as a sequence of pieces, inflated and bounded.
pub struct RequestBody {
    chunks: Chunks,
    /// Present for `Content-Encoding: gzip`; inflated output collects in its `Vec`.
    decoder: Option<MultiGzDecoder<Vec<u8>>>,
    /// Compressed input not yet given to the decoder.
    pending: Bytes,
    limit: u64,
    /// Bytes handed on so far (inflated, when gzip).
    produced: u64,
    /// Bytes received from the client so far.
    received: u64,
    ended: bool,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("gzip", &self.decoder.is_some())
            .field("limit", &self.limit)
            .field("produced", &self.produced)
            .finish_non_exhaustive()
    }
}

impl RequestBody {
    /// `chunks` as the client sends them; `gzip` when the request said
    /// `Content-Encoding: gzip`; at most `limit` bytes after inflating (and before).
    pub fn new(
        chunks: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
        gzip: bool,
        limit: u64,
    ) -> Self {
        RequestBody {
            chunks: Box::pin(chunks),
            decoder: gzip.then(|| MultiGzDecoder::new(Vec::new())),
            pending: Bytes::new(),
            limit,
            produced: 0,
            received: 0,
            ended: false,
        }
    }

    /// A body already in memory (tests, and callers that have one).
    pub fn from_bytes(data: impl Into<Bytes>, gzip: bool, limit: u64) -> Self {
        let data: Bytes = data.into();
        Self::new(futures_util::stream::iter([Ok(data)]), gzip, limit)
    }

    /// The next piece of the (inflated) body; `None` at its end.
    ///
    /// Errors: [`Error::TooLarge`] past the limit, [`Error::InvalidGzip`] for a body that is
    /// not gzip (or ends in the middle of it), [`Error::Io`] when the client's connection
    /// fails.
    pub async fn next_piece(&mut self) -> Result<Option<Bytes>> {
        if self.decoder.is_none() {
            return match self.next_raw().await? {
                Some(chunk) => self.hand_on(chunk),
                None => Ok(None),
            };
        }
        loop {
            if let Some(piece) = self.inflate_pending()? {
                return self.hand_on(piece);
            }
            if self.ended {
                return Ok(None);
            }
            match self.next_raw().await? {
                Some(chunk) => self.pending = chunk,
                None => {
                    self.ended = true;
                    if let Some(decoder) = self.decoder.as_mut() {
                        decoder.try_finish().map_err(|_| Error::InvalidGzip)?;
                    }
                }
            }
        }
    }

    /// The next chunk from the client, counted.
    async fn next_raw(&mut self) -> Result<Option<Bytes>> {
        if self.ended {
            return Ok(None);
        }
        match self.chunks.next().await {
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                if self.received > self.limit {
                    return Err(self.too_large());
                }
                Ok(Some(chunk))
            }
            Some(Err(err)) => Err(Error::Io(err)),
            None => {
                self.ended = true;
                Ok(None)
            }
        }
    }

    /// Feeds pending input to the decoder until about a piece of output is ready; returns
    /// the output, if any. Each `write` produces at most the decoder's 32 KiB buffer, so
    /// memory stays bounded however well the input compresses.
    fn inflate_pending(&mut self) -> Result<Option<Bytes>> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(None);
        };
        while !self.pending.is_empty() && decoder.get_ref().len() < PIECE {
            let used = decoder
                .write(&self.pending)
                .map_err(|_| Error::InvalidGzip)?;
            if used == 0 {
                return Err(Error::InvalidGzip);
            }
            self.pending.advance(used);
        }
        let out = std::mem::take(decoder.get_mut());
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }

    fn hand_on(&mut self, piece: Bytes) -> Result<Option<Bytes>> {
        self.produced += piece.len() as u64;
        if self.produced > self.limit {
            return Err(self.too_large());
        }
        Ok(Some(piece))
    }

    /// The error for a body past its limit. What the client still sends is read and dropped
    /// in the background (bounded in bytes and time), without inflating it.
    fn too_large(&mut self) -> Error {
        self.ended = true;
        let mut rest = std::mem::replace(&mut self.chunks, Box::pin(futures_util::stream::empty()));
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(async move {
                let drain = async {
                    let mut drained = 0u64;
                    while let Some(Ok(chunk)) = rest.next().await {
                        drained += chunk.len() as u64;
                        if drained > DRAIN_BYTES {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            });
        }
        Error::TooLarge { limit: self.limit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("write");
        enc.finish().expect("finish")
    }

    async fn collect(mut body: RequestBody) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(piece) = body.next_piece().await? {
            assert!(piece.len() <= PIECE + 32 * 1024, "piece of {}", piece.len());
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn plain_bodies_pass_through_within_the_limit() {
        let body = RequestBody::from_bytes(vec![b'x'; 1000], false, 1000);
        assert_eq!(collect(body).await.expect("ok").len(), 1000);
        let body = RequestBody::from_bytes(vec![b'x'; 1001], false, 1000);
        assert!(matches!(collect(body).await, Err(Error::TooLarge { .. })));
    }

    #[tokio::test]
    async fn gzip_bodies_are_inflated_in_bounded_pieces() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let gz = gzip(&data);
        // Split the compressed body into small chunks, as a network would.
        let chunks: Vec<std::io::Result<Bytes>> = gz
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let body = RequestBody::new(futures_util::stream::iter(chunks), true, 300_000);
        assert_eq!(collect(body).await.expect("inflate"), data);
    }

    #[tokio::test]
    async fn a_gzip_bomb_stops_at_the_limit() {
        // 16 MiB of zeros compress to about 16 KiB.
        let gz = gzip(&vec![0u8; 16 * 1024 * 1024]);
        assert!(gz.len() < 32 * 1024);
        let mut body = RequestBody::from_bytes(gz, true, 1024 * 1024);
        let mut total = 0usize;
        let err = loop {
            match body.next_piece().await {
                Ok(Some(piece)) => total += piece.len(),
                Ok(None) => panic!("the bomb was inflated whole"),
                Err(err) => break err,
            }
        };
        assert!(matches!(err, Error::TooLarge { limit: 1_048_576 }));
        assert!(total <= 1024 * 1024);
    }

    #[tokio::test]
    async fn broken_gzip_is_refused() {
        let body = RequestBody::from_bytes(&b"not gzip at all"[..], true, 1000);
        assert!(matches!(collect(body).await, Err(Error::InvalidGzip)));
        let gz = gzip(b"hello world");
        let truncated = RequestBody::from_bytes(gz[..gz.len() - 4].to_vec(), true, 1000);
        assert!(matches!(collect(truncated).await, Err(Error::InvalidGzip)));
    }
}
