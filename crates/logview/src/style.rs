//! Text style: what ANSI SGR sequences (`ESC[…m`) set, and the CSS classes that show it.
//!
//! Colours are kept as indices into the xterm 256-colour palette: 0–15 are the 16 named
//! colours (themeable in `log.css`), 16–255 the colour cube and grey ramp. Truecolour
//! (`38;2;r;g;b`) is mapped to the nearest index in 16–255, so every style is a set of classes
//! and the page never needs inline `style` attributes.

use std::fmt::Write as _;

/// The style in effect at a point of the log: foreground, background and attributes. Opaque;
/// it travels inside a [`Cursor`](crate::Cursor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Style {
    pub(crate) fg: Option<u8>,
    pub(crate) bg: Option<u8>,
    pub(crate) flags: u8,
}

pub(crate) const BOLD: u8 = 1;
pub(crate) const FAINT: u8 = 2;
pub(crate) const ITALIC: u8 = 4;
pub(crate) const UNDERLINE: u8 = 8;
pub(crate) const ALL_FLAGS: u8 = BOLD | FAINT | ITALIC | UNDERLINE;

const NAMES: [&str; 8] = [
    "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
];

impl Style {
    pub(crate) fn is_default(&self) -> bool {
        *self == Style::default()
    }

    /// Applies the parameter bytes of one SGR sequence (what lies between `ESC[` and `m`).
    /// Unknown codes and malformed colour arguments are ignored, as terminals do.
    pub(crate) fn apply_sgr(&mut self, params: &[u8]) {
        // Private sequences (`ESC[?…m`, `ESC[>…m`) are not SGR.
        if params.first().is_some_and(|b| (b'<'..=b'?').contains(b)) {
            return;
        }
        let mut groups = params.split(|&b| b == b';');
        while let Some(group) = groups.next() {
            if group.contains(&b':') {
                self.apply_colon_group(group);
                continue;
            }
            let Some(code) = number(group) else { continue };
            match code {
                0 => *self = Style::default(),
                1 => self.flags |= BOLD,
                2 => self.flags |= FAINT,
                3 => self.flags |= ITALIC,
                4 => self.flags |= UNDERLINE,
                22 => self.flags &= !(BOLD | FAINT),
                23 => self.flags &= !ITALIC,
                24 => self.flags &= !UNDERLINE,
                30..=37 => self.fg = Some((code - 30) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((code - 40) as u8),
                49 => self.bg = None,
                90..=97 => self.fg = Some((code - 90 + 8) as u8),
                100..=107 => self.bg = Some((code - 100 + 8) as u8),
                38 | 48 => {
                    // `38;5;n` or `38;2;r;g;b`: the arguments are the following groups.
                    let colour = match groups.next().and_then(number) {
                        Some(5) => groups.next().and_then(number).and_then(palette_index),
                        Some(2) => {
                            let mut channel = || groups.next().and_then(number);
                            match (channel(), channel(), channel()) {
                                (Some(r), Some(g), Some(b)) => rgb_index(r, g, b),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    if let Some(colour) = colour {
                        self.set_extended(code, colour);
                    }
                }
                _ => {}
            }
        }
    }

    /// ITU T.416's colon form: `38:5:n`, `38:2:r:g:b`, `38:2:<colour space>:r:g:b`, and
    /// sub-parameters such as `4:3` (curly underline, shown as underline).
    fn apply_colon_group(&mut self, group: &[u8]) {
        let parts: Vec<Option<u32>> = group.split(|&b| b == b':').map(number).collect();
        match parts.as_slice() {
            [Some(code @ (38 | 48)), Some(5), Some(n)] => {
                if let Some(colour) = palette_index(*n) {
                    self.set_extended(*code, colour);
                }
            }
            [Some(code @ (38 | 48)), Some(2), rest @ ..] if rest.len() == 3 || rest.len() == 4 => {
                let rgb = &rest[rest.len() - 3..];
                if let [Some(r), Some(g), Some(b)] = rgb
                    && let Some(colour) = rgb_index(*r, *g, *b)
                {
                    self.set_extended(*code, colour);
                }
            }
            [Some(4), Some(0)] => self.flags &= !UNDERLINE,
            [Some(4), Some(_)] => self.flags |= UNDERLINE,
            _ => {}
        }
    }

    fn set_extended(&mut self, code: u32, colour: u8) {
        if code == 38 {
            self.fg = Some(colour);
        } else {
            self.bg = Some(colour);
        }
    }

    /// Writes the space-separated class list for this style (nothing for the default style).
    pub(crate) fn write_classes(&self, out: &mut String) {
        let mut first = true;
        let mut class = |out: &mut String, args: std::fmt::Arguments<'_>| {
            if !first {
                out.push(' ');
            }
            first = false;
            // Writing to a String cannot fail.
            let _ = out.write_fmt(args);
        };
        for (layer, colour) in [("fg", self.fg), ("bg", self.bg)] {
            match colour {
                Some(c @ 0..8) => class(out, format_args!("term-{layer}-{}", NAMES[c as usize])),
                Some(c @ 8..16) => {
                    class(
                        out,
                        format_args!("term-{layer}-l-{}", NAMES[c as usize - 8]),
                    );
                }
                Some(c) => class(out, format_args!("term-{layer}-256-{c}")),
                None => {}
            }
        }
        for (flag, name) in [
            (BOLD, "term-bold"),
            (FAINT, "term-faint"),
            (ITALIC, "term-italic"),
            (UNDERLINE, "term-underline"),
        ] {
            if self.flags & flag != 0 {
                class(out, format_args!("{name}"));
            }
        }
    }
}

/// An SGR parameter: ASCII digits, empty meaning 0 (`ESC[m` is `ESC[0m`). Absurdly long
/// numbers are rejected rather than wrapped.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0')),
    )
}

fn palette_index(n: u32) -> Option<u8> {
    u8::try_from(n).ok()
}

/// The six levels of each channel in xterm's 6×6×6 colour cube (indices 16–231).
const CUBE_LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];

/// The RGB value xterm gives a palette index in 16–255.
pub(crate) fn xterm_rgb(index: u8) -> (u8, u8, u8) {
    if index >= 232 {
        let v = 8 + 10 * (index - 232);
        return (v, v, v);
    }
    let i = index.saturating_sub(16);
    (
        CUBE_LEVELS[usize::from(i / 36)],
        CUBE_LEVELS[usize::from(i / 6 % 6)],
        CUBE_LEVELS[usize::from(i % 6)],
    )
}

/// The palette index (16–255) nearest to a truecolour value: the closer of the nearest cube
/// colour and the nearest grey, by squared distance.
fn rgb_index(r: u32, g: u32, b: u32) -> Option<u8> {
    let (r, g, b) = (
        u8::try_from(r).ok()?,
        u8::try_from(g).ok()?,
        u8::try_from(b).ok()?,
    );
    let level = |v: u8| -> u8 {
        // Nearest of CUBE_LEVELS: midpoints are 47, 115, 155, 195, 235.
        match v {
            0..48 => 0,
            48..115 => 1,
            _ => (v - 35) / 40,
        }
    };
    let cube = 16 + 36 * level(r) + 6 * level(g) + level(b);
    let average = (u16::from(r) + u16::from(g) + u16::from(b)) / 3;
    let grey = 232 + (average.saturating_sub(3) / 10).min(23) as u8;
    let distance = |index: u8| {
        let (cr, cg, cb) = xterm_rgb(index);
        [(r, cr), (g, cg), (b, cb)]
            .iter()
            .map(|&(a, c)| (i32::from(a) - i32::from(c)).pow(2))
            .sum::<i32>()
    };
    Some(if distance(grey) < distance(cube) {
        grey
    } else {
        cube
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(sgr: &str) -> String {
        let mut style = Style::default();
        style.apply_sgr(sgr.as_bytes());
        let mut out = String::new();
        style.write_classes(&mut out);
        out
    }

    #[test]
    fn truecolour_maps_to_the_nearest_palette_entry() {
        assert_eq!(classes("38;2;255;135;0"), "term-fg-256-208");
        assert_eq!(classes("38;2;0;0;0"), "term-fg-256-16");
        assert_eq!(classes("48;2;128;128;128"), "term-bg-256-244");
        assert_eq!(classes("38:2::255:255:255"), "term-fg-256-231");
        for index in 16..=255u8 {
            let (r, g, b) = xterm_rgb(index);
            let mut style = Style::default();
            style.apply_sgr(format!("38;2;{r};{g};{b}").as_bytes());
            let (nr, ng, nb) = xterm_rgb(style.fg.unwrap_or_default());
            assert_eq!((nr, ng, nb), (r, g, b), "index {index}");
        }
    }

    /// `log.css` carries a rule for every palette colour the renderer can emit, with xterm's
    /// value; this keeps the stylesheet and the renderer from drifting apart.
    #[test]
    fn the_stylesheet_has_every_256_colour_class() {
        for index in 16..=255u8 {
            let (r, g, b) = xterm_rgb(index);
            let fg = format!(".term-fg-256-{index} {{ color: #{r:02x}{g:02x}{b:02x}; }}");
            let bg =
                format!(".term-bg-256-{index} {{ background-color: #{r:02x}{g:02x}{b:02x}; }}");
            assert!(crate::LOG_CSS.contains(&fg), "missing {fg}");
            assert!(crate::LOG_CSS.contains(&bg), "missing {bg}");
        }
        for name in NAMES {
            for layer in ["fg", "bg"] {
                for light in ["", "l-"] {
                    let class = format!(".term-{layer}-{light}{name} ");
                    assert!(crate::LOG_CSS.contains(&class), "missing {class}");
                }
            }
        }
        for class in ["term-bold", "term-faint", "term-italic", "term-underline"] {
            assert!(
                crate::LOG_CSS.contains(&format!(".{class} ")),
                "missing {class}"
            );
        }
    }
}
