-- Job logs live in the database as the chunks runners send (GitLab keeps live traces as
-- chunks too). Appends are group-committed with the other job writes, so an acknowledged chunk
-- is durable without a file created and synced per job, and every replica sharing the
-- database can serve every log. `trace_size` is the log's length, for offset checks.

CREATE TABLE job_trace_chunks (
    job_id       BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    start_offset BIGINT NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (job_id, start_offset)
);
ALTER TABLE jobs ADD COLUMN trace_size BIGINT NOT NULL DEFAULT 0;
