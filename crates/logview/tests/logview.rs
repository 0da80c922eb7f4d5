//! What a job page shows for what GitLab Runner writes. Each test names the behaviour as GitLab's
//! docs describe it ("ANSI colours", "collapsible sections", "timestamps") and checks the items
//! or HTML that come out.

use pipewright_logview::{Cursor, Item, render, to_html};
use proptest::prelude::*;

fn items(log: &[u8]) -> Vec<Item> {
    render(log, &Cursor::default(), true).0
}

/// The `html` of each line, ignoring sections.
fn lines(log: &[u8]) -> Vec<String> {
    items(log)
        .into_iter()
        .filter_map(|item| match item {
            Item::Line { html, .. } => Some(html),
            _ => None,
        })
        .collect()
}

fn line(number: u64, html: &str) -> Item {
    Item::Line {
        number,
        html: html.into(),
        timestamp: None,
    }
}

fn start(name: &str, header_html: &str, number: u64, started_at: i64, collapsed: bool) -> Item {
    Item::SectionStart {
        name: name.into(),
        header_html: header_html.into(),
        number,
        started_at: Some(started_at),
        collapsed,
    }
}

fn end(name: &str, duration: &str) -> Item {
    Item::SectionEnd {
        name: name.into(),
        duration: Some(duration.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// ANSI colours and styles
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_text_is_one_line_per_newline() {
    assert_eq!(
        items(b"Running with gitlab-runner 17.0\n\non docker\n"),
        vec![
            line(1, "Running with gitlab-runner 17.0"),
            line(2, ""),
            line(3, "on docker"),
        ]
    );
}

#[test]
fn foreground_colours_and_reset() {
    assert_eq!(
        lines(b"\x1b[31mred\x1b[0m plain \x1b[32mgreen\x1b[m\n"),
        [r#"<span class="term-fg-red">red</span> plain <span class="term-fg-green">green</span>"#]
    );
}

#[test]
fn light_and_background_colours() {
    assert_eq!(
        lines(b"\x1b[94;41mx\x1b[39my\x1b[49;107mz\n"),
        [concat!(
            r#"<span class="term-fg-l-blue term-bg-red">x</span>"#,
            r#"<span class="term-bg-red">y</span>"#,
            r#"<span class="term-bg-l-white">z</span>"#,
        )]
    );
}

#[test]
fn bold_faint_italic_underline_and_their_resets() {
    assert_eq!(
        lines(b"\x1b[1;3;4mall\x1b[22mnot bold\x1b[23;24m\x1b[2mfaint\x1b[22mplain\n"),
        [concat!(
            r#"<span class="term-bold term-italic term-underline">all</span>"#,
            r#"<span class="term-italic term-underline">not bold</span>"#,
            r#"<span class="term-faint">faint</span>plain"#,
        )]
    );
}

#[test]
fn runner_style_header_colour_with_bold_and_odd_reset() {
    // GitLab Runner writes `\e[36;1m…\e[0;m`.
    assert_eq!(
        lines(b"\x1b[0K\x1b[36;1mExecuting \"step_script\" stage\x1b[0;m\n"),
        [r#"<span class="term-fg-cyan term-bold">Executing &quot;step_script&quot; stage</span>"#]
    );
}

#[test]
fn styles_carry_across_lines_until_reset() {
    assert_eq!(
        lines(b"\x1b[33mone\ntwo\x1b[0m\nthree\n"),
        [
            r#"<span class="term-fg-yellow">one</span>"#,
            r#"<span class="term-fg-yellow">two</span>"#,
            "three"
        ]
    );
}

#[test]
fn colours_256_and_truecolour() {
    assert_eq!(
        lines(b"\x1b[38;5;208mo\x1b[48;5;1mr\x1b[0m\x1b[38;2;255;135;0mt\x1b[38:5:12mc\n"),
        [concat!(
            r#"<span class="term-fg-256-208">o</span>"#,
            r#"<span class="term-fg-256-208 term-bg-red">r</span>"#,
            // Truecolour becomes the nearest palette entry: classes only, no inline style.
            r#"<span class="term-fg-256-208">t</span>"#,
            r#"<span class="term-fg-l-blue">c</span>"#,
        )]
    );
}

#[test]
fn malformed_colour_arguments_are_ignored() {
    assert_eq!(
        lines(b"\x1b[38;5;999ma\x1b[38;2;1;2mb\x1b[31;99999999999999mc\n"),
        [r#"ab<span class="term-fg-red">c</span>"#]
    );
}

#[test]
fn other_escape_sequences_are_dropped() {
    let log = b"\x1b[0Kerase\x1b[1Aup\x1b[?25lcursor\x1b]8;;https://x.example/\x07link\x1b]8;;\x1b\\ \x1b(Bcharset\x1b7\n";
    assert_eq!(lines(log), ["eraseupcursorlink charset"]);
}

#[test]
fn lone_escape_and_partial_sequence_at_the_very_end_are_dropped() {
    // `ESC b` would be a two-byte sequence (dropped whole); before `é` the ESC stands alone.
    assert_eq!(lines(b"a\x1b\xc3\xa9\x1bb\nend\x1b[3"), ["a\u{e9}", "end"]);
}

#[test]
fn control_characters_are_dropped_and_tabs_kept() {
    assert_eq!(lines(b"a\x07b\x00c\td\x08\n"), ["abc\td"]);
}

// ---------------------------------------------------------------------------------------------
// Escaping
// ---------------------------------------------------------------------------------------------

#[test]
fn markup_in_the_log_is_escaped() {
    assert_eq!(
        lines(b"<script>alert('x')</script> & \"onmouseover=alert(1)\n"),
        ["&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;onmouseover=alert(1)"]
    );
}

#[test]
fn nothing_in_an_escape_sequence_reaches_an_attribute() {
    let log = b"\x1b[31;\"onmouseover=alert(1)mx\x1b[38;5;1\"><script>m y\n";
    let html = to_html(&items(log));
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("\"onmouseover"), "{html}");
    // Every attribute value is one this crate made.
    for attribute in html.split(" class=\"").skip(1) {
        let value = &attribute[..attribute.find('"').unwrap_or(0)];
        assert!(
            value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' '),
            "{value}"
        );
    }
}

#[test]
fn section_headers_and_names_are_escaped() {
    let log =
        b"section_start:1:x[collapsed=\"><img]\r\x1b[0K<b>header</b>\nsection_end:2:x\r\x1b[0K\n";
    let html = to_html(&items(log));
    assert!(html.contains("&lt;b&gt;header&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<img"), "{html}");
}

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    assert_eq!(
        lines(b"caf\xc3\xa9 \xff\xfe ok \xe2\x82\n"),
        ["caf\u{e9} \u{fffd}\u{fffd} ok \u{fffd}"]
    );
}

// ---------------------------------------------------------------------------------------------
// Line endings and \r
// ---------------------------------------------------------------------------------------------

#[test]
fn crlf_is_a_newline() {
    assert_eq!(lines(b"one\r\ntwo\r\n\r\nfour"), ["one", "two", "", "four"]);
}

#[test]
fn carriage_return_overwrites_the_line_like_a_progress_bar() {
    assert_eq!(
        lines(b"Downloading 10%\rDownloading 55%\rDownloading 100%\r\ndone\n"),
        ["Downloading 100%", "done"]
    );
}

#[test]
fn overwritten_text_still_sets_the_style() {
    assert_eq!(
        lines(b"\x1b[32mold\rnew\n"),
        [r#"<span class="term-fg-green">new</span>"#]
    );
}

#[test]
fn a_final_line_without_newline_is_rendered_when_complete() {
    assert_eq!(lines(b"a\nb"), ["a", "b"]);
    let (items, cursor) = render(b"a\nb", &Cursor::default(), false);
    assert_eq!(items, vec![line(1, "a")]);
    assert_eq!(cursor.offset, 2);
}

// ---------------------------------------------------------------------------------------------
// Collapsible sections
// ---------------------------------------------------------------------------------------------

#[test]
fn runner_sections_with_headers_and_durations() {
    let log = concat!(
        "\x1b[0Ksection_start:1709633470:prepare_executor\r\x1b[0K\x1b[0K\x1b[36;1mPreparing the \"docker\" executor\x1b[0;m\n",
        "Using Docker executor\n",
        "\x1b[0Ksection_end:1709633473:prepare_executor\r\x1b[0K\x1b[0Ksection_start:1709633473:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting \"step_script\" stage\x1b[0;m\n",
        "$ make\n",
        "\x1b[0Ksection_end:1709633548:step_script\r\x1b[0K\x1b[0K\x1b[32;1mJob succeeded\x1b[0;m\n",
    );
    assert_eq!(
        items(log.as_bytes()),
        vec![
            start(
                "prepare_executor",
                r#"<span class="term-fg-cyan term-bold">Preparing the &quot;docker&quot; executor</span>"#,
                1,
                1709633470,
                false
            ),
            line(2, "Using Docker executor"),
            end("prepare_executor", "00:03"),
            start(
                "step_script",
                r#"<span class="term-fg-cyan term-bold">Executing &quot;step_script&quot; stage</span>"#,
                3,
                1709633473,
                false
            ),
            line(4, "$ make"),
            end("step_script", "01:15"),
            line(
                5,
                r#"<span class="term-fg-green term-bold">Job succeeded</span>"#
            ),
        ]
    );
}

#[test]
fn custom_sections_nest_and_collapse() {
    // As in GitLab's docs: `echo -e "\e[0Ksection_start:`date +%s`:my_first_section[collapsed=true]\r\e[0KHeader"`.
    let log = concat!(
        "\x1b[0Ksection_start:100:outer[collapsed=true]\r\x1b[0KOuter\n",
        "\x1b[0Ksection_start:101:inner.1\r\x1b[0KInner\n",
        "work\n",
        "\x1b[0Ksection_end:104:inner.1\r\x1b[0K\n",
        "\x1b[0Ksection_end:4000:outer\r\x1b[0K\n",
        "after\n",
    );
    assert_eq!(
        items(log.as_bytes()),
        vec![
            start("outer", "Outer", 1, 100, true),
            start("inner.1", "Inner", 2, 101, false),
            line(3, "work"),
            end("inner.1", "00:03"),
            end("outer", "65:00"),
            line(4, "after"),
        ]
    );
    let html = to_html(&items(log.as_bytes()));
    assert!(
        html.starts_with(
            r#"<details class="log-section" data-section="outer" data-ended><summary"#
        ),
        "collapsed: no `open`; {html}"
    );
    assert!(
        html.contains(r#"<details class="log-section" data-section="inner.1" data-ended open>"#),
        "{html}"
    );
    assert!(html.ends_with(r##"</details><div class="log-line" id="L4"><a class="log-line-number" href="#L4">4</a><span class="log-text">after</span></div>"##), "{html}");
}

#[test]
fn ending_an_outer_section_ends_the_ones_inside_it() {
    let log =
        b"section_start:1:a\r\x1b[0KA\nsection_start:2:b\r\x1b[0KB\nsection_end:5:a\r\x1b[0K\n";
    assert_eq!(
        items(log),
        vec![
            start("a", "A", 1, 1, false),
            start("b", "B", 2, 2, false),
            end("b", "00:03"),
            end("a", "00:04"),
        ]
    );
}

#[test]
fn an_end_for_a_section_that_is_not_open_is_ignored() {
    assert_eq!(
        items(b"before section_end:1:nope\r\x1b[0Kafter\n"),
        vec![line(1, "before after")]
    );
}

#[test]
fn an_unclosed_section_stays_open() {
    let (items, cursor) = render(
        b"section_start:7:build\r\x1b[0KBuild\nstill going\n",
        &Cursor::default(),
        false,
    );
    assert_eq!(
        items,
        vec![start("build", "Build", 1, 7, false), line(2, "still going")]
    );
    assert_eq!(cursor.sections.len(), 1);
    assert_eq!(cursor.sections[0].name, "build");
    let html = to_html(&items);
    assert!(
        html.starts_with(r#"<details class="log-section" data-section="build" open>"#),
        "not data-ended: {html}"
    );
    assert!(html.ends_with("</div></details>"), "{html}");
}

#[test]
fn a_section_with_an_empty_header_and_text_after_its_end() {
    assert_eq!(
        items(b"x\x1b[0Ksection_start:1:s\r\x1b[0K\nsection_end:61:s\r\x1b[0Kafter\n"),
        vec![
            line(1, "x"),
            start("s", "", 2, 1, false),
            end("s", "01:00"),
            line(3, "after"),
        ]
    );
}

#[test]
fn a_marker_needs_its_erase_sequence() {
    // Without `\r\e[0K` it is text, and the `\r` overwrites it.
    assert_eq!(lines(b"section_start:1:s\rHeader\n"), ["Header"]);
}

#[test]
fn sections_deeper_than_32_are_ignored() {
    let mut log = String::new();
    for depth in 0..40 {
        log.push_str(&format!("section_start:1:s{depth}\r\x1b[0KH{depth}\n"));
    }
    let (items, cursor) = render(log.as_bytes(), &Cursor::default(), true);
    let starts = items
        .iter()
        .filter(|i| matches!(i, Item::SectionStart { .. }))
        .count();
    assert_eq!(starts, 32);
    assert_eq!(items.len(), 40, "the other headers are plain lines");
    assert_eq!(cursor.sections.len(), 32);
    assert!(Cursor::decode(&cursor.encode()).is_some());
}

#[test]
fn section_names_longer_than_100_are_ignored() {
    let name = "n".repeat(101);
    let log = format!("section_start:1:{name}\r\x1b[0KHeader\nsection_end:2:{name}\r\x1b[0K\n");
    assert_eq!(items(log.as_bytes()), vec![line(1, "Header")]);
}

// ---------------------------------------------------------------------------------------------
// Timestamps (FF_TIMESTAMPS)
// ---------------------------------------------------------------------------------------------

fn stamped(number: u64, html: &str, timestamp: &str) -> Item {
    Item::Line {
        number,
        html: html.into(),
        timestamp: Some(timestamp.into()),
    }
}

#[test]
fn runner_timestamps_are_parsed_off_each_line() {
    let log = concat!(
        "2024-03-05T10:11:12.123456Z 00O Running with gitlab-runner\n",
        "2024-03-05T10:11:13.000001Z 01E \x1b[31merror\x1b[0m\n",
        "no timestamp here\n",
    );
    assert_eq!(
        items(log.as_bytes()),
        vec![
            stamped(1, "Running with gitlab-runner", "10:11:12"),
            stamped(2, r#"<span class="term-fg-red">error</span>"#, "10:11:13"),
            line(3, "no timestamp here"),
        ]
    );
}

#[test]
fn timestamped_continuations_join_the_previous_line() {
    let log = concat!(
        "2024-03-05T10:11:12.123456Z 00O first \x1b[3\n",
        "2024-03-05T10:11:14.000000Z 00O+2mhalf\n",
        "2024-03-05T10:11:15.000000Z 00O+ and more\n",
        "2024-03-05T10:11:16.000000Z 00O second\n",
    );
    assert_eq!(
        items(log.as_bytes()),
        vec![
            stamped(
                1,
                r#"first <span class="term-fg-green">half and more</span>"#,
                "10:11:12"
            ),
            stamped(
                2,
                r#"<span class="term-fg-green">second</span>"#,
                "10:11:16"
            ),
        ]
    );
}

#[test]
fn timestamped_section_markers() {
    let log = concat!(
        "2024-03-05T10:11:12.000000Z 00O section_start:1709633472:get_sources\r\x1b[0KGetting source\n",
        "2024-03-05T10:11:13.000000Z 00O Fetching\n",
        "2024-03-05T10:11:14.000000Z 00O section_end:1709633474:get_sources\r\x1b[0K\n",
    );
    assert_eq!(
        items(log.as_bytes()),
        vec![
            start("get_sources", "Getting source", 1, 1709633472, false),
            stamped(2, "Fetching", "10:11:13"),
            end("get_sources", "00:02"),
        ]
    );
}

#[test]
fn a_running_timestamped_line_waits_for_the_next_line_header() {
    let log = b"2024-03-05T10:11:12.000000Z 00O one\n2024-03-05T10:11";
    let (items, cursor) = render(log, &Cursor::default(), false);
    assert_eq!(items, vec![]);
    assert_eq!(cursor.offset, 0);
    // Once the next line's header shows it is a new line, the first is final.
    let log = b"2024-03-05T10:11:12.000000Z 00O one\n2024-03-05T10:11:13.000000Z 00O ";
    let (items, cursor) = render(log, &Cursor::default(), false);
    assert_eq!(items, vec![stamped(1, "one", "10:11:12")]);
    assert_eq!(cursor.offset, 36);
}

// ---------------------------------------------------------------------------------------------
// Incremental rendering
// ---------------------------------------------------------------------------------------------

/// A log with every construct that can be cut: escape sequences, multi-byte characters,
/// section markers, `\r\n`, progress bars, timestamps and their continuations.
const SAMPLE: &[u8] = b"\x1b[0KRunning with gitlab-runner 17.0 (\xc3\xa9t\xc3\xa9 \xf0\x9f\x9a\x80)\r\n\
\x1b[0Ksection_start:1709633470:prepare[collapsed=true]\r\x1b[0K\x1b[0K\x1b[36;1mPreparing\x1b[0;m\n\
Pulling 10%\rPulling 90%\rPulling 100%\r\n\
\x1b[38;5;208morange\x1b[48;2;10;20;30m on navy\x1b[0m <b>&amp;</b>\n\
\x1b[0Ksection_start:1709633471:inner\r\x1b[0Kinner header\n\
bad \xff utf8\n\
section_end:1:never_opened\r\x1b[0K\n\
\x1b[0Ksection_end:1709633479:inner\r\x1b[0K\x1b[0Ksection_end:1709633480:prepare\r\x1b[0K\x1b[32;1mdone\x1b[0;m\n\
\n\
2024-03-05T10:11:12.123456Z 00O stamped \xe2\x9c\n\
2024-03-05T10:11:13.000000Z 00O+\x93 joined\n\
2024-03-05T10:11:14.000000Z 01E section_start:1709633490:late\r\x1b[0Klate header\n\
2024-03-05T10:11:15.000000Z 01E \x1b]8;;http://x\x07link\x1b]8;;\x07 \x1b[1mbold\n\
tail without newline \x1b[0m\x1b";

/// Renders `log` in polls that each see one more prefix of it (`cuts`, ascending), with
/// `complete = false`, then the rest with `complete = true`; the cursor travels encoded, as it
/// does through a page.
fn render_in_polls(log: &[u8], cuts: &[usize]) -> Vec<Item> {
    let mut all = Vec::new();
    let mut cursor = Cursor::default();
    for &cut in cuts {
        let from = cursor.offset as usize;
        if cut < from {
            continue;
        }
        let (items, next) = render(&log[from..cut], &cursor, false);
        all.extend(items);
        cursor = Cursor::decode(&next.encode()).expect("own cursor decodes");
        assert_eq!(cursor, next);
    }
    let (items, _) = render(&log[cursor.offset as usize..], &cursor, true);
    all.extend(items);
    all
}

#[test]
fn every_split_point_gives_the_same_items_as_one_pass() {
    let whole = items(SAMPLE);
    assert!(whole.len() > 12, "{whole:#?}");
    for cut in 0..=SAMPLE.len() {
        assert_eq!(render_in_polls(SAMPLE, &[cut]), whole, "cut at byte {cut}");
    }
}

#[test]
fn a_log_growing_byte_by_byte_gives_the_same_items_as_one_pass() {
    let cuts: Vec<usize> = (0..=SAMPLE.len()).collect();
    assert_eq!(render_in_polls(SAMPLE, &cuts), items(SAMPLE));
}

#[test]
fn the_cursor_after_a_complete_render_points_at_the_end() {
    let (_, cursor) = render(SAMPLE, &Cursor::default(), true);
    assert_eq!(cursor.offset, SAMPLE.len() as u64);
    let (items, again) = render(b"", &cursor, true);
    assert!(items.is_empty());
    assert_eq!(again, cursor);
}

proptest! {
    #[test]
    fn any_polling_schedule_gives_the_same_items(mut cuts in proptest::collection::vec(0..=SAMPLE.len(), 0..6)) {
        cuts.sort_unstable();
        prop_assert_eq!(render_in_polls(SAMPLE, &cuts), items(SAMPLE));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_consistently(
        log in proptest::collection::vec(
            prop_oneof![
                Just(b'\x1b'), Just(b'['), Just(b'\r'), Just(b'\n'), Just(b'm'), Just(b';'),
                Just(b'3'), Just(b'1'), Just(b':'), Just(b'+'), Just(0xc3), Just(0xa9), any::<u8>(),
            ],
            0..200,
        ),
        cut in 0usize..200,
    ) {
        let cut = cut.min(log.len());
        let whole = items(&log);
        prop_assert_eq!(render_in_polls(&log, &[cut]), whole.clone());
        let html = to_html(&whole);
        prop_assert!(!html.contains("<script") && !html.contains("\x1b"));
    }
}

// ---------------------------------------------------------------------------------------------
// The cursor
// ---------------------------------------------------------------------------------------------

#[test]
fn cursor_round_trips_and_is_url_safe() {
    let (_, cursor) = render(SAMPLE, &Cursor::default(), false);
    assert!(!cursor.sections.is_empty());
    let encoded = cursor.encode();
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
        "{encoded}"
    );
    assert_eq!(Cursor::decode(&encoded), Some(cursor));
    assert_eq!(
        Cursor::decode(&Cursor::default().encode()),
        Some(Cursor::default())
    );
    assert_eq!(Cursor::default().encode(), "1~0~0~0~~");
}

#[test]
fn cursor_decode_rejects_garbage() {
    let too_many = format!("1~0~0~0~~{}", "~s~1".repeat(33));
    let long_name = format!("1~0~0~0~~~{}~1", "n".repeat(101));
    let huge = "9".repeat(5000);
    for garbage in [
        "",
        "1",
        "2~0~0~0~~",
        "1~0~0~0~",
        "1~0~0~0~~~",
        "1~-1~0~0~~",
        "1~+1~0~0~~",
        "1~01~0~0~~",
        "1~18446744073709551616~0~0~~",
        "1~0~0~16~~",
        "1~0~0~0~256~",
        "1~0~0~0~~~bad/name~1",
        "1~0~0~0~~~ok~-5",
        "1~0~0~0~~~ok~9223372036854775808",
        "1~0~0~0~~~~1",
        "1~0~0~0~~~ok",
        "1~0~0~0~~~ok~1~",
        "1~0~0~0~~~ok~1 ",
        "1~0~0~0~~~\u{e9}~1",
        too_many.as_str(),
        long_name.as_str(),
        huge.as_str(),
    ] {
        assert_eq!(Cursor::decode(garbage), None, "{garbage:?}");
    }
    let exactly_32 = format!("1~0~0~0~~{}", "~s~1".repeat(32));
    assert!(Cursor::decode(&exactly_32).is_some());
}

proptest! {
    #[test]
    fn cursor_decode_never_panics(s in "\\PC{0,80}") {
        if let Some(cursor) = Cursor::decode(&s) {
            prop_assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
    }

    #[test]
    fn cursor_decode_never_panics_on_near_misses(s in "[0-9~a-z.+-]{0,40}") {
        let _ = Cursor::decode(&format!("1~{s}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------------

#[test]
fn lines_have_numbers_anchors_and_timestamps() {
    let html = to_html(&items(b"2024-03-05T10:11:12.123456Z 00O hi\n"));
    assert_eq!(
        html,
        r##"<div class="log-line" id="L1"><a class="log-line-number" href="#L1">1</a><span class="log-ts">10:11:12</span><span class="log-text">hi</span></div>"##
    );
}

#[test]
fn a_section_summary_carries_header_and_duration() {
    let html = to_html(&items(
        b"section_start:10:build\r\x1b[0K\x1b[1mBuild\x1b[0m\nsection_end:13:build\r\x1b[0K\n",
    ));
    assert_eq!(
        html,
        concat!(
            r#"<details class="log-section" data-section="build" data-ended open>"#,
            r##"<summary class="log-line log-section-header" id="L1"><a class="log-line-number" href="#L1">1</a>"##,
            r#"<span class="log-text"><span class="term-bold">Build</span></span>"#,
            r#"<span class="log-section-duration">00:03</span></summary></details>"#,
        )
    );
}

#[test]
fn a_later_poll_s_section_end_without_its_start_is_ignored_by_to_html() {
    assert_eq!(
        to_html(&[end("gone", "00:01"), line(9, "x")])
            .matches("details")
            .count(),
        0
    );
}

#[test]
fn items_serialize_for_the_live_log() {
    let json = serde_json::to_value(items(
        b"section_start:1:a[collapsed=true]\r\x1b[0KA\nx\nsection_end:2:a\r\x1b[0K\n",
    ))
    .expect("serializes");
    assert_eq!(
        json,
        serde_json::json!([
            {"type": "section_start", "name": "a", "header_html": "A", "number": 1, "started_at": 1, "collapsed": true},
            {"type": "line", "number": 2, "html": "x", "timestamp": null},
            {"type": "section_end", "name": "a", "duration": "00:01"},
        ])
    );
}

#[test]
fn assets_are_exposed() {
    assert!(pipewright_logview::LOG_JS.contains("job-log"));
    assert!(pipewright_logview::LOG_CSS.contains("#1f1f1f"));
}

// ---------------------------------------------------------------------------------------------
// Size
// ---------------------------------------------------------------------------------------------

/// A 4 MiB log renders in one pass; linear time keeps this well under a second in release
/// (no timing assertion: the test just has to finish).
#[test]
fn a_four_mebibyte_log_renders() {
    let mut log = Vec::with_capacity(4 << 20);
    let mut n = 0u64;
    while log.len() < 4 << 20 {
        n += 1;
        if n % 500 == 1 {
            log.extend_from_slice(format!("section_start:{n}:s{n}\r\x1b[0KStep {n}\n").as_bytes());
        }
        log.extend_from_slice(
            format!("\x1b[32mok\x1b[0m line {n} <tag> & \x1b[38;5;208mprogress\r50%\r100%\r\n")
                .as_bytes(),
        );
        if n.is_multiple_of(500) {
            log.extend_from_slice(
                format!("section_end:{}:s{}\r\x1b[0K\n", n + 3, n - 499).as_bytes(),
            );
        }
    }
    // One long line too: 1 MiB without a newline, full of near-miss markers.
    log.extend(b"section_start:1:a[".repeat(60_000));
    let (items, cursor) = render(&log, &Cursor::default(), true);
    assert!(items.len() > 50_000);
    assert_eq!(cursor.offset, log.len() as u64);
    assert!(to_html(&items).len() > 4 << 20);
}

#[test]
fn runner_timestamps_before_section_markers() {
    // GitLab Runner with FF_TIMESTAMPS stamps the marker lines too.
    let log = b"2026-11-30T10:11:12.000001Z 00O section_start:1700000000:step_script\r\x1b[0K\x1b[32;1mRunning\x1b[0;m\n2026-11-30T10:11:13.000001Z 00O $ make\n2026-11-30T10:11:14.000001Z 00O section_end:1700000002:step_script\r\x1b[0K\n";
    let (items, _) = render(log, &Cursor::default(), true);
    assert!(
        matches!(&items[0], Item::SectionStart { name, .. } if name == "step_script"),
        "{items:?}"
    );
    assert!(
        matches!(&items[1], Item::Line { timestamp: Some(t), html, .. } if t == "10:11:13" && html.contains("$ make")),
        "{items:?}"
    );
    assert!(
        matches!(&items[2], Item::SectionEnd { duration: Some(d), .. } if d == "00:02"),
        "{items:?}"
    );
}
