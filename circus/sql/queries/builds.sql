-- Builds for /api/v1/builds and /api/v1/builds/{id}.
--
-- The list comes in one query per access path, each led by the predicate its index
-- serves, so a cached generic plan still uses that index with 1 000 000 builds; the other
-- filters follow as optional residuals. Every list query takes the same parameters:
--   $1 project_id, $2 jobset_id, $3 evaluation_id, $4 state, $5 buildstatus, $6 job,
--   $7 system, $8 limit, $9 offset, $10 before_id (keyset cursor: only ids below it;
--   written as a range on id so that it is an index condition even in a generic plan)
-- and every count query the same $1..$7 and $8 = the most rows it will count.

-- name: builds_page_all
-- the whole table, newest first (builds_pkey)
SELECT v.*
  FROM (SELECT b.id FROM builds b
         WHERE true
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
   AND b.id < COALESCE($10::bigint, 9223372036854775807)
         ORDER BY b.id DESC LIMIT $8 OFFSET $9) page
  JOIN build_list v ON v.id = page.id
 ORDER BY v.id DESC;

-- name: builds_count_all
SELECT count(*) FROM (SELECT 1 FROM builds b
                        WHERE true
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
                        LIMIT $8) s;

-- name: builds_page_project
-- one project (builds_project_idx)
SELECT v.*
  FROM (SELECT b.id FROM builds b
         WHERE b.project_id = $1
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
   AND b.id < COALESCE($10::bigint, 9223372036854775807)
         ORDER BY b.id DESC LIMIT $8 OFFSET $9) page
  JOIN build_list v ON v.id = page.id
 ORDER BY v.id DESC;

-- name: builds_count_project
SELECT count(*) FROM (SELECT 1 FROM builds b
                        WHERE b.project_id = $1
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
                        LIMIT $8) s;

-- name: builds_page_project_status
-- one project, one finished status (builds_project_status_idx)
SELECT v.*
  FROM (SELECT b.id FROM builds b
         WHERE b.project_id = $1 AND b.buildstatus = $5
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
   AND b.id < COALESCE($10::bigint, 9223372036854775807)
         ORDER BY b.id DESC LIMIT $8 OFFSET $9) page
  JOIN build_list v ON v.id = page.id
 ORDER BY v.id DESC;

-- name: builds_count_project_status
SELECT count(*) FROM (SELECT 1 FROM builds b
                        WHERE b.project_id = $1 AND b.buildstatus = $5
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
                        LIMIT $8) s;

-- name: builds_page_jobset
-- one jobset (builds_jobset_idx, builds_job_idx)
SELECT v.*
  FROM (SELECT b.id FROM builds b
         WHERE b.jobset_id = $2
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
   AND b.id < COALESCE($10::bigint, 9223372036854775807)
         ORDER BY b.id DESC LIMIT $8 OFFSET $9) page
  JOIN build_list v ON v.id = page.id
 ORDER BY v.id DESC;

-- name: builds_count_jobset
SELECT count(*) FROM (SELECT 1 FROM builds b
                        WHERE b.jobset_id = $2
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
                        LIMIT $8) s;

-- name: builds_page_evaluation
-- one evaluation (evaluation_builds primary key)
SELECT v.*
  FROM (SELECT b.id FROM evaluation_builds eb JOIN builds b ON b.id = eb.build_id
         WHERE eb.evaluation_id = $3
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
   AND b.id < COALESCE($10::bigint, 9223372036854775807)
         ORDER BY b.id DESC LIMIT $8 OFFSET $9) page
  JOIN build_list v ON v.id = page.id
 ORDER BY v.id DESC;

-- name: builds_count_evaluation
SELECT count(*) FROM (SELECT 1 FROM evaluation_builds eb JOIN builds b ON b.id = eb.build_id
                        WHERE eb.evaluation_id = $3
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
                        LIMIT $8) s;

-- name: builds_page_buildstatus
-- one finished status (builds_status_idx)
SELECT v.*
  FROM (SELECT b.id FROM builds b
         WHERE b.buildstatus = $5
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
   AND b.id < COALESCE($10::bigint, 9223372036854775807)
         ORDER BY b.id DESC LIMIT $8 OFFSET $9) page
  JOIN build_list v ON v.id = page.id
 ORDER BY v.id DESC;

-- name: builds_count_buildstatus
SELECT count(*) FROM (SELECT 1 FROM builds b
                        WHERE b.buildstatus = $5
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
                        LIMIT $8) s;

-- name: builds_page_unfinished
-- queued or running: buildstatus IS NULL (builds_status_idx)
SELECT v.*
  FROM (SELECT b.id FROM builds b
         WHERE b.buildstatus IS NULL AND b.state = $4
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
   AND b.id < COALESCE($10::bigint, 9223372036854775807)
         ORDER BY b.id DESC LIMIT $8 OFFSET $9) page
  JOIN build_list v ON v.id = page.id
 ORDER BY v.id DESC;

-- name: builds_count_unfinished
SELECT count(*) FROM (SELECT 1 FROM builds b
                        WHERE b.buildstatus IS NULL AND b.state = $4
   AND ($1::bigint IS NULL OR b.project_id = $1)
   AND ($2::bigint IS NULL OR b.jobset_id = $2)
   AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM evaluation_builds x
                                       WHERE x.evaluation_id = $3 AND x.build_id = b.id))
   AND ($4::text IS NULL OR b.state = $4)
   AND ($5::smallint IS NULL OR b.buildstatus = $5)
   AND ($6::text IS NULL OR b.job = $6)
   AND ($7::text IS NULL OR b.system = $7)
                        LIMIT $8) s;

-- name: builds_estimate
-- The planner's row count: O(1) where count(*) would read the whole table.
SELECT reltuples::bigint FROM pg_class WHERE oid = 'builds'::regclass;

-- name: builds_estimate_project
-- A big project's share of the planner's row count, from the column's most common
-- values; NULL for a project too small to be among them (then it is counted).
SELECT (c.reltuples * m.freq)::bigint
  FROM pg_class c, pg_stats s,
       unnest(s.most_common_vals::text::bigint[], s.most_common_freqs) AS m(project, freq)
 WHERE c.oid = 'builds'::regclass AND s.schemaname = current_schema()
   AND s.tablename = 'builds' AND s.attname = 'project_id' AND m.project = $1;

-- name: build_get
SELECT b.*, p.name AS project, j.name AS jobset
  FROM builds b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id
 WHERE b.id = $1;

-- name: builds_ids_all
-- A page with no filter but the cursor: the ids come from an index-only scan of
-- builds_pkey (a deep offset skips index entries, not heap rows), then only the page's
-- rows are read. $1 before_id (NULL: from the newest), $2 limit, $3 offset
SELECT v.*
  FROM (SELECT id FROM builds
         WHERE id < COALESCE($1::bigint, 9223372036854775807)
         ORDER BY id DESC LIMIT $2 OFFSET $3) ids
  JOIN build_list v ON v.id = ids.id
 ORDER BY v.id DESC;

-- name: builds_ids_project
-- As builds_ids_all on builds_project_idx; $4 project_id.
SELECT v.*
  FROM (SELECT id FROM builds
         WHERE project_id = $4 AND id < COALESCE($1::bigint, 9223372036854775807)
         ORDER BY id DESC LIMIT $2 OFFSET $3) ids
  JOIN build_list v ON v.id = ids.id
 ORDER BY v.id DESC;

-- name: builds_ids_jobset
-- As builds_ids_all on builds_jobset_idx; $4 jobset_id.
SELECT v.*
  FROM (SELECT id FROM builds
         WHERE jobset_id = $4 AND id < COALESCE($1::bigint, 9223372036854775807)
         ORDER BY id DESC LIMIT $2 OFFSET $3) ids
  JOIN build_list v ON v.id = ids.id
 ORDER BY v.id DESC;

-- name: builds_recent
-- The most recently finished builds (builds_finished_idx, read backwards).
SELECT v.*
  FROM (SELECT id FROM builds WHERE finished_at IS NOT NULL
         ORDER BY finished_at DESC LIMIT $1) recent
  JOIN build_list v ON v.id = recent.id
 ORDER BY v.finished_at DESC, v.id DESC;

-- name: builds_stats
-- Counts by outcome and the mean duration of successes, optionally for one project or
-- jobset. Reads every matching build: a summary, not a page.
SELECT count(*) AS total,
       count(*) FILTER (WHERE state = 'queued') AS queued,
       count(*) FILTER (WHERE state = 'running') AS running,
       count(*) FILTER (WHERE state = 'finished') AS finished,
       count(*) FILTER (WHERE buildstatus = 0) AS succeeded,
       count(*) FILTER (WHERE buildstatus NOT IN (0, 4)) AS failed,
       count(*) FILTER (WHERE buildstatus = 4) AS cancelled,
       avg(extract(epoch FROM finished_at - started_at))
           FILTER (WHERE buildstatus = 0 AND started_at IS NOT NULL)::float8
           AS avg_duration_seconds
  FROM builds
 WHERE ($1::bigint IS NULL OR project_id = $1)
   AND ($2::bigint IS NULL OR jobset_id = $2);

-- name: builds_anchors
-- Every $1-th id of the whole list, newest first, and the newest id: one index-only
-- scan, refreshed now and then, so a deep offset starts from its anchor (server/api/offsets.py).
SELECT array_agg(id ORDER BY pos) FILTER (WHERE pos > 0 AND pos % $1 = 0) AS ids,
       max(id) AS max_id
  FROM (SELECT id, row_number() OVER (ORDER BY id DESC) - 1 AS pos FROM builds) s;

-- name: builds_newer_than
-- Builds added since the anchors were taken: they sit above every anchor.
SELECT count(*) FROM builds WHERE id > $1;

-- name: builds_cancel
-- What is queued or running finishes as cancelled (4). runner_id stays: the runner
-- holding a running build sees it finished under its name and kills its Nix process.
UPDATE builds
   SET state = 'finished', buildstatus = 4, error_message = 'cancelled',
       finished_at = now(), lease_expires_at = NULL, updated_at = now()
 WHERE id = ANY($1::bigint[]) AND state <> 'finished'
RETURNING id, job, pg_notify('circus_build_changed', id::text) AS notified;

-- name: build_fail_dependents
-- Every queued build that waits on build $1, directly or not, finishes as
-- "dependency failed" (2) with message $2.
WITH RECURSIVE dependents(id) AS (
    SELECT d.build_id FROM build_dependencies d WHERE d.dependency_id = $1
    UNION
    SELECT d.build_id FROM build_dependencies d JOIN dependents x ON d.dependency_id = x.id
)
UPDATE builds b
   SET state = 'finished', buildstatus = 2, error_message = $2, finished_at = now(),
       updated_at = now()
  FROM dependents x
 WHERE b.id = x.id AND b.state = 'queued'
RETURNING b.id, pg_notify('circus_build_changed', b.id::text) AS notified;

-- name: builds_restart
-- Finished builds queued again; $2: the buildstatus codes that may be restarted (NULL:
-- any). Run with builds_clear_results in one transaction. A restart is asked to build
-- again, so the failed-paths cache forgets their derivations.
WITH restarted AS (
    UPDATE builds
       SET state = 'queued', buildstatus = NULL, error_message = NULL, runner_id = NULL,
           builder_id = NULL, lease_expires_at = NULL, started_at = NULL,
           finished_at = NULL, attempts = 0, log_size = 0, signature = NULL,
           updated_at = now()
     WHERE id = ANY($1::bigint[]) AND state = 'finished'
       AND ($2::smallint[] IS NULL OR buildstatus = ANY($2::smallint[]))
 RETURNING id, drv_path
), forgotten AS (
    DELETE FROM failed_paths f USING restarted r WHERE f.drv_path = r.drv_path
)
SELECT id,
       pg_notify('circus_build_changed', id::text) AS changed,
       pg_notify('circus_builds_queued', '1') AS queued
  FROM restarted;

-- name: builds_clear_results
-- What finished builds left behind.
WITH o AS (DELETE FROM build_outputs WHERE build_id = ANY($1::bigint[])),
     p AS (DELETE FROM build_products WHERE build_id = ANY($1::bigint[])),
     m AS (DELETE FROM build_metrics WHERE build_id = ANY($1::bigint[])),
     s AS (DELETE FROM build_steps WHERE build_id = ANY($1::bigint[])),
     l AS (DELETE FROM build_logs WHERE build_id = ANY($1::bigint[]))
DELETE FROM build_log_chunks WHERE build_id = ANY($1::bigint[]);

-- name: builds_bump
-- Ahead of every queued build: one above the highest global priority in the queue (one
-- probe of builds_queue_idx, which leads with it); those of the ids ($1) still queued.
UPDATE builds
   SET global_priority = (SELECT COALESCE(max(q.global_priority), 0) + 1
                            FROM builds q WHERE q.state = 'queued'),
       updated_at = now()
 WHERE id = ANY($1::bigint[]) AND state = 'queued'
RETURNING id, global_priority,
          pg_notify('circus_build_changed', id::text) AS changed,
          pg_notify('circus_builds_queued', '1') AS queued;

-- name: build_keep
UPDATE builds SET keep = $2, updated_at = now()
 WHERE id = $1
RETURNING id, keep, pg_notify('circus_build_changed', id::text) AS changed;

-- name: build_steps
SELECT step_nr, drv_path, system, kind, machine, status, error_message, started_at,
       finished_at
  FROM build_steps WHERE build_id = $1 ORDER BY step_nr;

-- name: build_dependencies
SELECT b.id, b.job, b.state, b.buildstatus
  FROM build_dependencies d JOIN builds b ON b.id = d.dependency_id
 WHERE d.build_id = $1 ORDER BY b.id;

-- name: build_constituents
SELECT b.id, b.job, b.state, b.buildstatus
  FROM aggregate_constituents c JOIN builds b ON b.id = c.constituent_id
 WHERE c.aggregate_id = $1 ORDER BY b.id;

-- name: build_dependents
SELECT b.id, b.job, b.state, b.buildstatus
  FROM build_dependencies d JOIN builds b ON b.id = d.build_id
 WHERE d.dependency_id = $1 ORDER BY b.id;

-- name: build_exists
SELECT id FROM builds WHERE id = $1;

-- name: builds_of_drv
-- The builds of a derivation ($1), newest first (builds_drv_idx).
SELECT id FROM builds WHERE drv_path = $1 ORDER BY id DESC LIMIT $2;

-- name: builds_by_ids
SELECT b.id, b.state, b.buildstatus, b.created_at, b.started_at, b.finished_at,
       p.name AS project, j.name AS jobset, b.job, b.nix_name, b.system, b.priority,
       b.drv_path, b.is_aggregate
  FROM builds b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id
 WHERE b.id = ANY($1::bigint[])
 ORDER BY b.id;

-- name: build_outputs
SELECT build_id, name, path FROM build_outputs
 WHERE build_id = ANY($1::bigint[]) ORDER BY build_id, name;

-- name: build_products
SELECT build_id, product_nr, type, subtype, name, path, default_path, file_size, sha256
  FROM build_products WHERE build_id = ANY($1::bigint[]) ORDER BY build_id, product_nr;

-- name: build_metrics
SELECT build_id, name, value, unit FROM build_metrics
 WHERE build_id = ANY($1::bigint[]) ORDER BY build_id, name;

-- name: build_evaluations
SELECT build_id, evaluation_id FROM evaluation_builds
 WHERE build_id = ANY($1::bigint[]) ORDER BY build_id, evaluation_id;

-- name: builds_latest_finished
-- /api/latestbuilds: the newest finished builds, optionally of one project/jobset/job/system.
SELECT b.id FROM builds b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id
 WHERE b.state = 'finished'
   AND ($2::text IS NULL OR p.name = $2) AND ($3::text IS NULL OR j.name = $3)
   AND ($4::text IS NULL OR b.job = $4) AND ($5::text IS NULL OR b.system = $5)
 ORDER BY b.finished_at DESC, b.id DESC LIMIT $1;

-- name: builds_in_claim_order
-- /api/queue: unfinished builds in the order runners take them (builds_queue_idx first).
SELECT id FROM builds WHERE state <> 'finished'
 ORDER BY global_priority DESC, priority DESC, id LIMIT $1;

-- name: builds_finished_per_period
-- /api/nrbuilds: finished builds per period ($1 'hour'|'day'|'month'), the last $2
-- periods, oldest first, zeros included.
WITH periods AS (
    SELECT generate_series(date_trunc($1, now()) - ($2 - 1) * ('1 ' || $1)::interval,
                           date_trunc($1, now()), ('1 ' || $1)::interval) AS period
)
SELECT count(b.id) AS n
  FROM periods x
  LEFT JOIN builds b ON b.finished_at IS NOT NULL
   AND date_trunc($1, b.finished_at) = x.period
   AND ($3::text IS NULL OR b.project_id = (SELECT id FROM projects WHERE name = $3))
   AND ($4::text IS NULL OR b.jobset_id = (SELECT j.id FROM jobsets j JOIN projects p
                                             ON p.id = j.project_id
                                            WHERE p.name = $3 AND j.name = $4))
   AND ($5::text IS NULL OR b.job = $5)
 GROUP BY x.period
 ORDER BY x.period;

-- name: build_set_signature
UPDATE builds SET signature = $2, updated_at = now() WHERE id = $1
RETURNING id, pg_notify('circus_build_changed', id::text);

-- name: build_product
SELECT product_nr, type, subtype, name, path, default_path, file_size, sha256
  FROM build_products WHERE build_id = $1 AND product_nr = $2;
