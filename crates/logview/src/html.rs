//! Items → the job page's nested markup, for the first page load. `assets/log.js` builds the
//! same markup for items that arrive later; keep the two in step.
//!
//! ```html
//! <details class="log-section" data-section="build" data-ended open>
//!   <summary class="log-line log-section-header" id="L3">
//!     <a class="log-line-number" href="#L3">3</a><span class="log-ts">10:11:12</span>
//!     <span class="log-text">…header…</span><span class="log-section-duration">00:03</span>
//!   </summary>
//!   <div class="log-line" id="L4"><a class="log-line-number" href="#L4">4</a>
//!     <span class="log-ts">10:11:13</span><span class="log-text">…spans…</span></div>
//! </details>
//! ```
//!
//! (Without the whitespace.) `open` is left out for `[collapsed=true]` sections; `data-ended`
//! marks sections whose end has been rendered, so the live log knows which sections still
//! receive lines.

use std::fmt::Write as _;

use crate::render::{Item, escape_into};

/// The whole log as nested HTML: sections become `<details>` elements, lines `<div>`s with a
/// line-number link. Sections still open at the end of `items` are closed in the markup but
/// carry no `data-ended`. A [`Item::SectionEnd`] for a section not opened within `items` is
/// ignored.
pub fn to_html(items: &[Item]) -> String {
    let ends = match_ends(items);
    let mut out = String::with_capacity(items.len() * 96);
    let mut open: Vec<&str> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match item {
            Item::Line {
                number,
                html,
                timestamp,
            } => {
                let _ = write!(out, "<div class=\"log-line\" id=\"L{number}\">");
                line_body(&mut out, *number, timestamp.as_deref(), html);
                out.push_str("</div>");
            }
            Item::SectionStart {
                name,
                header_html,
                number,
                collapsed,
                ..
            } => {
                out.push_str("<details class=\"log-section\" data-section=\"");
                escape_into(&mut out, name);
                out.push('"');
                let end = ends[index];
                if end.is_some() {
                    out.push_str(" data-ended");
                }
                if !collapsed {
                    out.push_str(" open");
                }
                let _ = write!(
                    out,
                    "><summary class=\"log-line log-section-header\" id=\"L{number}\">"
                );
                line_body(&mut out, *number, None, header_html);
                if let Some(Some(duration)) = end {
                    out.push_str("<span class=\"log-section-duration\">");
                    escape_into(&mut out, duration);
                    out.push_str("</span>");
                }
                out.push_str("</summary>");
                open.push(name);
            }
            Item::SectionEnd { name, .. } => {
                if let Some(depth) = open.iter().rposition(|open| open == name) {
                    for _ in depth..open.len() {
                        out.push_str("</details>");
                    }
                    open.truncate(depth);
                }
            }
        }
    }
    for _ in &open {
        out.push_str("</details>");
    }
    out
}

fn line_body(out: &mut String, number: u64, timestamp: Option<&str>, html: &str) {
    let _ = write!(
        out,
        "<a class=\"log-line-number\" href=\"#L{number}\">{number}</a>"
    );
    if let Some(timestamp) = timestamp {
        out.push_str("<span class=\"log-ts\">");
        escape_into(out, timestamp);
        out.push_str("</span>");
    }
    // `html` is this crate's output: already escaped.
    out.push_str("<span class=\"log-text\">");
    out.push_str(html);
    out.push_str("</span>");
}

/// For each item, if it is a section start that ends within `items`: `Some(duration)`.
fn match_ends(items: &[Item]) -> Vec<Option<Option<&str>>> {
    let mut ends = vec![None; items.len()];
    let mut open: Vec<(usize, &str)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match item {
            Item::SectionStart { name, .. } => open.push((index, name)),
            Item::SectionEnd { name, duration } => {
                if let Some(depth) = open.iter().rposition(|(_, open)| open == name) {
                    for &(start, _) in &open[depth + 1..] {
                        ends[start] = Some(None);
                    }
                    ends[open[depth].0] = Some(duration.as_deref());
                    open.truncate(depth);
                }
            }
            Item::Line { .. } => {}
        }
    }
    ends
}
