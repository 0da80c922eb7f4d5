-- Pipeline trigger tokens. The token itself is never stored: `token_digest` (SHA-256) finds it,
-- `token_sealed` (encrypted under the server key) lets its owner see it again, `short_token`
-- is the 4 characters everyone else may see.

CREATE TABLE triggers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    -- NULL with legacy = TRUE: an owner-less legacy trigger (runs with no user, unprotected
    -- refs only). NULL with legacy = FALSE: the owner was deleted; the trigger no longer runs.
    owner_id        BIGINT REFERENCES users(id) ON DELETE SET NULL,
    legacy          BOOLEAN NOT NULL DEFAULT FALSE,
    description     TEXT NOT NULL,
    token_digest    TEXT NOT NULL UNIQUE,
    token_sealed    TEXT NOT NULL,
    short_token     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    last_used_at    BIGINT
);
CREATE INDEX triggers_project ON triggers(project_id, id);
