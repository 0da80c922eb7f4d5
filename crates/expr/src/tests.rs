//! The language as GitLab's docs describe it, one table per concern.

use std::collections::HashMap;

use super::*;

fn vars() -> HashMap<String, String> {
    [
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_COMMIT_TAG", "v1.2.0"),
        ("CI_PIPELINE_SOURCE", "trigger"),
        ("CI_COMMIT_REF_NAME", "feature/login"),
        ("CI_COMMIT_MESSAGE", "Fix the build\n\n[deploy]"),
        ("UPLOAD_TO_S3", "true"),
        ("EMPTY", ""),
        ("BLANK", "   "),
        ("PATTERN", "/^feature/"),
        ("PATTERN_I", "/^FEATURE/i"),
        ("PLAIN", "login"),
        ("A", "a"),
        ("B", "b"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn eval(src: &str) -> bool {
    match Expression::parse(src) {
        Ok(e) => e.evaluate(&vars()),
        Err(err) => panic!("{src:?} should parse: {err}"),
    }
}

#[test]
fn examples_from_gitlabs_docs() {
    let cases = [
        ("$CI_COMMIT_BRANCH == \"main\"", true),
        ("$CI_COMMIT_BRANCH == 'main'", true),
        ("$CI_COMMIT_BRANCH != \"main\"", false),
        ("$CI_COMMIT_TAG", true),
        ("$CI_MERGE_REQUEST_ID", false),
        ("$CI_PIPELINE_SOURCE == \"trigger\"", true),
        ("$CI_PIPELINE_SOURCE == \"push\"", false),
        ("$UPLOAD_TO_S3", true),
        ("$CI_COMMIT_REF_NAME =~ /^feature/", true),
        ("$CI_COMMIT_REF_NAME !~ /^feature/", false),
        ("$CI_COMMIT_REF_NAME =~ /^FEATURE/i", true),
        ("$CI_COMMIT_REF_NAME =~ /^FEATURE/", false),
        ("$CI_COMMIT_MESSAGE =~ /\\[deploy\\]/", true),
        ("$CI_COMMIT_REF_NAME =~ /feature\\/login/", true),
        (
            "$CI_COMMIT_BRANCH == \"main\" && $CI_PIPELINE_SOURCE == \"trigger\"",
            true,
        ),
        (
            "$CI_COMMIT_BRANCH == \"dev\" || $CI_PIPELINE_SOURCE == \"trigger\"",
            true,
        ),
        (
            "($CI_COMMIT_BRANCH == \"dev\" || $CI_COMMIT_BRANCH == \"main\") && $UPLOAD_TO_S3",
            true,
        ),
    ];
    for (src, expected) in cases {
        assert_eq!(eval(src), expected, "{src}");
    }
}

#[test]
fn null_is_not_empty() {
    let cases = [
        ("$UNDEFINED == null", true),
        ("$EMPTY == null", false),
        ("$EMPTY == \"\"", true),
        ("$UNDEFINED == \"\"", false),
        ("$UNDEFINED != null", false),
        ("$EMPTY", false),
        ("$BLANK", false),
        ("$UNDEFINED", false),
        ("null", false),
        ("\"\"", false),
        ("\"x\"", true),
        ("null == null", true),
    ];
    for (src, expected) in cases {
        assert_eq!(eval(src), expected, "{src}");
    }
}

#[test]
fn precedence_and_associativity() {
    let cases = [
        // && binds tighter than ||.
        ("$A == \"a\" || $A == \"x\" && $B == \"x\"", true),
        ("($A == \"a\" || $A == \"x\") && $B == \"x\"", false),
        // Comparisons bind tighter than &&.
        ("$A == \"a\" && $B == \"b\"", true),
        // ! binds tightest: `!$A == "false"` is `(!$A) == "false"`.
        ("!$A == \"false\"", true),
        ("\"false\" == !$A", true),
        ("!$UNDEFINED", true),
        ("!$EMPTY", true),
        ("!($A == \"a\")", false),
        ("!!$A", true),
        ("($A) == \"a\"", true),
        ("$A == ($A)", true),
        // && and || return operands (Ruby): "" is truthy inside, then the result decides.
        ("$EMPTY && $A", true),
        ("$UNDEFINED && $A", false),
        ("$UNDEFINED || $EMPTY", false),
        ("$UNDEFINED || $A", true),
    ];
    for (src, expected) in cases {
        assert_eq!(eval(src), expected, "{src}");
    }
}

#[test]
fn regexes_from_variables() {
    let cases = [
        ("$CI_COMMIT_REF_NAME =~ $PATTERN", true),
        ("$CI_COMMIT_REF_NAME =~ $PATTERN_I", true),
        ("$CI_COMMIT_REF_NAME !~ $PATTERN", false),
        // Not a /pattern/: GitLab searches for the text.
        ("$CI_COMMIT_REF_NAME =~ $PLAIN", true),
        // A missing pattern never matches.
        ("$CI_COMMIT_REF_NAME =~ $UNDEFINED", false),
        ("$CI_COMMIT_REF_NAME !~ $UNDEFINED", true),
        // A missing left side is matched as "".
        ("$UNDEFINED =~ /^$/", true),
    ];
    for (src, expected) in cases {
        assert_eq!(eval(src), expected, "{src}");
    }
}

#[test]
fn syntax_errors_have_gitlabs_messages() {
    let cases = [
        ("", "Empty parse tree"),
        ("$A ==", "Unreachable nodes in parse tree"),
        ("== $A", "Unreachable nodes in parse tree"),
        ("$A $B", "Unreachable nodes in parse tree"),
        ("($A == \"a\"", "Unmatched parenthesis"),
        ("$A == \"a\")", "Unmatched parenthesis"),
        ("()", "Empty parse tree"),
        ("$A = \"a\"", "Unknown lexeme found!"),
        ("\"unterminated", "Unknown lexeme found!"),
        ("$", "Unknown lexeme found!"),
        // GitLab's variables are `$NAME` only (lexeme/variable.rb): braces are not a variable.
        ("${CI_COMMIT_BRANCH} == \"main\"", "Unknown lexeme found!"),
        ("$A =~ /unterminated", "Unknown lexeme found!"),
        ("$A =~ /(/", "Invalid regular expression"),
        ("$A =~ /a/q", "Invalid regular expression flags"),
        ("foo", "Unknown lexeme found!"),
    ];
    for (src, message) in cases {
        match Expression::parse(src) {
            Ok(_) => panic!("{src:?} should not parse"),
            Err(e) => assert_eq!(e.message(), message, "{src}"),
        }
    }
}

#[test]
fn at_most_100_tokens() {
    let ok = vec!["$A"; 50].join(" && ");
    assert_eq!(ok.split(' ').count(), 99);
    assert!(Expression::parse(&ok).is_ok());
    let too_many = vec!["$A"; 51].join(" && ");
    assert_eq!(
        Expression::parse(&too_many).err().map(|e| e.to_string()),
        Some("Too many tokens!".into())
    );
}

#[test]
fn variable_names_are_reported_once_in_order() {
    let e = Expression::parse("$B == $A || $B =~ /x/").expect("parse");
    assert_eq!(e.variable_names(), vec!["B", "A"]);
    assert_eq!(e.source(), "$B == $A || $B =~ /x/");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parsing_never_panics(src in ".{0,200}") {
            let _ = Expression::parse(&src);
        }

        #[test]
        fn evaluation_never_panics(src in "[$A-Z_ ()=!~&|\"'/a-z.*^+?]{0,120}", value in ".{0,20}") {
            if let Ok(e) = Expression::parse(&src) {
                let mut v = std::collections::HashMap::new();
                v.insert("A".to_string(), value);
                let _ = e.evaluate(&v);
            }
        }

        #[test]
        fn equality_is_symmetric(a in "[a-z]{0,5}", b in "[a-z]{0,5}") {
            let mut v = std::collections::HashMap::new();
            v.insert("X".to_string(), a);
            v.insert("Y".to_string(), b);
            let l = Expression::parse("$X == $Y").expect("parse").evaluate(&v);
            let r = Expression::parse("$Y == $X").expect("parse").evaluate(&v);
            prop_assert_eq!(l, r);
        }
    }
}
