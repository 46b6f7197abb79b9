-- Queries only bench/eval_stream.py runs: what it polls while Circus evaluates.

-- name: eval_stream_first_queued
-- A committed, queued build of the jobset exists (what a runner's claim needs).
SELECT EXISTS (SELECT 1 FROM builds WHERE jobset_id = $1 AND state = 'queued');

-- name: eval_stream_linked
-- Builds linked to the jobset's evaluations (one evaluation per fresh database).
SELECT count(*)
  FROM evaluation_builds eb
  JOIN evaluations e ON e.id = eb.evaluation_id
 WHERE e.jobset_id = $1;

-- name: eval_stream_evaluation
-- The jobset's latest evaluation, once its row exists.
SELECT id, status, finished_at, error_message, nr_builds, nr_new_builds, nr_job_errors
  FROM evaluations
 WHERE jobset_id = $1
 ORDER BY id DESC
 LIMIT 1;
