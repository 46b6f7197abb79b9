-- The evaluator: which jobsets are due, and the bulk ingest of an evaluation.
-- The ingest runs in one transaction: staging tables (dropped at commit) filled by COPY,
-- then set-based INSERT … SELECT into the real tables.

-- name: evaluator_due_jobsets
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

-- name: evaluator_seconds_until_due
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

-- name: evaluator_reserve_evaluation
-- The evaluation's id is taken at the start (for the logs) and its row written only by
-- the ingest, so an abandoned evaluation leaves nothing behind.
SELECT nextval(pg_get_serial_sequence('evaluations', 'id')) AS id, now() AS taken_at;

-- name: evaluator_last_evaluation
SELECT inputs_hash, status FROM evaluations WHERE jobset_id = $1 ORDER BY id DESC LIMIT 1;

-- name: evaluator_mark_checked
-- Inputs unchanged: nothing to evaluate. A trigger that came after we started stays.
UPDATE jobsets
   SET last_checked_at = now(),
       trigger_time = CASE WHEN trigger_time <= $2 THEN NULL ELSE trigger_time END
 WHERE id = $1;

-- name: evaluator_create_staging
-- Jobs are numbered (n) so the joins below are on integers, not on store paths.
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
    deps           integer[] NOT NULL,
    constituents   integer[] NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE evaluator_job_builds (
    n              integer NOT NULL,
    build_id       bigint NOT NULL,
    is_new         boolean NOT NULL
) ON COMMIT DROP;

-- name: evaluator_insert_evaluation
INSERT INTO evaluations (id, jobset_id, status, commit_hash, inputs_hash, flake_uri,
                         started_at)
VALUES ($1, $2, 'succeeded', $3, $4, $5, $6);

-- name: evaluator_insert_builds
-- New derivations become queued builds; an unchanged one keeps its build (DO NOTHING).
-- The join sees the builds as they were before this statement, so it finds exactly the
-- reused ones and `ins` the new ones.
WITH ins AS (
    INSERT INTO builds (jobset_id, project_id, job, drv_path, nix_name, system, description,
                        license, homepage, maintainers, timeout, max_silent, is_aggregate)
    SELECT $1, $2, job, drv_path, nix_name, system, description, license, homepage,
           maintainers, timeout, max_silent, is_aggregate
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

-- name: evaluator_tune_ingest
-- Room for the hash joins of a 100 000-job ingest, for this transaction only; and no
-- database.statement_timeout, which bounds requests, not a nixpkgs-sized ingest.
SET LOCAL work_mem = '64MB'; SET LOCAL statement_timeout = 0;

-- name: evaluator_link_builds
-- No ON CONFLICT here nor in the dependencies: the evaluation is new and a pair with a
-- new build cannot exist yet, so the cheaper plain insert is safe.
INSERT INTO evaluation_builds (evaluation_id, build_id, is_new)
SELECT $1, build_id, is_new FROM evaluator_job_builds ORDER BY build_id;

-- name: evaluator_insert_dependencies
-- A job's build waits for the builds of the jobs nearest in its closure. When both builds
-- are reused, the earlier evaluation that made them recorded this already.
INSERT INTO build_dependencies (build_id, dependency_id)
SELECT jb.build_id, db.build_id
  FROM evaluator_jobs e
  JOIN evaluator_job_builds jb ON jb.n = e.n
 CROSS JOIN LATERAL unnest(e.deps) AS d(n)
  JOIN evaluator_job_builds db ON db.n = d.n
 WHERE db.build_id <> jb.build_id
   AND (jb.is_new OR db.is_new)
 ORDER BY 1, 2;  -- in key order, the index and foreign-key lookups stay in cache

-- name: evaluator_insert_constituents
-- An aggregate's constituents; the aggregate also waits for them.
WITH pairs AS (
    SELECT DISTINCT jb.build_id AS aggregate_id, cb.build_id AS constituent_id
      FROM evaluator_jobs e
      JOIN evaluator_job_builds jb ON jb.n = e.n
     CROSS JOIN LATERAL unnest(e.constituents) AS c(n)
      JOIN evaluator_job_builds cb ON cb.n = c.n
     WHERE e.is_aggregate AND cb.build_id <> jb.build_id
), members AS (
    INSERT INTO aggregate_constituents (aggregate_id, constituent_id)
    SELECT aggregate_id, constituent_id FROM pairs
    ON CONFLICT DO NOTHING
)
INSERT INTO build_dependencies (build_id, dependency_id)
SELECT aggregate_id, constituent_id FROM pairs
ON CONFLICT DO NOTHING;

-- name: evaluator_insert_job_errors
INSERT INTO evaluation_errors (evaluation_id, job, error_message)
SELECT $1, job, message FROM unnest($2::text[], $3::text[]) AS e(job, message)
ON CONFLICT DO NOTHING;

-- name: evaluator_insert_inputs
INSERT INTO evaluation_inputs (evaluation_id, name, type, uri, revision, value)
SELECT $1, name, type, uri, revision, value
  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
       AS i(name, type, uri, revision, value)
ON CONFLICT DO NOTHING;

-- name: evaluator_finish_evaluation
UPDATE evaluations
   SET nr_builds = counts.nr_builds,
       nr_new_builds = counts.nr_new_builds,
       nr_jobs = counts.nr_builds + $2,
       nr_job_errors = $2,
       finished_at = now()
  FROM (SELECT count(*) AS nr_builds, count(*) FILTER (WHERE is_new) AS nr_new_builds
          FROM evaluator_job_builds) AS counts
 WHERE id = $1
RETURNING evaluations.nr_jobs, evaluations.nr_builds, evaluations.nr_new_builds,
          evaluations.nr_job_errors;

-- name: evaluator_jobset_succeeded
-- A success clears the jobset's error; a one-shot jobset (enabled = 2) is done.
UPDATE jobsets
   SET error_message = NULL,
       error_time = NULL,
       last_checked_at = now(),
       trigger_time = CASE WHEN trigger_time <= $2 THEN NULL ELSE trigger_time END,
       enabled = CASE WHEN enabled = 2 THEN 0 ELSE enabled END
 WHERE id = $1;

-- name: evaluator_insert_failed_evaluation
INSERT INTO evaluations (id, jobset_id, status, commit_hash, inputs_hash, flake_uri,
                         error_message, started_at, finished_at)
VALUES ($1, $2, 'failed', $3, $4, $5, $6, $7, now());

-- name: evaluator_jobset_failed
UPDATE jobsets
   SET error_message = $2,
       error_time = now(),
       last_checked_at = now(),
       trigger_time = CASE WHEN trigger_time <= $3 THEN NULL ELSE trigger_time END
 WHERE id = $1;

-- name: evaluator_notify
SELECT pg_notify($1, $2);

-- name: evaluator_try_lock_jobset
-- One evaluation of a jobset at a time across every evaluator process. A session lock:
-- a process that dies releases it with its connection.
SELECT pg_try_advisory_lock(1667855213, $1::int);

-- name: evaluator_unlock_jobset
SELECT pg_advisory_unlock(1667855213, $1::int);

-- name: evaluator_analyze_builds
-- After a large ingest: fresh statistics keep the runners' claim on the queue index
-- instead of sorting the whole queue (autovacuum would get there, minutes later).
ANALYZE builds;
