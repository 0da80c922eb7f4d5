//! What a trigger token may do beyond GitLab's (issue 14 §2, §3): rotating its token with an
//! optional grace period for the old one, and its restrictions — the refs (glob patterns) and
//! the variables it may run with. GitLab has neither (gitlab-org/gitlab#417111 asks for
//! rotation); the errors follow GitLab's shapes: model errors as `{"message":{"base":[…]}}`,
//! field errors as `{"message":{"<field>":[…]}}`, Grape's `values:` as `{"error":…}`.

use std::collections::BTreeMap;

use pipewright_core::Timestamp;
use pipewright_store::{RotatedToken, Trigger, TriggerRestrictions};

use crate::domain::pipeline_variables::TRIGGER_PAYLOAD;
use crate::domain::protected_refs;
use crate::error::{ApiError, ApiResult};
use crate::sealing::Purpose;
use crate::secrets;
use crate::state::AppState;

/// The longest grace period a rotation may give the old token: a week.
pub const MAX_GRACE_PERIOD_SECONDS: i64 = 604_800;
/// At most this many ref patterns and as many allowed variables per token.
pub const MAX_RESTRICTIONS: usize = 50;
/// The longest ref pattern (a ref name is at most 255 bytes in GitLab's checks too).
pub const MAX_PATTERN_LEN: usize = 255;

/// The 4 characters everyone may see: the first four after the `glptt-` prefix (or of a
/// legacy prefix-less token).
pub fn short_token(token: &str) -> String {
    token
        .strip_prefix(secrets::TRIGGER_PREFIX)
        .unwrap_or(token)
        .chars()
        .take(4)
        .collect()
}

/// A new random trigger token, its digest, its sealed copy and its short form.
pub fn new_token(state: &AppState) -> ApiResult<(String, String, String, String)> {
    let token = secrets::random_hex_token(secrets::TRIGGER_PREFIX, 20);
    let sealed = state
        .sealer
        .seal(Purpose::TriggerToken, &token)
        .map_err(ApiError::Internal)?;
    Ok((
        secrets::token_digest(&token),
        sealed,
        short_token(&token),
        token,
    ))
}

/// `grace_period_seconds` (absent: 0) → until when the old token still works (`None`: it stops
/// at once). Out of range is Grape's `values:` error.
pub fn grace_until(grace_period_seconds: Option<i64>) -> ApiResult<Option<Timestamp>> {
    match grace_period_seconds.unwrap_or(0) {
        0 => Ok(None),
        s if (1..=MAX_GRACE_PERIOD_SECONDS).contains(&s) => {
            Ok(Some(Timestamp(Timestamp::now().millis() + s * 1000)))
        }
        _ => Err(ApiError::ParamError(
            "grace_period_seconds does not have a valid value".into(),
        )),
    }
}

/// Gives `trigger` a new token; the old one keeps working until `grace_until`, stored only as
/// its digest. Description, restrictions and `last_used` carry over (same row).
pub async fn rotate(
    state: &AppState,
    trigger: &Trigger,
    grace_until: Option<Timestamp>,
) -> ApiResult<Trigger> {
    let (token_digest, token_sealed, short_token, _token) = new_token(state)?;
    let rotated = RotatedToken {
        token_digest,
        token_sealed,
        short_token,
        previous_valid_until: grace_until,
    };
    Ok(state.store.rotate_trigger(trigger.id, &rotated).await?)
}

/// Checks restrictions given to create or update a token: at most [`MAX_RESTRICTIONS`] of
/// each; patterns non-empty, at most [`MAX_PATTERN_LEN`] characters, no control characters;
/// variable names as variable keys. Blank entries are dropped (`ref_patterns[]=` clears).
pub fn validate(
    ref_patterns: Vec<String>,
    allowed_variables: Vec<String>,
) -> ApiResult<TriggerRestrictions> {
    let clean = |list: Vec<String>| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for item in list.into_iter().map(|s| s.trim().to_string()) {
            if !item.is_empty() && !out.contains(&item) {
                out.push(item);
            }
        }
        out
    };
    let ref_patterns = clean(ref_patterns);
    let allowed_variables = clean(allowed_variables);
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let too_many = format!("is too long (maximum is {MAX_RESTRICTIONS} entries)");
    if ref_patterns.len() > MAX_RESTRICTIONS {
        errors.insert("ref_patterns".into(), vec![too_many.clone()]);
    } else if ref_patterns
        .iter()
        .any(|p| p.chars().count() > MAX_PATTERN_LEN || p.chars().any(char::is_control))
    {
        errors.insert(
            "ref_patterns".into(),
            vec![format!(
                "must be at most {MAX_PATTERN_LEN} characters without control characters"
            )],
        );
    }
    if allowed_variables.len() > MAX_RESTRICTIONS {
        errors.insert("allowed_variables".into(), vec![too_many]);
    } else if allowed_variables
        .iter()
        .any(|k| k.len() > 255 || !crate::validate::variable_key_chars(k))
    {
        errors.insert(
            "allowed_variables".into(),
            vec!["can contain only letters, digits and '_' (at most 255)".into()],
        );
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(TriggerRestrictions {
        ref_patterns,
        allowed_variables,
    })
}

/// Whether a trigger with `restrictions` may run `ref_name` with variables named `keys`;
/// `TRIGGER_PAYLOAD` is always allowed. Checked after the token was found and before the
/// pipeline is created, where GitLab checks a trigger's ability to run the ref.
pub fn check<'a>(
    restrictions: &TriggerRestrictions,
    ref_name: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> ApiResult<()> {
    if !ref_allowed(&restrictions.ref_patterns, ref_name) {
        return Err(ApiError::base(
            "Reference not allowed for this trigger token",
        ));
    }
    if restrictions.allowed_variables.is_empty() {
        return Ok(());
    }
    for key in keys {
        if key != TRIGGER_PAYLOAD && !restrictions.allowed_variables.iter().any(|k| k == key) {
            return Err(ApiError::base(&format!(
                "Variable not allowed for this trigger token: {key}"
            )));
        }
    }
    Ok(())
}

/// A ref matches when its branch or tag name (`refs/heads/` and `refs/tags/` stripped) matches
/// one pattern; `*` matches any run of characters, `/` included (GitLab's protected-branch
/// wildcards). No patterns: any ref.
fn ref_allowed(patterns: &[String], ref_name: &str) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let name = ref_name
        .strip_prefix("refs/heads/")
        .or_else(|| ref_name.strip_prefix("refs/tags/"))
        .unwrap_or(ref_name);
    patterns.iter().any(|p| protected_refs::matches(p, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restricted(refs: &[&str], vars: &[&str]) -> TriggerRestrictions {
        TriggerRestrictions {
            ref_patterns: refs.iter().map(|s| s.to_string()).collect(),
            allowed_variables: vars.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn short_tokens_skip_the_prefix() {
        assert_eq!(short_token("glptt-abcd0123"), "abcd");
        assert_eq!(short_token("6d056f63e50fe6f8c5f8f4aa10edb7"), "6d05");
    }

    #[test]
    fn refs_match_globs_on_branch_and_tag_names() {
        let r = restricted(&["main", "release/*", "v*"], &[]);
        for ok in [
            "main",
            "refs/heads/main",
            "release/1.0",
            "v1.2",
            "refs/tags/v1",
        ] {
            assert!(check(&r, ok, []).is_ok(), "{ok}");
        }
        for no in ["mainline", "dev", "refs/heads/dev", "xv1"] {
            assert!(check(&r, no, []).is_err(), "{no}");
        }
        assert!(check(&restricted(&[], &[]), "anything", []).is_ok());
    }

    #[test]
    fn variables_outside_the_list_are_refused_but_the_payload_is_not() {
        let r = restricted(&[], &["DEPLOY"]);
        assert!(check(&r, "main", ["DEPLOY", TRIGGER_PAYLOAD]).is_ok());
        let err = check(&r, "main", ["DEPLOY", "OTHER"]).unwrap_err();
        assert_eq!(
            err.body(),
            serde_json::json!({"message": {"base": ["Variable not allowed for this trigger token: OTHER"]}})
        );
    }

    #[test]
    fn restrictions_are_bounded() {
        let many: Vec<String> = (0..=MAX_RESTRICTIONS).map(|i| format!("b{i}")).collect();
        assert!(validate(many.clone(), vec![]).is_err());
        assert!(validate(vec![], many).is_err());
        assert!(validate(vec!["a\nb".into()], vec![]).is_err());
        assert!(validate(vec!["x".repeat(256)], vec![]).is_err());
        assert!(validate(vec![], vec!["NOT-OK".into()]).is_err());
        let ok = validate(vec!["main".into(), "".into(), "main".into()], vec![]).unwrap();
        assert_eq!(ok.ref_patterns, vec!["main".to_string()]);
    }

    #[test]
    fn grace_periods_are_bounded() {
        assert_eq!(grace_until(None).unwrap(), None);
        assert_eq!(grace_until(Some(0)).unwrap(), None);
        assert!(
            grace_until(Some(MAX_GRACE_PERIOD_SECONDS))
                .unwrap()
                .is_some()
        );
        assert!(grace_until(Some(-1)).is_err());
        assert!(grace_until(Some(MAX_GRACE_PERIOD_SECONDS + 1)).is_err());
    }
}
