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

-- name: prometheus_builds
-- Builds by project and outcome: one pass over the table for every build gauge.
SELECT project_id, state, buildstatus, count(*) AS n
  FROM builds GROUP BY project_id, state, buildstatus;

-- name: prometheus_durations
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

-- name: prometheus_evaluations
SELECT status, count(*) AS n FROM evaluations GROUP BY status;

-- name: prometheus_projects
SELECT id, name FROM projects ORDER BY name;

-- name: prometheus_optional_tables
-- Channels and remote builders come with other areas' migrations: counted only when
-- their tables exist (a missing table would fail the whole scrape).
SELECT to_regclass('channels') IS NOT NULL AS channels,
       to_regclass('remote_builders') IS NOT NULL AS remote_builders;

-- name: prometheus_channels
SELECT count(*) FROM channels;

-- name: prometheus_remote_builders
SELECT count(*) FROM remote_builders;
