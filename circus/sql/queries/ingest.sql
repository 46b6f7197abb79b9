-- The ingest of an evaluation, batch by batch while it evaluates.
-- Each batch is one transaction: staging tables (dropped at commit) filled by COPY, then
-- set-based INSERT … SELECT into the real tables; its builds are claimable once it commits.

-- name: ingest_create_staging
-- One batch of jobs, numbered (n) so the joins below are on integers, not store paths.
CREATE TEMP TABLE evaluator_jobs (
    n              integer NOT NULL,
    job            text NOT NULL,
    drv_path       text NOT NULL,
    nix_name       text NOT NULL,
    system         text NOT NULL,
    description    text NOT NULL,
    license        text NOT NULL,
    homepage       text NOT NULL,
    maintainers    text NOT NULL,
    timeout        integer,
    max_silent     integer,
    is_aggregate   boolean NOT NULL,
    required_features text[] NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE evaluator_job_builds (
    n              integer NOT NULL,
    build_id       bigint NOT NULL,
    is_new         boolean NOT NULL
) ON COMMIT DROP;

-- name: ingest_fail_abandoned
-- Run while holding the jobset's evaluation lock: a running evaluation of it is one
-- whose evaluator died. One with other inputs than $2 is over; one with the same inputs
-- is taken over (ingest_abandoned_with_inputs).
UPDATE evaluations
   SET status = 'failed', finished_at = now(),
       error_message = 'the evaluator stopped before this evaluation finished'
 WHERE jobset_id = $1 AND status = 'running' AND inputs_hash <> $2;

-- name: ingest_abandoned_with_inputs
SELECT id, started_at FROM evaluations
 WHERE jobset_id = $1 AND status = 'running' AND inputs_hash = $2
 ORDER BY id DESC LIMIT 1;

-- name: ingest_insert_evaluation
-- With the webhook delivery that asked for it, if one did.
INSERT INTO evaluations (id, jobset_id, status, commit_hash, inputs_hash, flake_uri,
                         started_at, webhook_delivery_id)
SELECT $1, $2, 'running', $3, $4, $5, $6, j.trigger_delivery FROM jobsets j WHERE j.id = $2;

-- name: ingest_insert_builds
-- New derivations become queued builds; an unchanged one keeps its build (DO NOTHING).
-- The join sees the builds as they were before this statement, so it finds exactly the
-- reused ones and `ins` the new ones.
WITH ins AS (
    INSERT INTO builds (jobset_id, project_id, job, drv_path, nix_name, system, description,
                        license, homepage, maintainers, timeout, max_silent, is_aggregate,
                        required_features)
    SELECT $1, $2, job, drv_path, nix_name, system, description, license, homepage,
           maintainers, timeout, max_silent, is_aggregate, required_features
      FROM evaluator_jobs
     ORDER BY job, drv_path  -- key order: the unique index is filled page by page
    ON CONFLICT (jobset_id, job, drv_path) DO NOTHING
    RETURNING id, job
)
INSERT INTO evaluator_job_builds (n, build_id, is_new)
SELECT e.n, ins.id, true FROM ins JOIN evaluator_jobs e ON e.job = ins.job
UNION ALL
SELECT e.n, b.id, false
  FROM evaluator_jobs e
  JOIN builds b ON b.jobset_id = $1 AND b.job = e.job AND b.drv_path = e.drv_path;

-- name: ingest_tune
-- Room for the hash joins of a large batch, for this transaction only; and no
-- database.statement_timeout, which bounds requests, not a nixpkgs-sized ingest.
SET LOCAL work_mem = '64MB'; SET LOCAL statement_timeout = 0;

-- name: ingest_link_builds
-- No ON CONFLICT: a job is in one batch only, so its link cannot exist yet.
INSERT INTO evaluation_builds (evaluation_id, build_id, is_new)
SELECT $1, build_id, is_new FROM evaluator_job_builds ORDER BY build_id;

-- name: ingest_link_builds_taken_over
-- An evaluation taken over from a dead evaluator has some links already.
INSERT INTO evaluation_builds (evaluation_id, build_id, is_new)
SELECT $1, build_id, is_new FROM evaluator_job_builds ORDER BY build_id
ON CONFLICT DO NOTHING;

-- name: ingest_batch_builds
SELECT n, build_id, is_new FROM evaluator_job_builds;

-- name: ingest_insert_dependencies
-- Pairs (build, the build it waits for), in key order so the index stays in cache.
INSERT INTO build_dependencies (build_id, dependency_id)
SELECT b, d FROM unnest($1::bigint[], $2::bigint[]) AS p(b, d) ORDER BY 1, 2
ON CONFLICT DO NOTHING;

-- name: ingest_prune_dependencies
-- A job that came in a later batch than a job whose closure holds it: the earlier pairs
-- went past it to the jobs below. Keep only the nearest ($3, $4) among this evaluation's
-- builds ($2) for the builds new in it ($1).
DELETE FROM build_dependencies d
 WHERE d.build_id = ANY($1::bigint[]) AND d.dependency_id = ANY($2::bigint[])
   AND (d.build_id, d.dependency_id) NOT IN (
       SELECT b, dep FROM unnest($3::bigint[], $4::bigint[]) AS p(b, dep));

-- name: ingest_insert_constituents
-- An aggregate's constituents; the aggregate also waits for them.
WITH pairs AS (
    SELECT DISTINCT a, c FROM unnest($1::bigint[], $2::bigint[]) AS p(a, c)
), members AS (
    INSERT INTO aggregate_constituents (aggregate_id, constituent_id)
    SELECT a, c FROM pairs
    ON CONFLICT DO NOTHING
)
INSERT INTO build_dependencies (build_id, dependency_id)
SELECT a, c FROM pairs
ON CONFLICT DO NOTHING;

-- name: ingest_insert_job_errors
INSERT INTO evaluation_errors (evaluation_id, job, error_message)
SELECT $1, job, message FROM unnest($2::text[], $3::text[]) AS e(job, message)
ON CONFLICT DO NOTHING;

-- name: ingest_insert_inputs
INSERT INTO evaluation_inputs (evaluation_id, name, type, uri, revision, value)
SELECT $1, name, type, uri, revision, value
  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
       AS i(name, type, uri, revision, value)
ON CONFLICT DO NOTHING;

-- name: ingest_finish_evaluation
-- The counts from the evaluation's links: every batch, and a dead evaluator's too.
UPDATE evaluations
   SET status = 'succeeded',
       nr_builds = counts.nr_builds,
       nr_new_builds = counts.nr_new_builds,
       nr_jobs = counts.nr_builds + $2,
       nr_job_errors = $2,
       finished_at = now()
  FROM (SELECT count(*) AS nr_builds, count(*) FILTER (WHERE is_new) AS nr_new_builds
          FROM evaluation_builds WHERE evaluation_id = $1) AS counts
 WHERE id = $1
RETURNING evaluations.nr_jobs, evaluations.nr_builds, evaluations.nr_new_builds,
          evaluations.nr_job_errors;

-- name: ingest_jobset_succeeded
-- A success clears the jobset's error; a one-shot jobset (enabled = 2) is done.
UPDATE jobsets
   SET error_message = NULL,
       error_time = NULL,
       last_checked_at = now(),
       trigger_time = CASE WHEN trigger_time <= $2 THEN NULL ELSE trigger_time END,
       trigger_delivery = CASE WHEN trigger_time <= $2 THEN NULL
                               ELSE trigger_delivery END,
       enabled = CASE WHEN enabled = 2 THEN 0 ELSE enabled END
 WHERE id = $1;

-- name: ingest_insert_failed_evaluation
-- Failed before it began (a fetch), or halfway: the builds it queued stay valid.
INSERT INTO evaluations (id, jobset_id, status, commit_hash, inputs_hash, flake_uri,
                         error_message, started_at, finished_at, webhook_delivery_id)
SELECT $1, $2, 'failed', $3, $4, $5, $6, $7, now(), j.trigger_delivery
  FROM jobsets j WHERE j.id = $2
ON CONFLICT (id) DO UPDATE
   SET status = 'failed', error_message = excluded.error_message,
       finished_at = excluded.finished_at;

-- name: ingest_jobset_failed
UPDATE jobsets
   SET error_message = $2,
       error_time = now(),
       last_checked_at = now(),
       trigger_time = CASE WHEN trigger_time <= $3 THEN NULL ELSE trigger_time END,
       trigger_delivery = CASE WHEN trigger_time <= $3 THEN NULL
                               ELSE trigger_delivery END
 WHERE id = $1;

-- name: ingest_notify
SELECT pg_notify($1, $2);

-- name: builds_analyze
-- After a large ingest: fresh statistics keep the runners' claim on the queue index
-- instead of sorting the whole queue (autovacuum would get there, minutes later).
ANALYZE builds;
