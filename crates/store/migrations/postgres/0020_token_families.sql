-- Issue 17: rotating a personal access token links the new token to the one it replaced
-- (GitLab's `previous_personal_access_token_id`), so using a token that rotation revoked can
-- revoke the whole family (GitLab's reuse detection: a leaked old token in use means the
-- new one may be known too).
ALTER TABLE personal_access_tokens ADD COLUMN previous_personal_access_token_id BIGINT
    REFERENCES personal_access_tokens(id) ON DELETE SET NULL;
CREATE INDEX personal_access_tokens_previous ON personal_access_tokens(previous_personal_access_token_id);
