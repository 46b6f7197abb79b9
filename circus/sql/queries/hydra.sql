-- Hydra's JSON API (circus/server/hydra*.py): the same rows as /api/v1, read by names
-- (Hydra addresses projects and jobsets by name) and in the batches its documents need.

-- name: hydra_project_other_jobsets
-- Whether jobsets other than $2 share the project's repository.
SELECT count(*) FROM jobsets WHERE project_id = $1 AND name <> $2;

-- name: hydra_jobset
-- The jobset with its project's repository and when its running evaluation started.
SELECT j.*, p.name AS project, p.repository_url,
       (SELECT e.started_at FROM evaluations e
         WHERE e.jobset_id = j.id AND e.status = 'running'
         ORDER BY e.id DESC LIMIT 1) AS eval_started_at
  FROM jobsets j
  JOIN projects p ON p.id = j.project_id
 WHERE p.name = $1 AND j.name = $2;

-- name: hydra_jobset_inputs
SELECT jobset_id, name, type, value FROM jobset_inputs
 WHERE jobset_id = ANY($1::bigint[])
 ORDER BY jobset_id, name;

-- name: hydra_jobset_trigger
-- Triggers the named jobsets ($1 'project:jobset' strings) that exist; the NOTIFY wakes
-- the evaluator only if this statement commits.
UPDATE jobsets j SET trigger_time = now()
  FROM projects p
 WHERE p.id = j.project_id AND p.name || ':' || j.name = ANY($1::text[])
RETURNING p.name || ':' || j.name AS label,
          pg_notify('circus_eval_requested', j.id::text) AS notified;

-- name: hydra_jobsets_overview
-- /api/jobsets: each jobset of a project with the build counts of its latest evaluation.
SELECT j.name, p.name AS project, j.check_interval, j.error_message, j.error_time,
       j.last_checked_at, j.trigger_time,
       (SELECT e.started_at FROM evaluations e
         WHERE e.jobset_id = j.id AND e.status = 'running'
         ORDER BY e.id DESC LIMIT 1) AS eval_started_at,
       COALESCE(c.total, 0) AS nrtotal, COALESCE(c.scheduled, 0) AS nrscheduled,
       COALESCE(c.failed, 0) AS nrfailed, COALESCE(c.succeeded, 0) AS nrsucceeded
  FROM jobsets j
  JOIN projects p ON p.id = j.project_id
  LEFT JOIN LATERAL (
        SELECT count(*) AS total,
               count(*) FILTER (WHERE b.state <> 'finished') AS scheduled,
               count(*) FILTER (WHERE b.buildstatus <> 0) AS failed,
               count(*) FILTER (WHERE b.buildstatus = 0) AS succeeded
          FROM evaluation_builds eb JOIN builds b ON b.id = eb.build_id
         WHERE eb.evaluation_id = (SELECT e.id FROM evaluations e WHERE e.jobset_id = j.id
                                    ORDER BY e.id DESC LIMIT 1)) c ON true
 WHERE p.name = $1
 ORDER BY j.name;

-- name: hydra_evals_page
-- Finished evaluations only: Hydra has no row for one that is still running.
SELECT e.* FROM evaluations e
 WHERE e.jobset_id = $1 AND e.status <> 'running'
 ORDER BY e.id DESC LIMIT $2 OFFSET $3;

-- name: hydra_evals_count
SELECT count(*) FROM evaluations WHERE jobset_id = $1 AND status <> 'running';

-- name: hydra_eval
SELECT e.*, j.name AS jobset, p.name AS project
  FROM evaluations e
  JOIN jobsets j ON j.id = e.jobset_id
  JOIN projects p ON p.id = j.project_id
 WHERE e.id = $1;

-- name: hydra_latest_eval
SELECT e.id FROM evaluations e
  JOIN jobsets j ON j.id = e.jobset_id
  JOIN projects p ON p.id = j.project_id
 WHERE p.name = $1 AND j.name = $2 AND e.status = 'succeeded'
 ORDER BY e.id DESC LIMIT 1;

-- name: hydra_eval_inputs
SELECT evaluation_id, name, type, uri, revision, value FROM evaluation_inputs
 WHERE evaluation_id = ANY($1::bigint[])
 ORDER BY evaluation_id, name;

-- name: hydra_eval_members
SELECT evaluation_id, build_id FROM evaluation_builds
 WHERE evaluation_id = ANY($1::bigint[])
 ORDER BY evaluation_id, build_id;

-- name: hydra_search_builds_by_path
-- Builds with an output at exactly this store path (Hydra's "buildsdrv" use the drv).
SELECT DISTINCT build_id AS id FROM build_outputs WHERE path = $1
 ORDER BY build_id DESC LIMIT $2;

-- name: hydra_search_builds_by_drv
SELECT id FROM builds WHERE drv_path = $1 ORDER BY id DESC LIMIT $2;

-- name: hydra_eval_build_ids
SELECT build_id FROM evaluation_builds WHERE evaluation_id = $1 ORDER BY build_id;
