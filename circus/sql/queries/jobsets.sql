-- Jobsets and their inputs (run by circus/store/jobsets.py), and asking for an evaluation.

-- name: jobsets_list
SELECT * FROM jobsets WHERE project_id = $1 ORDER BY id LIMIT $2 OFFSET $3;

-- name: jobsets_count
SELECT count(*) FROM jobsets WHERE project_id = $1;

-- name: jobsets_count_other_than
-- The project's jobsets not named $2: those share the project's one repository.
SELECT count(*) FROM jobsets WHERE project_id = $1 AND name <> $2;

-- name: jobsets_overview
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

-- name: jobset_get
SELECT * FROM jobsets WHERE project_id = $1 AND id = $2;

-- name: jobset_inputs
SELECT * FROM jobset_inputs WHERE jobset_id = $1 ORDER BY name;

-- name: jobset_input_insert
INSERT INTO jobset_inputs (jobset_id, name, type, value)
VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: jobset_input_delete
DELETE FROM jobset_inputs WHERE jobset_id = $1 AND id = $2 RETURNING id;

-- name: jobset_request_evaluation
-- The evaluator takes trigger_time as "evaluate now"; the NOTIFY wakes it, and is sent
-- only if this statement commits.
UPDATE jobsets SET trigger_time = now()
 WHERE id = $1
RETURNING id, project_id, name, trigger_time,
          pg_notify('circus_eval_requested', id::text) AS notified;

-- name: jobsets_request_evaluation_by_label
-- Triggers the named jobsets ($1 'project:jobset' strings) that exist; the NOTIFY wakes
-- the evaluator only if this statement commits.
UPDATE jobsets j SET trigger_time = now()
  FROM projects p
 WHERE p.id = j.project_id AND p.name || ':' || j.name = ANY($1::text[])
RETURNING p.name || ':' || j.name AS label,
          pg_notify('circus_eval_requested', j.id::text) AS notified;

-- name: jobset_id_by_names
SELECT j.id FROM jobsets j JOIN projects p ON p.id = j.project_id
 WHERE p.name = $1 AND j.name = $2;

-- name: jobset_by_names
-- The jobset with its project's repository and when its running evaluation started.
SELECT j.*, p.name AS project, p.display_name AS project_display_name, p.repository_url,
       (SELECT e.started_at FROM evaluations e
         WHERE e.jobset_id = j.id AND e.status = 'running'
         ORDER BY e.id DESC LIMIT 1) AS eval_started_at
  FROM jobsets j
  JOIN projects p ON p.id = j.project_id
 WHERE p.name = $1 AND j.name = $2;

-- name: jobset_id_by_name
SELECT id FROM jobsets WHERE project_id = $1 AND name = $2;

-- name: jobset_insert
INSERT INTO jobsets (project_id, name, nix_expression, flake, branch, enabled, check_interval,
                     description, scheduling_shares, keep_evaluations, hidden)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING *;

-- name: jobset_update
UPDATE jobsets
   SET name = $3, nix_expression = $4, flake = $5, branch = $6, enabled = $7,
       check_interval = $8, description = $9, scheduling_shares = $10,
       keep_evaluations = $11, hidden = $12, updated_at = now()
 WHERE project_id = $1 AND id = $2
RETURNING *;

-- name: jobset_delete
DELETE FROM jobsets WHERE project_id = $1 AND id = $2 RETURNING id;

-- name: jobset_inputs_clear
-- A jobset PUT (Hydra's) replaces every input at once: cleared, then inserted, in one
-- transaction (one statement would not see its own delete and collide on the names).
DELETE FROM jobset_inputs WHERE jobset_id = $1;

-- name: jobset_inputs_insert
INSERT INTO jobset_inputs (jobset_id, name, type, value)
SELECT $1, n, t, v FROM unnest($2::text[], $3::text[], $4::text[]) AS i(n, t, v);

-- name: jobsets_inputs
SELECT jobset_id, name, type, value FROM jobset_inputs
 WHERE jobset_id = ANY($1::bigint[])
 ORDER BY jobset_id, name;

-- name: jobsets_with_latest_evaluation
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

-- name: jobset_by_id
SELECT j.*, p.name AS project, p.display_name AS project_display_name
  FROM jobsets j JOIN projects p ON p.id = j.project_id
 WHERE j.id = $1;

-- name: jobsets_due
-- Enabled jobsets whose check interval elapsed or that were triggered, skipping those
-- this process is evaluating ($1) and one-at-a-time jobsets with unfinished builds.
SELECT j.id, j.name, j.project_id, p.name AS project_name, p.repository_url,
       j.nix_expression, j.flake, j.branch, j.enabled, j.trigger_time
  FROM jobsets j
  JOIN projects p ON p.id = j.project_id
 WHERE p.enabled
   AND j.enabled BETWEEN 1 AND 3
   AND NOT (j.id = ANY($1::bigint[]))
   AND (j.trigger_time IS NOT NULL
        OR (j.check_interval > 0
            AND (j.last_checked_at IS NULL
                 OR j.last_checked_at <= now() - make_interval(secs => j.check_interval))))
   AND NOT (j.enabled = 3 AND EXISTS (
            SELECT 1 FROM builds b WHERE b.jobset_id = j.id AND b.state <> 'finished'))
 ORDER BY j.trigger_time IS NULL, j.last_checked_at NULLS FIRST, j.id;

-- name: jobsets_seconds_until_due
-- How long until the next jobset's check interval elapses (NULL: none is scheduled).
SELECT EXTRACT(EPOCH FROM min(j.last_checked_at + make_interval(secs => j.check_interval))
                          - now())::float8
  FROM jobsets j
  JOIN projects p ON p.id = j.project_id
 WHERE p.enabled
   AND j.enabled BETWEEN 1 AND 3
   AND j.check_interval > 0
   AND j.last_checked_at IS NOT NULL
   AND NOT (j.id = ANY($1::bigint[]))
   AND NOT (j.enabled = 3 AND EXISTS (
            SELECT 1 FROM builds b WHERE b.jobset_id = j.id AND b.state <> 'finished'));

-- name: jobset_mark_checked
-- Inputs unchanged: nothing to evaluate. A trigger that came after we started stays.
UPDATE jobsets
   SET last_checked_at = now(),
       trigger_time = CASE WHEN trigger_time <= $2 THEN NULL ELSE trigger_time END,
       trigger_delivery = CASE WHEN trigger_time <= $2 THEN NULL ELSE trigger_delivery END
 WHERE id = $1;

-- name: jobset_try_lock
-- One evaluation of a jobset at a time across every evaluator process. A session lock:
-- a process that dies releases it with its connection.
SELECT pg_try_advisory_lock(1667855213, $1::int);

-- name: jobset_unlock
SELECT pg_advisory_unlock(1667855213, $1::int);
