//! Where rendering stopped, and its compact, URL-safe text form.
//!
//! A live log page echoes the encoded cursor back in a query string, so [`Cursor::decode`]
//! treats its input as hostile: it bounds every size, accepts only canonical numbers and
//! section names the marker grammar could have produced, and never panics.

use crate::style::{ALL_FLAGS, Style};

/// At most this many sections are open at once; deeper `section_start` markers are ignored
/// (their header becomes an ordinary line). Bounds the cursor's size.
pub(crate) const MAX_OPEN_SECTIONS: usize = 32;

/// Section names longer than this are ignored like malformed markers. Bounds the cursor's size.
pub(crate) const MAX_SECTION_NAME: usize = 100;

/// The encoded form's version tag; bump it when the format changes so old cursors are
/// rejected (the page then reloads the whole log) rather than misread.
const VERSION: &str = "1";

/// Longest encoded cursor `decode` looks at: the fixed fields plus 32 maximal sections fit in
/// well under this.
const MAX_ENCODED: usize = 4096;

/// Where rendering stopped: enough to continue from `offset` later without re-reading earlier
/// bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Byte offset into the whole log of the first byte not yet rendered. Always the start of
    /// a line (or the end of the log).
    pub offset: u64,
    /// How many numbered lines (including section headers) come before `offset`; the next
    /// line is number `lines + 1`.
    pub lines: u64,
    /// The colours and attributes in effect at `offset` (they carry across lines, as in a
    /// terminal).
    pub style: Style,
    /// The sections open at `offset`, outermost first.
    pub sections: Vec<OpenSection>,
}

/// A section that has started and not yet ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSection {
    /// The name from the `section_start` marker (`[a-zA-Z0-9_.-]{1,100}`).
    pub name: String,
    /// The marker's Unix timestamp, if it fit an `i64`; used for the section's duration.
    pub started_at: Option<i64>,
}

impl Cursor {
    /// The cursor as a short string of URL-unreserved characters (`[A-Za-z0-9_.~-]`), e.g.
    /// `1~4096~57~1~2~~build~1709633472`: version, offset, lines, style (attribute bits,
    /// foreground, background), then each open section's name and start time.
    pub fn encode(&self) -> String {
        let mut out = format!(
            "{VERSION}~{}~{}~{}~{}~{}",
            self.offset,
            self.lines,
            self.style.flags,
            optional(self.style.fg),
            optional(self.style.bg),
        );
        for section in &self.sections {
            out.push('~');
            out.push_str(&section.name);
            out.push('~');
            out.push_str(&optional(section.started_at));
        }
        out
    }

    /// Parses what [`encode`](Self::encode) produced. Anything else, including a cursor with
    /// more than 32 open sections or a section name over 100 characters, is `None`.
    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() > MAX_ENCODED {
            return None;
        }
        let mut fields = s.split('~');
        if fields.next()? != VERSION {
            return None;
        }
        let offset = digits(fields.next()?)?;
        let lines = digits(fields.next()?)?;
        let flags = u8::try_from(digits(fields.next()?)?).ok()?;
        if flags & !ALL_FLAGS != 0 {
            return None;
        }
        let mut colour = || -> Option<Option<u8>> {
            match fields.next()? {
                "" => Some(None),
                n => Some(Some(u8::try_from(digits(n)?).ok()?)),
            }
        };
        let style = Style {
            fg: colour()?,
            bg: colour()?,
            flags,
        };
        let mut sections = Vec::new();
        while let Some(name) = fields.next() {
            if sections.len() == MAX_OPEN_SECTIONS || !valid_section_name(name.as_bytes()) {
                return None;
            }
            let started_at = match fields.next()? {
                "" => None,
                n => Some(i64::try_from(digits(n)?).ok()?),
            };
            sections.push(OpenSection {
                name: name.to_owned(),
                started_at,
            });
        }
        Some(Cursor {
            offset,
            lines,
            style,
            sections,
        })
    }
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// A canonical decimal `u64`: ASCII digits only (no sign, no leading zeros), so every cursor
/// has exactly one encoding.
fn digits(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// GitLab's section name grammar, `[a-zA-Z0-9_.-]+`, with Pipewright's length bound.
pub(crate) fn valid_section_name(name: &[u8]) -> bool {
    (1..=MAX_SECTION_NAME).contains(&name.len()) && name.iter().copied().all(is_section_name_byte)
}

pub(crate) fn is_section_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}
