-- What the dashboard pages read that /api/v1 has no query for. Every list is a page
-- (LIMIT/OFFSET) led by an indexed predicate, so pages stay fast with 1 000 000 builds.

-- name: dashboard_home_counts
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

-- name: dashboard_projects_page
-- $1 name/description filter or NULL, $2 limit, $3 offset
SELECT p.*,
       (SELECT count(*) FROM jobsets j WHERE j.project_id = p.id) AS nr_jobsets,
       (SELECT count(*) FROM builds b WHERE b.project_id = p.id AND b.state = 'queued')
           AS nr_queued
  FROM projects p
 WHERE ($1::text IS NULL OR p.name ILIKE '%' || $1 || '%'
        OR p.display_name ILIKE '%' || $1 || '%' OR p.description ILIKE '%' || $1 || '%')
 ORDER BY p.name
 LIMIT $2 OFFSET $3;

-- name: dashboard_projects_count
SELECT count(*) FROM projects p
 WHERE ($1::text IS NULL OR p.name ILIKE '%' || $1 || '%'
        OR p.display_name ILIKE '%' || $1 || '%' OR p.description ILIKE '%' || $1 || '%');

-- name: dashboard_project_names
-- For filter drop-downs: a bounded list.
SELECT id, name FROM projects ORDER BY name LIMIT 500;

-- name: dashboard_project_by_key
-- A project by id ($1) or name ($2).
SELECT * FROM projects WHERE id = $1 OR name = $2 LIMIT 1;

-- name: dashboard_project_jobsets
-- A project's jobsets with their latest evaluation (evaluations_jobset_idx, one row each).
SELECT j.*, e.id AS eval_id, e.status AS eval_status, e.commit_hash AS eval_commit,
       e.created_at AS eval_time, e.nr_builds AS eval_builds
  FROM jobsets j
  LEFT JOIN LATERAL (SELECT id, status, commit_hash, created_at, nr_builds
                       FROM evaluations WHERE jobset_id = j.id
                      ORDER BY id DESC LIMIT 1) e ON true
 WHERE j.project_id = $1
 ORDER BY j.name
 LIMIT $2 OFFSET $3;

-- name: dashboard_jobset_by_id
SELECT j.*, p.name AS project, p.display_name AS project_display_name
  FROM jobsets j JOIN projects p ON p.id = j.project_id
 WHERE j.id = $1;

-- name: dashboard_queue_page
-- Queued builds in the order runners claim them (builds_queue_idx).
SELECT b.id, b.project_id, p.name AS project, b.jobset_id, j.name AS jobset, b.job,
       b.nix_name, b.system, b.state, b.buildstatus, b.priority, b.global_priority,
       b.created_at, b.started_at, b.finished_at, b.runner_id
  FROM (SELECT * FROM builds WHERE state = 'queued'
         AND ($1::text IS NULL OR system = $1)
         ORDER BY global_priority DESC, priority DESC, id
         LIMIT $2 OFFSET $3) b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id
 ORDER BY b.global_priority DESC, b.priority DESC, b.id;

-- name: dashboard_queue_count
SELECT count(*) FROM builds WHERE state = 'queued' AND ($1::text IS NULL OR system = $1);

-- name: dashboard_running
-- Running builds (builds_running_idx); few at a time: bounded by the runners' workers.
SELECT b.id, b.project_id, p.name AS project, b.jobset_id, j.name AS jobset, b.job,
       b.nix_name, b.system, b.state, b.buildstatus, b.priority, b.global_priority,
       b.created_at, b.started_at, b.finished_at, b.runner_id, b.log_size
  FROM builds b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id
 WHERE b.state = 'running'
 ORDER BY b.started_at NULLS LAST, b.id
 LIMIT 500;

-- name: dashboard_starred_page
-- A user's starred jobs with the newest build of each (a job has few builds).
SELECT s.id, s.jobset_id, j.name AS jobset, p.name AS project, s.job, s.created_at,
       b.id AS build_id, b.state, b.buildstatus, b.finished_at
  FROM starred_jobs s
  JOIN jobsets j ON j.id = s.jobset_id
  JOIN projects p ON p.id = j.project_id
  LEFT JOIN LATERAL (SELECT id, state, buildstatus, finished_at FROM builds
                      WHERE jobset_id = s.jobset_id AND job = s.job
                      ORDER BY id DESC LIMIT 1) b ON true
 WHERE s.user_id = $1
 ORDER BY p.name, j.name, s.job
 LIMIT $2 OFFSET $3;

-- name: dashboard_job_starred
SELECT id FROM starred_jobs WHERE user_id = $1 AND jobset_id = $2 AND job = $3;
