-- Trigger token rotation and restrictions (issue 14 §2, §3).
--
-- Rotating keeps the replaced token working for a grace period: only its SHA-256 digest is
-- kept (`previous_token_digest`), until `previous_token_expires_at`; it is never sealed, so
-- nobody can see it again. Restrictions are newline-separated lists (the API refuses control
-- characters in them); an empty list means "any".
ALTER TABLE triggers ADD COLUMN previous_token_digest TEXT;
ALTER TABLE triggers ADD COLUMN previous_token_expires_at BIGINT;
ALTER TABLE triggers ADD COLUMN ref_patterns TEXT NOT NULL DEFAULT '';
ALTER TABLE triggers ADD COLUMN allowed_variables TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX triggers_previous_token ON triggers(previous_token_digest);
