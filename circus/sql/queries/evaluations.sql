-- Evaluations (run by circus/store/evaluations.py; the compare queries by
-- circus/server/api/compare.py). In the lists each filter is optional (NULL: any); the
-- jobset and status filters have their own indexes, the project filter goes through jobsets.

-- name: evaluations_page
-- With the forge delivery that started it, if a webhook did.
SELECT e.*, j.name AS jobset, j.project_id, p.name AS project,
       d.forge AS webhook_forge, d.delivery AS webhook_delivery
  FROM evaluations e
  JOIN jobsets j ON j.id = e.jobset_id
  JOIN projects p ON p.id = j.project_id
  LEFT JOIN webhook_deliveries d ON d.id = e.webhook_delivery_id
 WHERE ($1::bigint IS NULL OR j.project_id = $1)
   AND ($2::bigint IS NULL OR e.jobset_id = $2)
   AND ($3::text IS NULL OR e.status = $3)
 ORDER BY e.id DESC
 LIMIT $4 OFFSET $5;

-- name: evaluations_count
SELECT count(*)
  FROM evaluations e
  JOIN jobsets j ON j.id = e.jobset_id
 WHERE ($1::bigint IS NULL OR j.project_id = $1)
   AND ($2::bigint IS NULL OR e.jobset_id = $2)
   AND ($3::text IS NULL OR e.status = $3);

-- name: evaluation_get
-- With the forge delivery that started it, if a webhook did.
SELECT e.*, j.name AS jobset, j.project_id, p.name AS project,
       d.forge AS webhook_forge, d.delivery AS webhook_delivery
  FROM evaluations e
  JOIN jobsets j ON j.id = e.jobset_id
  JOIN projects p ON p.id = j.project_id
  LEFT JOIN webhook_deliveries d ON d.id = e.webhook_delivery_id
 WHERE e.id = $1;

-- name: evaluations_finished_page
-- Finished evaluations only: Hydra has no row for one that is still running.
SELECT e.* FROM evaluations e
 WHERE e.jobset_id = $1 AND e.status <> 'running'
 ORDER BY e.id DESC LIMIT $2 OFFSET $3;

-- name: evaluations_with_new_builds_page
-- Hydra's /evals: finished evaluations that brought new builds, newest first, each with
-- the one before it of the same jobset (previous_id) to compare with.
SELECT e.*,
       (SELECT p.id FROM evaluations p
         WHERE p.jobset_id = e.jobset_id AND p.id < e.id AND p.nr_new_builds > 0
           AND p.status <> 'running'
         ORDER BY p.id DESC LIMIT 1) AS previous_id
  FROM evaluations e
 WHERE e.nr_new_builds > 0 AND e.status <> 'running'
 ORDER BY e.id DESC LIMIT $1 OFFSET $2;

-- name: evaluations_build_counts
-- Per evaluation ($1): its builds, those not finished, those that succeeded.
SELECT eb.evaluation_id, count(*) AS total,
       count(*) FILTER (WHERE b.state <> 'finished') AS scheduled,
       count(*) FILTER (WHERE b.state = 'finished' AND b.buildstatus = 0) AS succeeded
  FROM evaluation_builds eb JOIN builds b ON b.id = eb.build_id
 WHERE eb.evaluation_id = ANY($1::bigint[])
 GROUP BY eb.evaluation_id;

-- name: evaluations_finished_count
SELECT count(*) FROM evaluations WHERE jobset_id = $1 AND status <> 'running';

-- name: evaluation_latest_succeeded_id
SELECT e.id FROM evaluations e
  JOIN jobsets j ON j.id = e.jobset_id
  JOIN projects p ON p.id = j.project_id
 WHERE p.name = $1 AND j.name = $2 AND e.status = 'succeeded'
 ORDER BY e.id DESC LIMIT 1;

-- name: evaluation_inputs
SELECT name, type, uri, revision, value FROM evaluation_inputs
 WHERE evaluation_id = $1 ORDER BY name;

-- name: evaluation_errors
SELECT job, error_message FROM evaluation_errors WHERE evaluation_id = $1 ORDER BY job;

-- name: evaluation_build_counts
SELECT count(*) AS total,
       count(*) FILTER (WHERE eb.is_new) AS new,
       count(*) FILTER (WHERE b.state = 'queued') AS queued,
       count(*) FILTER (WHERE b.state = 'running') AS running,
       count(*) FILTER (WHERE b.buildstatus = 0) AS succeeded,
       count(*) FILTER (WHERE b.buildstatus <> 0) AS failed
  FROM evaluation_builds eb JOIN builds b ON b.id = eb.build_id
 WHERE eb.evaluation_id = $1;

-- name: evaluation_previous
-- The evaluation of the same jobset just before this one (evaluations_jobset_idx).
SELECT p.id FROM evaluations e
  JOIN evaluations p ON p.jobset_id = e.jobset_id AND p.id < e.id
 WHERE e.id = $1
 ORDER BY p.id DESC LIMIT 1;

-- name: evaluation_jobs
SELECT b.job, b.id AS build_id, b.drv_path, b.state, b.buildstatus
  FROM evaluation_builds eb JOIN builds b ON b.id = eb.build_id
 WHERE eb.evaluation_id = $1
 ORDER BY b.job, b.id;

-- name: evaluation_exists
SELECT id FROM evaluations WHERE id = $1;

-- name: evaluations_inputs
SELECT evaluation_id, name, type, uri, revision, value FROM evaluation_inputs
 WHERE evaluation_id = ANY($1::bigint[])
 ORDER BY evaluation_id, name;

-- name: evaluations_members
SELECT evaluation_id, build_id FROM evaluation_builds
 WHERE evaluation_id = ANY($1::bigint[])
 ORDER BY evaluation_id, build_id;

-- name: evaluation_build_ids
SELECT build_id FROM evaluation_builds WHERE evaluation_id = $1 ORDER BY build_id;

-- name: evaluation_reserve_id
-- The evaluation's id is taken at the start (for the logs); its row is written once the
-- inputs are fetched and it is known to be needed.
SELECT nextval(pg_get_serial_sequence('evaluations', 'id')) AS id, now() AS taken_at;

-- name: evaluation_latest_of_jobset
-- The newest ended one: a running one is being redone or taken over (ingest_start).
SELECT inputs_hash, status FROM evaluations
 WHERE jobset_id = $1 AND status <> 'running' ORDER BY id DESC LIMIT 1;
