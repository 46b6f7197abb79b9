-- The build queue as runners see it: claim, keep the lease, give back.

-- name: queue_claim
-- Up to $4 ready builds for runner $1 (systems $2, lease $3 seconds) to run on builder $5
-- (NULL: the runner itself), whose features are $6 (mandatory ones $7): queued, every
-- dependency finished, marked running under a lease. A previous attempt's log is dropped.
-- Fair: after the global priority (bump), each jobset's n-th next build weighs
-- (its use + n) / scheduling_shares, its use being the builds it started in the last five
-- minutes (counted up to 1 000, so the count stays cheap) and those still running; the
-- lightest goes first. So a jobset with 10 000 queued builds takes turns with one with
-- 10, and one with 300 shares gets three turns to another's one with 100. Only the first
-- $4 of each jobset's queue are ranked (builds_jobset_queue_idx), so a long queue costs
-- no more than a short one.
-- `failed_in`: the build whose failure of the same derivation is younger than $8 seconds
-- (NULL $8: the failed-paths cache is off).
WITH candidates AS MATERIALIZED (
    -- A jobset with nothing ready gives no row. (No EXISTS probe of the queue index
    -- first: an index-only scan would walk every claimed build's dead entry each time.)
    SELECT c.*, j.id AS jobset_id, j.scheduling_shares AS shares
      FROM jobsets j
     CROSS JOIN LATERAL (
           SELECT b.id, b.global_priority, b.priority
             FROM builds b
            WHERE b.jobset_id = j.id AND b.state = 'queued'
              AND b.system = ANY($2::text[])
              AND ($6::text[] IS NULL OR b.required_features <@ $6::text[])
              AND $7::text[] <@ b.required_features
              AND NOT EXISTS (
                  SELECT 1 FROM build_dependencies d JOIN builds dep ON dep.id = d.dependency_id
                   WHERE d.build_id = b.id AND dep.state <> 'finished')
            ORDER BY b.global_priority DESC, b.priority DESC, b.id
            LIMIT $4) c
), used AS MATERIALIZED (  -- once per jobset with candidates
    SELECT s.jobset_id, s.shares,
           (SELECT count(*) FROM (SELECT 1 FROM builds r
                                   WHERE r.jobset_id = s.jobset_id
                                     AND r.started_at > now() - interval '5 minutes'
                                   ORDER BY r.started_at DESC
                                   LIMIT 1000) recent)
           + (SELECT count(*) FROM builds r
               WHERE r.jobset_id = s.jobset_id AND r.state = 'running') AS used
      FROM (SELECT DISTINCT jobset_id, shares FROM candidates) s
), ranked AS (
    SELECT c.id, c.global_priority, c.priority,
           (u.used + row_number() OVER (
                PARTITION BY c.jobset_id
                ORDER BY c.global_priority DESC, c.priority DESC, c.id))::float8
           / u.shares AS share_use
      FROM candidates c JOIN used u ON u.jobset_id = c.jobset_id
), next AS (
    SELECT b.id
      FROM builds b JOIN ranked c ON c.id = b.id
     WHERE b.state = 'queued'
     ORDER BY c.global_priority DESC, c.share_use, c.priority DESC, c.id
     LIMIT $4
       FOR UPDATE OF b SKIP LOCKED
), claimed AS (
    UPDATE builds b
       SET state = 'running', runner_id = $1, builder_id = $5,
           lease_expires_at = now() + make_interval(secs => $3::double precision),
           started_at = now(), attempts = b.attempts + 1, updated_at = now()
      FROM next, jobsets j, projects p
     WHERE b.id = next.id AND j.id = b.jobset_id AND p.id = b.project_id
 RETURNING b.id, b.job, b.drv_path, b.system, b.timeout, b.max_silent, b.is_aggregate,
           b.attempts, b.builder_id, j.name AS jobset, p.name AS project
), cleared AS (
    DELETE FROM build_log_chunks c USING claimed WHERE c.build_id = claimed.id
)
SELECT claimed.*,
       (SELECT f.build_id FROM failed_paths f
         WHERE f.drv_path = claimed.drv_path AND $8::double precision IS NOT NULL
           AND f.failed_at > now() - make_interval(secs => $8::double precision))
       AS failed_in,
       pg_notify('circus_build_changed', claimed.id::text)
  FROM claimed;

-- name: queue_heartbeat
-- Renew runner $1's leases on builds $2; the ids not returned are no longer ours.
UPDATE builds
   SET lease_expires_at = now() + make_interval(secs => $3::double precision)
 WHERE id = ANY($2::bigint[]) AND state = 'running' AND runner_id = $1
RETURNING id;

-- name: queue_lost_builds
-- Which of builds $2 are no longer running under runner $1 (cancelled, reaped, gone).
SELECT id FROM unnest($2::bigint[]) AS ids(id)
 WHERE NOT EXISTS (SELECT 1 FROM builds b
                    WHERE b.id = ids.id AND b.state = 'running' AND b.runner_id = $1);

-- name: queue_reap_expired
-- Builds whose runner stopped renewing its lease go back to the queue.
WITH reaped AS (
    UPDATE builds
       SET state = 'queued', runner_id = NULL, builder_id = NULL, lease_expires_at = NULL,
           started_at = NULL, updated_at = now()
     WHERE state = 'running' AND lease_expires_at < now()
 RETURNING id
)
SELECT id, pg_notify('circus_build_changed', id::text),
       pg_notify('circus_builds_queued', '')
  FROM reaped;

-- name: queue_hand_back
-- Runner $1 stops without finishing builds $2: they are queued again for anyone.
WITH returned AS (
    UPDATE builds
       SET state = 'queued', runner_id = NULL, builder_id = NULL, lease_expires_at = NULL,
           started_at = NULL, updated_at = now()
     WHERE id = ANY($2::bigint[]) AND state = 'running' AND runner_id = $1
 RETURNING id
), cleared AS (
    DELETE FROM build_log_chunks c USING returned WHERE c.build_id = returned.id
)
SELECT id, pg_notify('circus_build_changed', id::text),
       pg_notify('circus_builds_queued', '')
  FROM returned;

-- name: queue_fail_unsupported
-- Queued builds older than $3 seconds that neither this runner (systems $1, features $2)
-- nor any enabled builder can build finish as "unsupported" (9).
WITH failed AS (
    UPDATE builds b
       SET state = 'finished', buildstatus = 9, finished_at = now(), updated_at = now(),
           error_message = 'no runner or builder supports system ' || b.system
               || CASE WHEN b.required_features = '{}' THEN ''
                       ELSE ' with features ' || array_to_string(b.required_features, ', ')
                  END
     WHERE b.state = 'queued'
       AND b.created_at < now() - make_interval(secs => $3::double precision)
       AND NOT (b.system = ANY($1::text[]) AND b.required_features <@ $2::text[])
       AND NOT EXISTS (
           SELECT 1 FROM builders m
            WHERE m.enabled AND b.system = ANY(m.systems)
              AND b.required_features <@ (m.supported_features || m.mandatory_features)
              AND m.mandatory_features <@ b.required_features)
 RETURNING b.id
)
SELECT id, pg_notify('circus_build_changed', id::text) FROM failed;

-- name: queued_builds_page
-- Queued builds in the order runners claim them (builds_queue_idx).
SELECT b.id, b.project_id, p.name AS project, b.jobset_id, j.name AS jobset, b.job,
       b.nix_name, b.system, b.state, b.buildstatus, b.priority, b.global_priority,
       b.created_at, b.started_at, b.finished_at, b.runner_id
  FROM (SELECT * FROM builds WHERE state = 'queued'
         AND ($1::text IS NULL OR system = $1)
         ORDER BY global_priority DESC, priority DESC, id
         LIMIT $2 OFFSET $3) b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id
 ORDER BY b.global_priority DESC, b.priority DESC, b.id;

-- name: queued_builds_count
SELECT count(*) FROM builds WHERE state = 'queued' AND ($1::text IS NULL OR system = $1);

-- name: running_builds
-- Running builds (builds_running_idx); few at a time: bounded by the runners' workers.
SELECT b.id, b.project_id, p.name AS project, b.jobset_id, j.name AS jobset, b.job,
       b.nix_name, b.system, b.state, b.buildstatus, b.priority, b.global_priority,
       b.created_at, b.started_at, b.finished_at, b.runner_id, b.log_size
  FROM builds b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id
 WHERE b.state = 'running'
 ORDER BY b.started_at NULLS LAST, b.id
 LIMIT 500;
