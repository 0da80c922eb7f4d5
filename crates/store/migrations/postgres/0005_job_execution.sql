-- What running a job needs: the runner that claimed it, its job token (digest only), the lease
-- that a silent runner lets expire, and the exit code it reported.

ALTER TABLE jobs ADD COLUMN runner_id BIGINT REFERENCES runners(id) ON DELETE SET NULL;
ALTER TABLE jobs ADD COLUMN token_digest TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at BIGINT;
ALTER TABLE jobs ADD COLUMN exit_code BIGINT;
CREATE INDEX jobs_status ON jobs(status, id);
CREATE UNIQUE INDEX jobs_token ON jobs(token_digest);
