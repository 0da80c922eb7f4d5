-- Issue 15 §4 (what a third-party runner tripped over).
-- GitLab's project `ci_config_path`: where the project's CI config lives (NULL: `.gitlab-ci.yml`).
ALTER TABLE project_ci_settings ADD COLUMN ci_config_path TEXT;
