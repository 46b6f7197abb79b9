-- Only finished builds have a status: indexing the NULLs of every new build cost the
-- evaluation ingest an index it never reads. A project's builds of one status get an
-- index of their own (the list filtered by both read a project's every build).
DROP INDEX builds_status_idx;
CREATE INDEX builds_status_idx ON builds (buildstatus, id DESC) WHERE buildstatus IS NOT NULL;
CREATE INDEX builds_project_status_idx ON builds (project_id, buildstatus, id DESC)
    WHERE buildstatus IS NOT NULL;
