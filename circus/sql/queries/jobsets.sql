-- Jobsets and their inputs for /api/v1/projects/{id}/jobsets, and the trigger.

-- name: jobsets_list
SELECT * FROM jobsets WHERE project_id = $1 ORDER BY id LIMIT $2 OFFSET $3;

-- name: api_jobsets_count
SELECT count(*) FROM jobsets WHERE project_id = $1;

-- name: jobset_get
SELECT * FROM jobsets WHERE project_id = $1 AND id = $2;

-- name: api_jobset_inputs_list
SELECT * FROM jobset_inputs WHERE jobset_id = $1 ORDER BY name;

-- name: api_jobset_input_insert
INSERT INTO jobset_inputs (jobset_id, name, type, value)
VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: api_jobset_input_delete
DELETE FROM jobset_inputs WHERE jobset_id = $1 AND id = $2 RETURNING id;

-- name: api_jobset_trigger
-- The evaluator takes trigger_time as "evaluate now"; the NOTIFY wakes it, and is sent
-- only if this statement commits.
UPDATE jobsets SET trigger_time = now()
 WHERE id = $1
RETURNING id, project_id, name, trigger_time,
          pg_notify('circus_eval_requested', id::text) AS notified;

-- name: api_jobset_id_for_names
SELECT j.id FROM jobsets j JOIN projects p ON p.id = j.project_id
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
