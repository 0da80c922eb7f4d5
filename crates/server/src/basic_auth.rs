//! HTTP Basic credentials (`Authorization: Basic …`), decoded: the one parser that git's
//! authentication (`auth.rs`) and the malformed-strings layer (`malformed.rs`) share.

use axum::http::HeaderMap;

use crate::error::{ApiError, ApiResult};

/// HTTP Basic credentials `(username, secret)`, if any were sent.
pub fn credentials(headers: &HeaderMap) -> ApiResult<Option<(String, String)>> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(ApiError::Unauthorized);
    };
    let decoded = decode_base64(encoded.trim()).ok_or(ApiError::Unauthorized)?;
    let decoded = String::from_utf8(decoded).map_err(|_| ApiError::Unauthorized)?;
    let (username, secret) = decoded.split_once(':').ok_or(ApiError::Unauthorized)?;
    Ok(Some((username.to_string(), secret.to_string())))
}

/// Standard base64 (with or without padding), as HTTP Basic uses it.
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes: Vec<u8> = input.bytes().filter(|b| *b != b'=').collect();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        for i in 0..produced {
            out.push(((acc >> (16 - 8 * i)) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(
            decode_base64("cm9vdDpzZWNyZXQ=").as_deref(),
            Some(&b"root:secret"[..])
        );
        assert_eq!(decode_base64("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("!!!"), None);
    }
}
