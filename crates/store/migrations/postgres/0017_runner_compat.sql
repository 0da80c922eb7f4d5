-- Issue 15 §4 (what a third-party runner tripped over).
-- GitLab's project `ci_config_path`: where the project's CI config lives (NULL: `.gitlab-ci.yml`).
ALTER TABLE project_ci_settings ADD COLUMN ci_config_path TEXT;

-- Runner registration tokens (GitLab's legacy registration flow, `POST /runners`): the
-- instance's (`owner` 'instance', no project) and each project's (`owner` 'project:<id>').
-- The digest finds the owner of a token a runner presents; the sealed copy is shown again to
-- administrators and Maintainers.
CREATE TABLE runner_registration_tokens (
    owner TEXT PRIMARY KEY,
    project_id BIGINT REFERENCES projects(id) ON DELETE CASCADE,
    token_digest TEXT NOT NULL UNIQUE,
    token_sealed TEXT NOT NULL
);
