//! git's pkt-line framing: a 4-hex-digit length (including itself) then the payload; `0000` is a
//! flush packet. See gitprotocol-common(5).

use crate::{Error, Result};

/// Largest payload of one pkt-line (65520 minus the 4-byte header).
pub const MAX_PAYLOAD: usize = 65516;

pub const FLUSH: &[u8] = b"0000";

/// Appends one pkt-line carrying `payload`.
pub fn encode(out: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len() + 4;
    out.extend_from_slice(format!("{len:04x}").as_bytes());
    out.extend_from_slice(payload);
}

/// One parsed packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Flush,
    /// `0001` (delimiter) and `0002` (response end), used by protocol v2.
    Special(u8),
    Data(&'a [u8]),
}

/// Reads the packet at the start of `input`; returns it and the bytes consumed.
pub fn decode(input: &[u8]) -> Result<(Packet<'_>, usize)> {
    let header = input
        .get(..4)
        .ok_or_else(|| Error::Protocol("truncated pkt-line header".into()))?;
    let text =
        std::str::from_utf8(header).map_err(|_| Error::Protocol("bad pkt-line header".into()))?;
    let len = usize::from_str_radix(text, 16)
        .map_err(|_| Error::Protocol("bad pkt-line length".into()))?;
    match len {
        0 => Ok((Packet::Flush, 4)),
        1 | 2 => Ok((Packet::Special(len as u8), 4)),
        3 => Err(Error::Protocol("invalid pkt-line length 3".into())),
        _ => {
            let payload = input
                .get(4..len)
                .ok_or_else(|| Error::Protocol("truncated pkt-line".into()))?;
            Ok((Packet::Data(payload), len))
        }
    }
}

/// Like [`decode`], but `Ok(None)` when `input` ends before the packet does (the rest has not
/// arrived yet).
pub fn decode_partial(input: &[u8]) -> Result<Option<(Packet<'_>, usize)>> {
    let Some(header) = input.get(..4) else {
        return Ok(None);
    };
    let text =
        std::str::from_utf8(header).map_err(|_| Error::Protocol("bad pkt-line header".into()))?;
    let len = usize::from_str_radix(text, 16)
        .map_err(|_| Error::Protocol("bad pkt-line length".into()))?;
    if len > 4 && input.len() < len {
        return Ok(None);
    }
    decode(input).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        encode(&mut out, b"hello\n");
        out.extend_from_slice(FLUSH);
        assert_eq!(out, b"000ahello\n0000");
        let (p, n) = decode(&out).expect("decode");
        assert_eq!(p, Packet::Data(b"hello\n"));
        assert_eq!(decode(&out[n..]).expect("flush").0, Packet::Flush);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(decode(b"00").is_err());
        assert!(decode(b"zzzz").is_err());
        assert!(decode(b"0003").is_err());
        assert!(decode(b"00ffshort").is_err());
    }

    #[test]
    fn partial_input_waits_for_more() {
        assert_eq!(decode_partial(b"00").expect("short header"), None);
        assert_eq!(decode_partial(b"000ahel").expect("short payload"), None);
        assert_eq!(
            decode_partial(b"000ahello\n").expect("whole"),
            Some((Packet::Data(b"hello\n"), 10))
        );
        assert!(decode_partial(b"zzzz").is_err());
    }
}
