//! A CI job log, as GitLab Runner writes it, turned into safe HTML for the job page. The crate
//! owns the log's format and nothing else: ANSI SGR colours and styles (other escape sequences
//! are dropped), `\r` overwrites, GitLab's collapsible sections (`section_start:…`/
//! `section_end:…`), the runner's optional per-line timestamps (`FF_TIMESTAMPS`), invalid UTF-8
//! and HTML escaping. Bytes come in, [`Item`]s (lines, section starts and ends, each carrying
//! escaped HTML) and a [`Cursor`] come out; [`to_html`] nests items into the page's markup.
//! It does no I/O and never sees a job, a database or a request: callers read the log's bytes
//! from wherever they live and echo the encoded cursor back to continue a live log.
//!
//! # Incremental rendering
//!
//! A running job's log grows. [`render`] only consumes whole lines unless told the log is
//! complete, so a partial line, a half-written escape sequence or section marker, or a UTF-8
//! character cut in two is left for the next poll, and the cursor it returns points at that
//! line's first byte. The cursor also carries what rendering the earlier bytes established (the
//! line count, the current colours, the open sections), so the next call never re-reads them.
//! Rendering a log in any number of polls yields exactly the items one pass over the whole log
//! yields.
//!
//! # Safety of the HTML
//!
//! All log text is HTML-escaped. The only attributes this crate writes are `class` values built
//! from parsed numbers (`term-fg-red`, `term-fg-256-208`; truecolour is mapped to the nearest of
//! the 256 colours, so there is no inline `style` and a strict Content-Security-Policy holds),
//! ids and links built from line numbers, and section names, which are restricted to
//! `[a-zA-Z0-9_.-]` by the marker grammar and escaped anyway.

mod cursor;
mod html;
mod render;
mod style;

pub use cursor::{Cursor, OpenSection};
pub use html::to_html;
pub use render::{Item, render};
pub use style::Style;

/// The live-log script for the job page: polls the trace URL and appends items into
/// `#job-log` (see the comment at the top of the file for the markup it expects).
pub const LOG_JS: &str = include_str!("../assets/log.js");

/// The job log's stylesheet: the dark terminal look, the 16 and 256 colour classes, sections.
pub const LOG_CSS: &str = include_str!("../assets/log.css");
