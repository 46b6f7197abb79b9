-- The rest of /api/v1: news items, and the indexes that keep search, metrics and the
-- recent-builds list from reading every build.

CREATE TABLE news (
    id              bigserial PRIMARY KEY,
    title           text NOT NULL CHECK (title <> '' AND length(title) <= 200),
    content         text NOT NULL DEFAULT '',
    author          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Recent builds and the time series walk finished builds by time: builds_finished_idx
-- (0002).
-- /metrics/systems: a skip scan over the distinct systems.
CREATE INDEX builds_system_idx ON builds (system);
-- Search by job name prefix, one entry per (job, jobset) found by an index-only scan.
CREATE INDEX builds_job_search_idx ON builds (job text_pattern_ops, jobset_id);
-- Search by store path prefix: text_pattern_ops serves prefix ranges (~>=~, ~<~) under
-- any collation and still serves equality, so these replace the plain indexes.
DROP INDEX builds_drv_idx;
CREATE INDEX builds_drv_idx ON builds (drv_path text_pattern_ops);
DROP INDEX build_outputs_path_idx;
CREATE INDEX build_outputs_path_idx ON build_outputs (path text_pattern_ops);
