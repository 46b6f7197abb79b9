-- name: srht_job_insert
-- A new job ($10: 'queued', or 'pending' until POST .../start) with its tasks' names
-- ($11, in order); a queued one wakes the runners.
WITH job AS (
    INSERT INTO srht_jobs (owner_user_id, owner_key_id, owner_name, manifest, note, tags,
                           image, arch, secrets, status)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    RETURNING id, status
), tasks AS (
    INSERT INTO srht_tasks (job_id, nr, name)
    SELECT job.id, t.nr, t.name FROM job, unnest($11::text[]) WITH ORDINALITY AS t(name, nr)
)
SELECT id, CASE WHEN status = 'queued' THEN pg_notify('circus_srht_jobs_queued', id::text)
           END AS notified
  FROM job;

-- name: srht_jobs_visible_page
-- The jobs caller ($1 user, $2 key; $3 true: every job) may see, newest first, from id
-- $4 down (NULL: the newest), $5 + 1 of them (the extra one is the next page's start),
-- each with the count of all the caller may see.
SELECT j.*, (SELECT count(*) FROM srht_jobs c
              WHERE $3 OR c.owner_user_id = $1 OR c.owner_key_id = $2) AS total
  FROM srht_jobs j
 WHERE ($3 OR j.owner_user_id = $1 OR j.owner_key_id = $2)
   AND ($4::bigint IS NULL OR j.id <= $4)
 ORDER BY j.id DESC
 LIMIT $5 + 1;

-- name: srht_job_get
SELECT * FROM srht_jobs WHERE id = $1;

-- name: srht_tasks_of
-- The tasks of jobs $1, in order.
SELECT job_id, nr, name, status FROM srht_tasks WHERE job_id = ANY($1::bigint[])
 ORDER BY job_id, nr;

-- name: srht_job_start
-- A pending job ($1) joins the queue; no row when it is not pending.
UPDATE srht_jobs SET status = 'queued', updated_at = now()
 WHERE id = $1 AND status = 'pending'
RETURNING id, pg_notify('circus_srht_jobs_queued', id::text) AS notified;

-- name: srht_job_cancel
-- A job ($1) that has not ended is cancelled; the runner running it is told, and kills it.
WITH cancelled AS (
    UPDATE srht_jobs SET status = 'cancelled', finished_at = now(), updated_at = now(),
                         lease_until = NULL
     WHERE id = $1 AND status IN ('pending', 'queued', 'running')
    RETURNING id
), tasks AS (
    UPDATE srht_tasks t SET status = 'skipped' FROM cancelled c
     WHERE t.job_id = c.id AND t.status IN ('pending', 'running')
)
SELECT id, pg_notify('circus_srht_job_changed', id::text) AS notified FROM cancelled;

-- name: srht_job_claim
-- The oldest queued job of an arch this runner has ($3; a job without one fits any),
-- running here ($1) with a lease of $2 seconds; no row when none waits.
UPDATE srht_jobs j
   SET status = 'running', runner_id = $1, attempts = j.attempts + 1,
       lease_until = now() + make_interval(secs => $2::double precision),
       started_at = now(), updated_at = now()
 WHERE j.id = (SELECT q.id FROM srht_jobs q
                WHERE q.status = 'queued' AND (q.arch IS NULL OR q.arch = ANY($3::text[]))
                ORDER BY q.id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING j.*, pg_notify('circus_srht_job_changed', j.id::text) AS notified;

-- name: srht_jobs_renew
-- Runner $1 still runs jobs $2: their leases go on by $3 seconds; the ids still ours.
UPDATE srht_jobs
   SET lease_until = now() + make_interval(secs => $3::double precision)
 WHERE id = ANY($2::bigint[]) AND runner_id = $1 AND status = 'running'
RETURNING id;

-- name: srht_jobs_reap
-- Jobs whose runner stopped renewing (it died) start again from the beginning: queued,
-- their tasks pending, their logs and artifacts gone.
WITH lost AS (
    UPDATE srht_jobs
       SET status = 'queued', runner_id = NULL, lease_until = NULL, started_at = NULL,
           updated_at = now()
     WHERE status = 'running' AND lease_until < now()
    RETURNING id
), tasks AS (
    UPDATE srht_tasks t SET status = 'pending' FROM lost WHERE t.job_id = lost.id
), logs AS (
    DELETE FROM srht_log_chunks c USING lost WHERE c.job_id = lost.id
), artifacts AS (
    DELETE FROM srht_artifacts a USING lost WHERE a.job_id = lost.id
)
SELECT id, pg_notify('circus_srht_jobs_queued', id::text) AS queued,
       pg_notify('circus_srht_job_changed', id::text) AS changed
  FROM lost;

-- name: srht_task_set_if_ours
-- Task $2 of job $1 is now $3, while runner $4 still runs the job.
UPDATE srht_tasks t SET status = $3
  FROM srht_jobs j
 WHERE t.job_id = $1 AND t.nr = $2 AND j.id = t.job_id AND j.runner_id = $4
   AND j.status = 'running'
RETURNING t.nr, pg_notify('circus_srht_job_changed', $1::text) AS notified;

-- name: srht_job_finish_if_ours
-- Job $1 ends as $3 (error $4) if runner $2 still runs it; the tasks never reached stay
-- pending, as sr.ht shows them.
UPDATE srht_jobs
   SET status = $3, error_message = $4, finished_at = now(), updated_at = now(),
       lease_until = NULL
 WHERE id = $1 AND runner_id = $2 AND status = 'running'
RETURNING id, pg_notify('circus_srht_job_changed', id::text) AS notified;

-- name: srht_log_append
-- One chunk of whole lines of job $1's task $2 (0: setup).
WITH chunk AS (
    INSERT INTO srht_log_chunks (job_id, task_nr, seq, data) VALUES ($1, $2, $3, $4)
)
SELECT pg_notify('circus_srht_log', $1::text);

-- name: srht_log_chunks_after
-- Chunks of job $1's task $2 with seq > $3, in order.
SELECT seq, data FROM srht_log_chunks WHERE job_id = $1 AND task_nr = $2 AND seq > $3
 ORDER BY seq LIMIT 256;

-- name: srht_artifact_insert_if_ours
-- No row when runner $5 no longer runs job $1 (its lease ran out and the job started over).
INSERT INTO srht_artifacts (job_id, path, name, size)
SELECT $1, $2, $3, $4 FROM srht_jobs j
 WHERE j.id = $1 AND j.runner_id = $5 AND j.status = 'running'
RETURNING id;

-- name: srht_artifact_chunk_insert
INSERT INTO srht_artifact_chunks (artifact_id, seq, data) VALUES ($1, $2, $3);

-- name: srht_artifacts_of
SELECT id, job_id, path, name, size, created_at FROM srht_artifacts WHERE job_id = $1
 ORDER BY id;

-- name: srht_artifact_get
SELECT a.id, a.job_id, a.path, a.name, a.size FROM srht_artifacts a
 WHERE a.id = $1 AND a.job_id = $2;

-- name: srht_artifact_chunk
SELECT data FROM srht_artifact_chunks WHERE artifact_id = $1 AND seq = $2;
