-- Finishing a build: status, outputs, products, metrics, steps, and what it means for
-- the builds that wait on it. All run in one transaction by the runner.

-- name: build_finish_if_ours
-- Builds $2 with statuses $3 and errors $4, but only those still running under runner $1:
-- a cancelled or reaped build stays as it is. Returns the ids finished here; with $5 a
-- failed derivation is remembered in failed_paths. On success,
-- runners hear of dependents that became ready. (CTEs share one snapshot, so the readiness
-- check treats the builds this statement finishes successfully as finished by hand.)
WITH outcome AS (
    SELECT * FROM unnest($2::bigint[], $3::smallint[], $4::text[]) AS o(id, status, error)
), done AS (
    UPDATE builds b
       SET state = 'finished', buildstatus = o.status, error_message = o.error,
           finished_at = now(), lease_expires_at = NULL, updated_at = now()
      FROM outcome o
     WHERE b.id = o.id AND b.state = 'running' AND b.runner_id = $1
 RETURNING b.id, b.buildstatus, b.drv_path, b.is_aggregate
), remembered AS (
    -- The failed-paths cache ($5): a derivation that failed is not built again soon.
    INSERT INTO failed_paths (drv_path, build_id, status)
    SELECT drv_path, id, buildstatus FROM done
     WHERE $5::boolean AND buildstatus = 1 AND NOT is_aggregate
    ON CONFLICT (drv_path) DO UPDATE
       SET build_id = excluded.build_id, status = excluded.status, failed_at = now()
), succeeded AS (
    SELECT id FROM done WHERE buildstatus = 0
), ready AS (
    SELECT count(DISTINCT b.id) AS n
      FROM succeeded s
      JOIN build_dependencies d ON d.dependency_id = s.id
      JOIN builds b ON b.id = d.build_id
     WHERE b.state = 'queued'
       AND NOT EXISTS (
           SELECT 1 FROM build_dependencies d2 JOIN builds dep ON dep.id = d2.dependency_id
            WHERE d2.build_id = b.id AND dep.state <> 'finished'
              AND dep.id NOT IN (SELECT id FROM succeeded))
)
-- Identical notifications in one transaction are delivered once: one "queued" per batch.
SELECT done.id, pg_notify('circus_build_changed', done.id::text),
       CASE WHEN ready.n > 0 THEN pg_notify('circus_builds_queued', ready.n::text) END
  FROM done, ready;

-- name: build_outputs_insert
INSERT INTO build_outputs (build_id, name, path)
SELECT $1, o.name, o.path FROM unnest($2::text[], $3::text[]) AS o(name, path)
ON CONFLICT (build_id, name) DO UPDATE SET path = EXCLUDED.path;

-- name: build_products_insert
INSERT INTO build_products (build_id, product_nr, type, subtype, name, path, default_path,
                            file_size, sha256)
SELECT $1, p.* FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                           $7::text[], $8::bigint[], $9::text[]) AS p;

-- name: build_metrics_insert
INSERT INTO build_metrics (build_id, name, value, unit)
SELECT $1, m.* FROM unnest($2::text[], $3::double precision[], $4::text[]) AS m;

-- name: build_steps_insert
INSERT INTO build_steps (build_id, step_nr, drv_path, kind, machine, status, error_message,
                         started_at, finished_at)
SELECT $1, s.* FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::smallint[],
                           $7::text[], $8::timestamptz[], $9::timestamptz[]) AS s;

-- name: build_lock_if_finished
SELECT id FROM builds WHERE id = $1 AND state = 'finished' FOR UPDATE;
