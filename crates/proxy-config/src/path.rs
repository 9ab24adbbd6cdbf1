//! Request paths normalised as RFC 3986 says, the one form that authorization policies and the app both see.

use std::borrow::Cow;
use std::fmt;

/// A path with a `%` not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedPath;

impl fmt::Display for MalformedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "malformed percent-encoding in the path ('%' must be followed by two hex digits)",
        )
    }
}

impl std::error::Error for MalformedPath {}

/// Normalises an absolute request path (RFC 3986 §6.2.2): percent-encoded
/// unreserved characters are decoded and other encodings (`%2F` included) kept
/// with uppercase hex, repeated slashes are merged, and `.` and `..` segments
/// removed (§5.2.4). A path already normal is returned borrowed, without
/// allocating; one that does not start with `/` (`*`) is returned as it is.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, MalformedPath> {
    let Some(rest) = path.strip_prefix('/') else {
        return Ok(Cow::Borrowed(path));
    };
    if is_normal(rest) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = normalize_percent(path)?;
    let rest = decoded.get(1..).unwrap_or("");
    let mut out = String::with_capacity(decoded.len());
    // Start offsets in `out` of the segments kept, for `..` to pop.
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing_slash = false;
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        trailing_slash = false;
        match segment {
            // Merged with the next slash; a final empty segment is a trailing slash.
            "" => trailing_slash = last,
            "." => trailing_slash = last,
            ".." => {
                if let Some(start) = starts.pop() {
                    out.truncate(start);
                }
                trailing_slash = last;
            }
            _ => {
                starts.push(out.len());
                out.push('/');
                out.push_str(segment);
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Whether a path (after its leading `/`) has nothing to normalise.
fn is_normal(rest: &str) -> bool {
    if rest.contains('%') && !percent_is_normal(rest.as_bytes()) {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return false;
        }
    }
    true
}

/// Whether every `%` starts an uppercase encoding of a character that stays encoded.
fn percent_is_normal(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        let (Some(&high), Some(&low)) = (rest.get(at + 1), rest.get(at + 2)) else {
            return false;
        };
        let upper = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
        let (Some(h), Some(l)) = (hex_value(high), hex_value(low)) else {
            return false;
        };
        if !upper(high) || !upper(low) || is_unreserved((h << 4) | l) {
            return false;
        }
        rest = rest.get(at + 3..).unwrap_or_default();
    }
    true
}

/// RFC 3986 §2.3: characters that never need percent-encoding.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Decodes percent-encoded unreserved characters and uppercases the hex of the others.
pub fn normalize_percent(text: &str) -> Result<Cow<'_, str>, MalformedPath> {
    if !text.contains('%') {
        return Ok(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte != b'%' {
            out.push(byte);
            i += 1;
            continue;
        }
        let (Some(high), Some(low)) = (
            bytes.get(i + 1).copied().and_then(hex_value),
            bytes.get(i + 2).copied().and_then(hex_value),
        ) else {
            return Err(MalformedPath);
        };
        let decoded = (high << 4) | low;
        if is_unreserved(decoded) {
            out.push(decoded);
        } else {
            out.extend_from_slice(&[
                b'%',
                HEX_UPPER[usize::from(high)],
                HEX_UPPER[usize::from(low)],
            ]);
        }
        i += 3;
    }
    // Only ASCII was added, and every other byte copied as it was: still UTF-8.
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| MalformedPath)
}

const HEX_UPPER: [u8; 16] = *b"0123456789ABCDEF";

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
