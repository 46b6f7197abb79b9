-- Webhooks from forges (run by circus/store/webhooks.py): each project's secrets, the
-- deliveries received, the jobsets a push or a pull request evaluates.

-- name: webhook_create
-- One per project and forge: no row when the project already has one for that forge.
INSERT INTO project_webhooks (project_id, forge, secret) VALUES ($1, $2, $3)
ON CONFLICT (project_id, forge) DO NOTHING
RETURNING id, project_id, forge, created_at;

-- name: webhooks_of_project
SELECT id, project_id, forge, created_at FROM project_webhooks
 WHERE project_id = $1 ORDER BY id;

-- name: webhook_delete
DELETE FROM project_webhooks WHERE project_id = $1 AND id = $2 RETURNING id;

-- name: webhook_secret
SELECT secret FROM project_webhooks WHERE project_id = $1 AND forge = $2;

-- name: webhook_delivery_record
-- No row when this delivery was received before: it triggers nothing again.
INSERT INTO webhook_deliveries (project_id, forge, delivery, event) VALUES ($1, $2, $3, $4)
ON CONFLICT (project_id, forge, delivery) DO NOTHING
RETURNING id;

-- name: webhook_deliveries_purge
DELETE FROM webhook_deliveries WHERE received_at < now() - make_interval(days => $1);

-- name: jobsets_request_evaluation_for_push
-- The project's branch jobsets that follow the pushed branch $2 ($3: it is the default
-- branch, which a jobset without a branch follows); the NOTIFY wakes the evaluator only
-- if this statement commits.
UPDATE jobsets
   SET trigger_time = now(), trigger_delivery = $4
 WHERE project_id = $1 AND pull_request IS NULL AND enabled BETWEEN 1 AND 3
   AND (branch = $2 OR (branch IS NULL AND $3))
RETURNING name, pg_notify('circus_eval_requested', id::text) AS notified;

-- name: projects_by_repository
-- Projects whose repository is one of $1 (lower case, no trailing ".git" or "/"), with
-- their secret for the forge $2 (NULL when none is configured).
SELECT p.id, p.name, w.secret
  FROM projects p
  LEFT JOIN project_webhooks w ON w.project_id = p.id AND w.forge = $2
 WHERE lower(regexp_replace(p.repository_url, '(\.git)?/*$', '')) = ANY($1::text[])
 ORDER BY p.id;

-- name: pull_request_template_jobset
-- The jobset a pull request's jobset is made from: the one that follows its base branch
-- $2, else the one that follows the default branch, else the oldest.
SELECT * FROM jobsets
 WHERE project_id = $1 AND pull_request IS NULL
 ORDER BY branch = $2 DESC NULLS LAST, branch IS NULL DESC, id
 LIMIT 1;

-- name: pull_request_jobset_upsert
-- The request's jobset, created from the template $2 or pointed at the new head; hidden,
-- never polled, evaluated now. No row when the name is taken by another jobset.
INSERT INTO jobsets (project_id, name, description, nix_expression, flake, branch, enabled,
                     hidden, check_interval, scheduling_shares, keep_evaluations,
                     pull_request, trigger_time, trigger_delivery)
SELECT t.project_id, $3, $4, t.nix_expression, t.flake, $5, 1, true, 0,
       t.scheduling_shares, t.keep_evaluations, $6, now(), $7
  FROM jobsets t WHERE t.id = $2 AND t.project_id = $1
ON CONFLICT (project_id, name) DO UPDATE
   SET description = excluded.description, branch = excluded.branch, enabled = 1,
       closed_at = NULL, trigger_time = now(), trigger_delivery = excluded.trigger_delivery,
       updated_at = now()
 WHERE jobsets.pull_request = excluded.pull_request
RETURNING id, name, pg_notify('circus_eval_requested', id::text) AS notified;

-- name: pull_request_jobset_copy_inputs
INSERT INTO jobset_inputs (jobset_id, name, type, value)
SELECT $1, name, type, value FROM jobset_inputs WHERE jobset_id = $2
ON CONFLICT (jobset_id, name) DO NOTHING;

-- name: pull_request_jobset_close
UPDATE jobsets SET enabled = 0, closed_at = now(), updated_at = now()
 WHERE project_id = $1 AND pull_request = $2 AND closed_at IS NULL
RETURNING name;

-- name: pull_request_jobsets_purge
-- Closed longer than the retention ($1 days): gone with their evaluations and builds.
DELETE FROM jobsets
 WHERE pull_request IS NOT NULL AND closed_at < now() - make_interval(days => $1)
RETURNING id;
