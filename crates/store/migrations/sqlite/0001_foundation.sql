-- Users, tokens, namespaces, projects, members, protected branches and the push-event outbox.
-- Timestamps are integer milliseconds since the Unix epoch (UTC) on both backends.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    username        TEXT NOT NULL,
    username_lower  TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    email           TEXT NOT NULL,
    email_lower     TEXT NOT NULL UNIQUE,
    password_hash   TEXT,
    is_admin        BOOLEAN NOT NULL DEFAULT FALSE,
    state           TEXT NOT NULL DEFAULT 'active',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE namespaces (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    path            TEXT NOT NULL,
    path_lower      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    owner_id        BIGINT REFERENCES users(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL
);

CREATE TABLE personal_access_tokens (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    token_digest    TEXT NOT NULL UNIQUE,
    scopes          TEXT NOT NULL,
    expires_at      BIGINT,
    revoked         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT
);
CREATE INDEX personal_access_tokens_user ON personal_access_tokens(user_id);

CREATE TABLE projects (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace_id    BIGINT NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    path            TEXT NOT NULL,
    path_lower      TEXT NOT NULL,
    description     TEXT,
    visibility      TEXT NOT NULL,
    default_branch  TEXT NOT NULL,
    creator_id      BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    UNIQUE (namespace_id, path_lower)
);

CREATE TABLE project_members (
    project_id      BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_level    BIGINT NOT NULL,
    expires_at      BIGINT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members(user_id);

CREATE TABLE protected_branches (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id          BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    push_access_level   BIGINT NOT NULL,
    merge_access_level  BIGINT NOT NULL,
    allow_force_push    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

-- The seam between git pushes and what reacts to them (pipelines on push, webhooks): every
-- accepted ref update is recorded here in the same request that accepted it; consumers mark
-- rows processed.
CREATE TABLE push_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id         BIGINT REFERENCES users(id) ON DELETE SET NULL,
    ref_name        TEXT NOT NULL,
    before_sha      TEXT NOT NULL,
    after_sha       TEXT NOT NULL,
    push_options    TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    processed_at    BIGINT
);
CREATE INDEX push_events_pending ON push_events(processed_at, id);
