-- Remote builders as the runners use them: which have free slots, a claim's slot count
-- under a lock, and the health each build and probe reports.

-- name: builders_dispatchable
-- Enabled builders that are up, past any back-off, under the pressure threshold $1 (NULL:
-- none), with a free slot; in the order of queue_runner.scheduling_strategy $2:
-- speed_factor_only: fastest first; psi_aware: most free capacity (free slots × speed
-- factor) first, the least pressed among equals; round_robin: the one sent a build
-- longest ago first.
SELECT g.*, g.max_jobs - g.in_use AS free
  FROM (SELECT b.*, (SELECT count(*) FROM builds r
                      WHERE r.builder_id = b.id AND r.state = 'running') AS in_use
          FROM builders b
         WHERE b.enabled AND b.health = 'up'
           AND (b.disabled_until IS NULL OR b.disabled_until <= now())
           AND ($1::double precision IS NULL
                OR greatest(coalesce(b.psi_cpu, 0), coalesce(b.psi_memory, 0)) <= $1)) g
 WHERE g.in_use < g.max_jobs
 ORDER BY CASE WHEN $2 = 'speed_factor_only' THEN g.speed_factor END DESC NULLS LAST,
          CASE WHEN $2 = 'psi_aware' THEN (g.max_jobs - g.in_use) * g.speed_factor END
               DESC NULLS LAST,
          CASE WHEN $2 = 'psi_aware'
               THEN greatest(coalesce(g.psi_cpu, 0), coalesce(g.psi_memory, 0)) END
               NULLS LAST,
          CASE WHEN $2 = 'round_robin' THEN g.last_dispatched_at END NULLS FIRST,
          g.max_jobs - g.in_use DESC, g.id;

-- name: builder_lock_slots
-- Claims for builder $1 are made one at a time (until the transaction ends), so two
-- runners never both count the same free slot; the slots free now.
SELECT pg_advisory_xact_lock(hashtext('circus_builder_slots'), $1::int),
       (SELECT b.max_jobs - (SELECT count(*) FROM builds r
                              WHERE r.builder_id = b.id AND r.state = 'running')
          FROM builders b WHERE b.id = $1 AND b.enabled) AS free;

-- name: builder_dispatched
UPDATE builders SET last_dispatched_at = now() WHERE id = $1;

-- name: builders_known_systems
-- Every system an enabled builder builds (with the runner's own: no build of these is
-- "unsupported").
SELECT DISTINCT unnest(systems) AS system FROM builders WHERE enabled;

-- name: builders_to_probe
-- Enabled builders due a probe: one that is not down every $1 seconds (a new one at
-- once), one that is down as soon as its back-off is over.
SELECT * FROM builders
 WHERE enabled
   AND CASE WHEN health = 'down' THEN disabled_until IS NULL OR disabled_until <= now()
            ELSE last_probe_at IS NULL
                 OR last_probe_at < now() - make_interval(secs => $1::double precision) END
 ORDER BY id;

-- name: builder_healthy
-- Builder $1 answered (a probe, $2 with its pressure $3/$4, or a build): up again, its
-- failures forgotten. When it was not up, runners hear there is room for builds. A
-- build on a builder that is up already writes nothing.
WITH before AS (SELECT health FROM builders WHERE id = $1),
changed AS (
    UPDATE builders
       SET health = 'up', consecutive_failures = 0, disabled_until = NULL,
           last_error = NULL, last_success_at = now(),
           last_probe_at = CASE WHEN $2 THEN now() ELSE last_probe_at END,
           psi_cpu = CASE WHEN $2 THEN $3 ELSE psi_cpu END,
           psi_memory = CASE WHEN $2 THEN $4 ELSE psi_memory END
     WHERE id = $1 AND ($2 OR health <> 'up' OR consecutive_failures > 0)
 RETURNING id
)
SELECT changed.id, pg_notify('circus_builders_changed', changed.id::text),
       CASE WHEN before.health <> 'up' THEN pg_notify('circus_builds_queued', '') END
  FROM changed, before;

-- name: builder_failed
-- Builder $1 failed ($2 says how; $3: by a probe): down, and disabled for
-- $4 × 2^(failures − 1) seconds, at most $5.
UPDATE builders
   SET health = 'down', consecutive_failures = consecutive_failures + 1,
       disabled_until = now() + make_interval(secs => least(
           $4::double precision * power(2, least(consecutive_failures, 30)),
           $5::double precision)),
       last_error = $2, last_failure_at = now(),
       last_probe_at = CASE WHEN $3 THEN now() ELSE last_probe_at END
 WHERE id = $1
RETURNING id, consecutive_failures, disabled_until,
          pg_notify('circus_builders_changed', id::text);
