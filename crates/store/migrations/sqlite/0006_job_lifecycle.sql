-- The rest of a job's life: retries (the old attempt stays, marked `retried`, and a copy runs),
-- delayed jobs (`scheduled_at`), erasure, the job's artifacts archive (one zip per job, stored
-- under the data dir) and the leases the maintenance loop watches.

ALTER TABLE jobs ADD COLUMN retried BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE jobs ADD COLUMN scheduled_at BIGINT;
ALTER TABLE jobs ADD COLUMN erased_at BIGINT;
ALTER TABLE jobs ADD COLUMN artifacts_filename TEXT;
ALTER TABLE jobs ADD COLUMN artifacts_size BIGINT;
ALTER TABLE jobs ADD COLUMN artifacts_expire_at BIGINT;
CREATE INDEX jobs_lease ON jobs(status, lease_expires_at);
CREATE INDEX jobs_scheduled ON jobs(status, scheduled_at);
CREATE INDEX jobs_artifacts_expiry ON jobs(artifacts_expire_at);
CREATE INDEX jobs_pipeline_name ON jobs(pipeline_id, name);
CREATE INDEX pipelines_ref_status ON pipelines(project_id, ref_name, status, id);
