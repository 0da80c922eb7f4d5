-- GitLab's project `build_timeout`: the default job timeout (seconds) for jobs without `timeout:`.
ALTER TABLE project_ci_settings ADD COLUMN build_timeout BIGINT;
