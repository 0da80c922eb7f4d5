//! Log bytes → [`Item`]s: framing the bytes into lines, then scanning each line for escape
//! sequences, `\r` overwrites and section markers.
//!
//! Rendering works a line at a time, and a line is only rendered once all of it is there
//! (unless the log is complete). That one rule is what makes incremental rendering exact: every
//! construct that could be cut by the end of the available bytes (an escape sequence, a UTF-8
//! character, a section marker, `\r\n`) lies within a line, so a cut line is simply left for the
//! next call.
//!
//! The scanning mirrors GitLab's `Gitlab::Ci::Ansi2json::Converter`, with two deliberate
//! differences: `\r` characters just before `\n` are part of the line ending (GitLab clears the
//! line for `\r\r\n`), and escape sequences are parsed by ECMA-48's grammar rather than
//! GitLab's looser regular expression.

use std::borrow::Cow;

use serde::Serialize;

use crate::cursor::{
    Cursor, MAX_OPEN_SECTIONS, OpenSection, is_section_name_byte, valid_section_name,
};
use crate::style::Style;

/// One piece of a rendered log, in log order. Serialized for the live log's JSON as
/// `{"type": "line", "number": 3, "html": "…", "timestamp": "10:11:12"}` and so on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// A line of output. `html` is escaped text in `<span class="term-…">` elements.
    Line {
        number: u64,
        html: String,
        /// `HH:MM:SS` (UTC) from the runner's timestamp prefix, when the log has them.
        timestamp: Option<String>,
    },
    /// A `section_start` marker. Its header (the text after the marker) is a numbered line of
    /// its own; the items up to the matching [`Item::SectionEnd`] belong to the section.
    SectionStart {
        name: String,
        header_html: String,
        number: u64,
        /// The marker's Unix timestamp.
        started_at: Option<i64>,
        /// `[collapsed=true]`: the page shows the section closed.
        collapsed: bool,
    },
    /// A `section_end` marker for the innermost open section.
    SectionEnd {
        name: String,
        /// `MM:SS` between the start and end markers, as GitLab shows it (minutes may exceed
        /// 59).
        duration: Option<String>,
    },
}

/// Renders `bytes`, the log from `cursor.offset` on, continuing from what `cursor` records.
///
/// When `complete` is false (the job is still running) a trailing partial line is not
/// consumed: the returned cursor points at its first byte, so the next call re-reads it once
/// more of it has arrived. A line with a runner timestamp is also held back until the next
/// line's timestamp shows whether that line continues it (GitLab Runner splits long lines into
/// `+` continuations). When `complete` is true everything is rendered, including a final line
/// without a newline.
///
/// The caller slices the log at `cursor.offset`; a cursor from a client may point past the end
/// of the log (or into a log that was since erased), which the caller must check first.
pub fn render(bytes: &[u8], cursor: &Cursor, complete: bool) -> (Vec<Item>, Cursor) {
    let mut renderer = Renderer {
        items: Vec::new(),
        lines: cursor.lines,
        style: cursor.style,
        sections: cursor.sections.clone(),
    };
    let mut consumed = 0;
    while consumed < bytes.len() {
        let Some(line) = next_line(bytes, consumed, complete) else {
            break;
        };
        renderer.line(&line.content, line.timestamp);
        consumed = line.next;
    }
    let cursor = Cursor {
        offset: cursor.offset.saturating_add(consumed as u64),
        lines: renderer.lines,
        style: renderer.style,
        sections: renderer.sections,
    };
    (renderer.items, cursor)
}

// ---------------------------------------------------------------------------------------------
// Framing: bytes → lines (with timestamps and continuations)
// ---------------------------------------------------------------------------------------------

/// `2024-03-05T10:11:12.123456Z 01O ` — RFC 3339 with microseconds, a space, the stream
/// number (2 hex digits), the stream (`O`ut or `E`rr), and `+` if the line continues the
/// previous one (a space otherwise).
const TIMESTAMP_HEADER_LEN: usize = 32;

/// A logical line: the bytes between line endings, timestamp prefixes removed and `+`
/// continuations joined.
struct Line<'a> {
    content: Cow<'a, [u8]>,
    /// The raw RFC 3339 timestamp of the line's first part.
    timestamp: Option<&'a [u8]>,
    /// Where the next line starts.
    next: usize,
}

/// The line starting at `start`, or `None` if it cannot be rendered yet (incomplete log only).
fn next_line(bytes: &[u8], start: usize, complete: bool) -> Option<Line<'_>> {
    let (first, mut next, terminated) = physical_line(bytes, start);
    if !terminated && !complete {
        return None;
    }
    let header = timestamp_header(first);
    let (timestamp, mut content) = match header {
        Some(_) => (
            Some(&first[..27]),
            Cow::Borrowed(&first[TIMESTAMP_HEADER_LEN..]),
        ),
        None => (None, Cow::Borrowed(first)),
    };
    // Only a timestamped line can be continued; GitLab's converter looks one line ahead the
    // same way. The `\n` between a line and its continuation is not part of the output.
    if header.is_some() && terminated {
        loop {
            let rest = &bytes[next..];
            match timestamp_header(rest) {
                Some(b'+') => {
                    let (part, after, part_terminated) = physical_line(bytes, next);
                    if !part_terminated && !complete {
                        return None;
                    }
                    content
                        .to_mut()
                        .extend_from_slice(&part[TIMESTAMP_HEADER_LEN..]);
                    next = after;
                    if !part_terminated {
                        break;
                    }
                }
                Some(_) => break,
                None if !complete && rest.len() < TIMESTAMP_HEADER_LEN && could_be_header(rest) => {
                    return None;
                }
                None => break,
            }
        }
    }
    // `\r\n` (and `\r\r\n`) end a line; they do not overwrite it.
    let kept = content.len() - content.iter().rev().take_while(|&&b| b == b'\r').count();
    match &mut content {
        Cow::Borrowed(slice) => *slice = &slice[..kept],
        Cow::Owned(vec) => vec.truncate(kept),
    }
    Some(Line {
        content,
        timestamp,
        next,
    })
}

/// The bytes from `start` to the next `\n` (excluded), where the following line starts, and
/// whether a `\n` was found.
fn physical_line(bytes: &[u8], start: usize) -> (&[u8], usize, bool) {
    match bytes[start..].iter().position(|&b| b == b'\n') {
        Some(len) => (&bytes[start..start + len], start + len + 1, true),
        None => (&bytes[start..], bytes.len(), false),
    }
}

/// What each byte of a timestamp header may be: `D` digit, `H` hex digit, `S` stream, `F` flag,
/// anything else itself.
const HEADER_PATTERN: &[u8; TIMESTAMP_HEADER_LEN] = b"DDDD-DD-DDTDD:DD:DD.DDDDDDZ HHSF";

fn header_byte_ok(pattern: u8, b: u8) -> bool {
    match pattern {
        b'D' => b.is_ascii_digit(),
        b'H' => b.is_ascii_hexdigit(),
        b'S' => matches!(b, b'O' | b'E'),
        b'F' => matches!(b, b' ' | b'+'),
        literal => b == literal,
    }
}

/// The flag byte (`' '` or `'+'`) if `line` starts with a runner timestamp header.
fn timestamp_header(line: &[u8]) -> Option<u8> {
    let header = line.get(..TIMESTAMP_HEADER_LEN)?;
    let ok = HEADER_PATTERN
        .iter()
        .zip(header)
        .all(|(&p, &b)| header_byte_ok(p, b));
    ok.then_some(header[TIMESTAMP_HEADER_LEN - 1])
}

/// Whether `partial` (shorter than a header) could still grow into one.
fn could_be_header(partial: &[u8]) -> bool {
    HEADER_PATTERN
        .iter()
        .zip(partial)
        .all(|(&p, &b)| header_byte_ok(p, b))
}

// ---------------------------------------------------------------------------------------------
// Scanning: one line → items
// ---------------------------------------------------------------------------------------------

struct Renderer {
    items: Vec<Item>,
    lines: u64,
    style: Style,
    sections: Vec<OpenSection>,
}

/// What the text being collected will become.
enum Pending {
    Line,
    Header {
        name: String,
        started_at: Option<i64>,
        collapsed: bool,
    },
}

const ESC: u8 = 0x1b;

impl Renderer {
    fn line(&mut self, content: &[u8], timestamp: Option<&[u8]>) {
        // `2024-03-05T10:11:12.123456Z` → `10:11:12`; the header check guaranteed ASCII.
        let timestamp = timestamp.map(|t| String::from_utf8_lossy(&t[11..19]).into_owned());
        let mut html = HtmlLine::default();
        let mut pending = Pending::Line;
        let mut saw_marker = false;
        let mut text_start = 0;
        let mut i = 0;
        while i < content.len() {
            let b = content[i];
            let resume = match b {
                ESC => {
                    html.text(&content[text_start..i], self.style);
                    escape_sequence(content, i, &mut self.style)
                }
                b'\r' => {
                    // A lone `\r` returns the cursor to the line start: what follows overwrites
                    // it (progress bars). GitLab, too, keeps only the text after it.
                    html.text(&content[text_start..i], self.style);
                    html.clear();
                    i + 1
                }
                b's' => match Marker::parse(&content[i..]) {
                    Some(marker) => {
                        html.text(&content[text_start..i], self.style);
                        self.marker(&marker, &mut html, &mut pending, &timestamp);
                        saw_marker = true;
                        i + marker.len
                    }
                    None => {
                        i += 1;
                        continue;
                    }
                },
                // Other control characters (BEL, backspace, NUL…) have no place in HTML.
                0..=0x08 | 0x0b..=0x1f | 0x7f => {
                    html.text(&content[text_start..i], self.style);
                    i + 1
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            i = resume;
            text_start = resume;
        }
        html.text(&content[text_start..], self.style);
        // A line that held only markers (and escape codes) is not a line of its own; an empty
        // line in the output is. (Even an ignored `section_end` counts as a marker here.)
        let keep_empty = !saw_marker;
        self.flush(&mut html, pending, keep_empty, &timestamp);
    }

    /// Handles a section marker. An end for a section that is not open is dropped, and the
    /// text around it continues as one line.
    fn marker(
        &mut self,
        marker: &Marker<'_>,
        html: &mut HtmlLine,
        pending: &mut Pending,
        timestamp: &Option<String>,
    ) {
        let name = String::from_utf8_lossy(marker.name);
        if marker.start {
            let previous = std::mem::replace(pending, Pending::Line);
            self.flush(html, previous, false, timestamp);
            // Too deep or too long a name: the marker is dropped and its header is an ordinary
            // line. Both bound the cursor's size.
            if self.sections.len() < MAX_OPEN_SECTIONS && valid_section_name(marker.name) {
                self.sections.push(OpenSection {
                    name: name.clone().into_owned(),
                    started_at: marker.timestamp,
                });
                *pending = Pending::Header {
                    name: name.into_owned(),
                    started_at: marker.timestamp,
                    collapsed: marker.collapsed,
                };
            }
        } else {
            let Some(depth) = self.sections.iter().rposition(|s| s.name == name) else {
                return;
            };
            let previous = std::mem::replace(pending, Pending::Line);
            self.flush(html, previous, false, timestamp);
            // Ending an outer section ends the sections inside it too, innermost first.
            for section in self.sections.drain(depth..).rev() {
                let duration = section
                    .started_at
                    .zip(marker.timestamp)
                    .map(|(start, end)| duration(start, end));
                self.items.push(Item::SectionEnd {
                    name: section.name,
                    duration,
                });
            }
        }
    }

    /// Emits what `html` collected: a section start (always, even with an empty header), or a
    /// line if it has text or `keep_empty` says so. Leaves `html` empty.
    fn flush(
        &mut self,
        html: &mut HtmlLine,
        pending: Pending,
        keep_empty: bool,
        timestamp: &Option<String>,
    ) {
        let is_empty = html.is_empty();
        let text = html.take();
        match pending {
            Pending::Header {
                name,
                started_at,
                collapsed,
            } => {
                self.lines += 1;
                self.items.push(Item::SectionStart {
                    name,
                    header_html: text,
                    number: self.lines,
                    started_at,
                    collapsed,
                });
            }
            Pending::Line if !is_empty || keep_empty => {
                self.lines += 1;
                self.items.push(Item::Line {
                    number: self.lines,
                    html: text,
                    timestamp: timestamp.clone(),
                });
            }
            Pending::Line => {}
        }
    }
}

/// GitLab's section duration: whole minutes and seconds, `%02d:%02d`, never negative.
fn duration(start: i64, end: i64) -> String {
    let seconds = end.saturating_sub(start).max(0);
    format!("{:02}:{:02}", seconds / 60, seconds % 60)
}

/// Skips the escape sequence at `content[start]` (an ESC), applying it to `style` if it is SGR,
/// and returns the index just after it. Every other sequence is dropped: erase-line, cursor
/// movement, OSC titles and hyperlinks, charset selection. A malformed sequence is dropped up
/// to the byte that broke it.
fn escape_sequence(content: &[u8], start: usize, style: &mut Style) -> usize {
    let Some(&kind) = content.get(start + 1) else {
        return content.len();
    };
    match kind {
        // CSI: parameter bytes, intermediate bytes, one final byte.
        b'[' => {
            let params_start = start + 2;
            let mut i = params_start;
            while i < content.len() && (0x30..=0x3f).contains(&content[i]) {
                i += 1;
            }
            let params_end = i;
            while i < content.len() && (0x20..=0x2f).contains(&content[i]) {
                i += 1;
            }
            match content.get(i) {
                Some(&final_byte @ 0x40..=0x7e) => {
                    if final_byte == b'm' && params_end == i {
                        style.apply_sgr(&content[params_start..params_end]);
                    }
                    i + 1
                }
                _ => i,
            }
        }
        // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (`ESC \`). Unterminated, it runs
        // to the end of the line.
        b']' | b'P' | b'X' | b'^' | b'_' => {
            let mut i = start + 2;
            while i < content.len() {
                match content[i] {
                    0x07 => return i + 1,
                    ESC if content.get(i + 1) == Some(&b'\\') => return i + 2,
                    _ => i += 1,
                }
            }
            content.len()
        }
        // nF sequences (`ESC ( B`): intermediates, then a final byte.
        0x20..=0x2f => {
            let mut i = start + 1;
            while i < content.len() && (0x20..=0x2f).contains(&content[i]) {
                i += 1;
            }
            match content.get(i) {
                Some(0x30..=0x7e) => i + 1,
                _ => i,
            }
        }
        // Two-byte sequences (`ESC 7`, `ESC M`, `ESC =`).
        0x30..=0x7e => start + 2,
        // A lone ESC.
        _ => start + 1,
    }
}

/// `section_start:<unix ts>:<name>[<options>]\r\e[0K` or `section_end:<unix ts>:<name>\r\e[0K`.
struct Marker<'a> {
    start: bool,
    timestamp: Option<i64>,
    name: &'a [u8],
    collapsed: bool,
    /// Bytes the marker occupies, up to and including `\e[0K`.
    len: usize,
}

/// Longest `[…]` options block recognised; bounds the work a failed match can do.
const MAX_OPTIONS: usize = 256;

impl<'a> Marker<'a> {
    fn parse(s: &'a [u8]) -> Option<Marker<'a>> {
        let (start, mut i) = if s.starts_with(b"section_start:") {
            (true, 14)
        } else if s.starts_with(b"section_end:") {
            (false, 12)
        } else {
            return None;
        };
        let digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || s.get(i + digits) != Some(&b':') {
            return None;
        }
        let timestamp = std::str::from_utf8(&s[i..i + digits])
            .ok()
            .and_then(|d| d.parse().ok());
        i += digits + 1;
        let name_len = s[i..]
            .iter()
            .take_while(|&&b| is_section_name_byte(b))
            .count();
        if name_len == 0 {
            return None;
        }
        let name = &s[i..i + name_len];
        i += name_len;
        let mut collapsed = false;
        if s.get(i) == Some(&b'[') {
            let options_len = s[i + 1..]
                .iter()
                .take(MAX_OPTIONS)
                .position(|&b| b == b']')?;
            let options = &s[i + 1..i + 1 + options_len];
            if options.iter().any(|&b| b == b'\r' || b == ESC) {
                return None;
            }
            collapsed = options
                .split(|&b| b == b',')
                .any(|option| option == b"collapsed=true");
            i += options_len + 2;
        }
        if !s[i..].starts_with(b"\r\x1b[0K") {
            return None;
        }
        Some(Marker {
            start,
            timestamp,
            name,
            collapsed,
            len: i + 5,
        })
    }
}

/// One line's HTML under construction: escaped text in spans, a new span only when the style
/// changes, no span for the default style.
#[derive(Default)]
struct HtmlLine {
    html: String,
    /// The style of the open `<span>`, if one is open.
    open: Option<Style>,
}

impl HtmlLine {
    fn text(&mut self, bytes: &[u8], style: Style) {
        if bytes.is_empty() {
            return;
        }
        if self.open != Some(style) {
            if self.open.take().is_some() {
                self.html.push_str("</span>");
            }
            if !style.is_default() {
                self.html.push_str("<span class=\"");
                style.write_classes(&mut self.html);
                self.html.push_str("\">");
                self.open = Some(style);
            }
        }
        escape_into(&mut self.html, &String::from_utf8_lossy(bytes));
    }

    fn clear(&mut self) {
        self.html.clear();
        self.open = None;
    }

    fn is_empty(&self) -> bool {
        self.html.is_empty()
    }

    fn take(&mut self) -> String {
        if self.open.take().is_some() {
            self.html.push_str("</span>");
        }
        std::mem::take(&mut self.html)
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(['<', '>', '&', '"', '\'']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            b'"' => "&quot;",
            _ => "&#39;",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}
