-- Time series and systems for /api/v1/metrics, and the figures of GET /prometheus.

-- name: metrics_builds_timeseries
-- $1 bucket (date_trunc unit), $2 hours back, $3 project_id or NULL
SELECT date_trunc($1, finished_at) AS time,
       count(*) AS total,
       count(*) FILTER (WHERE buildstatus = 0) AS succeeded,
       count(*) FILTER (WHERE buildstatus <> 0) AS failed
  FROM builds
 WHERE finished_at >= now() - make_interval(hours => $2)
   AND ($3::bigint IS NULL OR project_id = $3)
 GROUP BY 1 ORDER BY 1;

-- name: metrics_duration_timeseries
-- Successful builds only: a failure's duration says little about the build.
SELECT date_trunc($1, finished_at) AS time,
       count(*) AS builds,
       avg(extract(epoch FROM finished_at - started_at))::float8 AS avg_seconds,
       percentile_cont(0.5) WITHIN GROUP
           (ORDER BY extract(epoch FROM finished_at - started_at))::float8 AS p50_seconds,
       percentile_cont(0.95) WITHIN GROUP
           (ORDER BY extract(epoch FROM finished_at - started_at))::float8 AS p95_seconds,
       max(extract(epoch FROM finished_at - started_at))::float8 AS max_seconds
  FROM builds
 WHERE finished_at >= now() - make_interval(hours => $2)
   AND buildstatus = 0 AND started_at IS NOT NULL
   AND ($3::bigint IS NULL OR project_id = $3)
 GROUP BY 1 ORDER BY 1;

-- name: metrics_systems
-- The distinct systems by a skip scan of builds_system_idx: one probe per system.
WITH RECURSIVE s AS (
    SELECT min(system) AS system FROM builds
    UNION ALL
    SELECT (SELECT min(b.system) FROM builds b WHERE b.system > s.system)
      FROM s WHERE s.system IS NOT NULL
)
SELECT s.system,
       (SELECT count(*) FROM builds q WHERE q.state = 'queued' AND q.system = s.system)
           AS queued
  FROM s WHERE s.system IS NOT NULL ORDER BY s.system;

-- name: builds_counted
-- Builds by project and outcome: one pass over the table for every build gauge.
SELECT project_id, state, buildstatus, count(*) AS n
  FROM builds GROUP BY project_id, state, buildstatus;

-- name: build_durations
-- Over the most recent 10 000 successful builds (builds_finished_idx), so a scrape stays
-- cheap however long the history.
SELECT avg(d)::float8 AS avg,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY d)::float8 AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY d)::float8 AS p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY d)::float8 AS p99
  FROM (SELECT extract(epoch FROM finished_at - started_at) AS d
          FROM builds
         WHERE finished_at IS NOT NULL AND buildstatus = 0 AND started_at IS NOT NULL
         ORDER BY finished_at DESC LIMIT 10000) r;

-- name: evaluations_counted
SELECT status, count(*) AS n FROM evaluations GROUP BY status;

-- name: projects_counted
SELECT id, name FROM projects ORDER BY name;

-- name: optional_tables_present
-- Channels come with another area's migration: counted only when their table exists (a
-- missing table would fail the whole scrape).
SELECT to_regclass('channels') IS NOT NULL AS channels;

-- name: count_channels
SELECT count(*) FROM channels;

-- name: system_counts
-- Queue counts use the partial queue indexes; outcomes of the last day builds_finished_idx.
SELECT (SELECT count(*) FROM builds WHERE state = 'queued') AS queued,
       (SELECT count(*) FROM builds WHERE state = 'running') AS running,
       (SELECT count(*) FROM projects) AS projects,
       (SELECT count(*) FROM evaluations WHERE status = 'running') AS evaluating,
       (SELECT reltuples::bigint FROM pg_class WHERE oid = 'builds'::regclass) AS builds_estimate,
       d.succeeded AS succeeded_day, d.failed AS failed_day
  FROM (SELECT count(*) FILTER (WHERE buildstatus = 0) AS succeeded,
               count(*) FILTER (WHERE buildstatus <> 0) AS failed
          FROM builds WHERE finished_at >= now() - interval '24 hours') d;

-- name: system_status
SELECT current_setting('server_version') AS postgres_version,
       pg_database_size(current_database()) AS database_size_bytes,
       (SELECT count(*) FROM builds WHERE state = 'queued') AS builds_queued,
       (SELECT count(*) FROM builds WHERE state = 'running') AS builds_running,
       (SELECT count(*) FROM evaluations WHERE status = 'running') AS evaluations_running,
       (SELECT count(*) FROM projects) AS projects,
       (SELECT count(*) FROM jobsets) AS jobsets,
       now() AS now;

-- name: database_answers
-- The health check's round trip: the database is reachable and answers a query.
SELECT 1;
