-- Jobsets and their inputs (run by circus/store/jobsets.py), and asking for an evaluation.

-- name: jobsets_list
SELECT * FROM jobsets WHERE project_id = $1 ORDER BY id LIMIT $2 OFFSET $3;

-- name: api_jobsets_count
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

-- name: api_jobset_inputs_list
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
