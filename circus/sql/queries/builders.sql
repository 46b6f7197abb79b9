-- Remote builders (run by circus/store/builders.py): what an admin or `[declarative]
-- remote_builders` configured, with the health the runners' probes wrote. Every write
-- notifies circus_builders_changed with the builder's id in the same statement, so the
-- runners reload their builders only when the change commits.
--
-- The configured columns, in the order the writes take them: $1 name, $2 ssh_uri,
-- $3 systems, $4 max_jobs, $5 speed_factor, $6 supported_features, $7 mandatory_features,
-- $8 ssh_key_file, $9 public_host_key, $10 enabled.

-- name: builders_list
-- Builder $1, or every builder when $1 is NULL; with the slots in use (its running
-- builds: the partial index builds_builder_idx) and whether it gets builds now (enabled,
-- up, past its back-off).
SELECT b.id, b.name, b.ssh_uri, b.systems, b.max_jobs, b.speed_factor,
       b.supported_features, b.mandatory_features, b.ssh_key_file, b.public_host_key,
       b.enabled, b.declarative, b.health, b.consecutive_failures, b.disabled_until,
       b.last_error, b.last_failure_at, b.last_success_at, b.last_probe_at, b.psi_cpu,
       b.psi_memory, b.last_dispatched_at, b.created_at, b.updated_at,
       (SELECT count(*) FROM builds r WHERE r.state = 'running' AND r.builder_id = b.id)
           AS slots_in_use,
       (b.enabled AND b.health = 'up'
        AND (b.disabled_until IS NULL OR b.disabled_until <= now())) AS active
  FROM builders b
 WHERE $1::bigint IS NULL OR b.id = $1
 ORDER BY b.name;

-- name: builder_create
-- No row when the name is taken.
INSERT INTO builders (name, ssh_uri, systems, max_jobs, speed_factor, supported_features,
                      mandatory_features, ssh_key_file, public_host_key, enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (name) DO NOTHING
RETURNING id, pg_notify('circus_builders_changed', id::text) AS notified;

-- name: builder_update
-- $11: the builder's id. A new address, host key or key file makes what the probes saw
-- stale: the builder is 'unknown' again, without back-off, and due a probe at once.
UPDATE builders b
   SET name = $1, ssh_uri = $2, systems = $3, max_jobs = $4, speed_factor = $5,
       supported_features = $6, mandatory_features = $7, ssh_key_file = $8,
       public_host_key = $9, enabled = $10, updated_at = now(),
       health = CASE WHEN m.moved THEN 'unknown' ELSE b.health END,
       consecutive_failures = CASE WHEN m.moved THEN 0 ELSE b.consecutive_failures END,
       disabled_until = CASE WHEN m.moved THEN NULL ELSE b.disabled_until END,
       last_probe_at = CASE WHEN m.moved THEN NULL ELSE b.last_probe_at END
  FROM (SELECT (o.ssh_uri, o.public_host_key, o.ssh_key_file)
               IS DISTINCT FROM ($2::text, $9::text, $8::text) AS moved
          FROM builders o WHERE o.id = $11) m
 WHERE b.id = $11
RETURNING b.id, pg_notify('circus_builders_changed', b.id::text) AS notified;

-- name: builder_delete
-- Its builds keep their rows; their builder_id is set NULL by the foreign key.
DELETE FROM builders WHERE id = $1
RETURNING id, pg_notify('circus_builders_changed', id::text) AS notified;

-- name: builder_declare
-- [declarative] remote_builders: made, or taken over by name; a row whose values are the
-- declared ones is not touched (nor notified), so a second start changes nothing.
INSERT INTO builders (name, ssh_uri, systems, max_jobs, speed_factor, supported_features,
                      mandatory_features, ssh_key_file, public_host_key, enabled,
                      declarative)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, true)
ON CONFLICT (name) DO UPDATE
   SET ssh_uri = EXCLUDED.ssh_uri, systems = EXCLUDED.systems,
       max_jobs = EXCLUDED.max_jobs, speed_factor = EXCLUDED.speed_factor,
       supported_features = EXCLUDED.supported_features,
       mandatory_features = EXCLUDED.mandatory_features,
       ssh_key_file = EXCLUDED.ssh_key_file, public_host_key = EXCLUDED.public_host_key,
       enabled = EXCLUDED.enabled, declarative = true, updated_at = now(),
       health = CASE WHEN (builders.ssh_uri, builders.public_host_key, builders.ssh_key_file)
                          IS DISTINCT FROM
                          (EXCLUDED.ssh_uri, EXCLUDED.public_host_key, EXCLUDED.ssh_key_file)
                     THEN 'unknown' ELSE builders.health END,
       consecutive_failures = CASE WHEN (builders.ssh_uri, builders.public_host_key,
                                         builders.ssh_key_file)
                                        IS DISTINCT FROM
                                        (EXCLUDED.ssh_uri, EXCLUDED.public_host_key,
                                         EXCLUDED.ssh_key_file)
                                   THEN 0 ELSE builders.consecutive_failures END,
       disabled_until = CASE WHEN (builders.ssh_uri, builders.public_host_key,
                                   builders.ssh_key_file)
                                  IS DISTINCT FROM
                                  (EXCLUDED.ssh_uri, EXCLUDED.public_host_key,
                                   EXCLUDED.ssh_key_file)
                             THEN NULL ELSE builders.disabled_until END,
       last_probe_at = CASE WHEN (builders.ssh_uri, builders.public_host_key,
                                  builders.ssh_key_file)
                                 IS DISTINCT FROM
                                 (EXCLUDED.ssh_uri, EXCLUDED.public_host_key,
                                  EXCLUDED.ssh_key_file)
                            THEN NULL ELSE builders.last_probe_at END
 WHERE (builders.ssh_uri, builders.systems, builders.max_jobs, builders.speed_factor,
        builders.supported_features, builders.mandatory_features, builders.ssh_key_file,
        builders.public_host_key, builders.enabled, builders.declarative)
       IS DISTINCT FROM
       (EXCLUDED.ssh_uri, EXCLUDED.systems, EXCLUDED.max_jobs, EXCLUDED.speed_factor,
        EXCLUDED.supported_features, EXCLUDED.mandatory_features, EXCLUDED.ssh_key_file,
        EXCLUDED.public_host_key, EXCLUDED.enabled, true)
RETURNING id, pg_notify('circus_builders_changed', id::text) AS notified;

-- name: builders_drop_undeclared
-- Declared builders whose names ($1) the configuration no longer lists; the ones made
-- through the API stay.
DELETE FROM builders WHERE declarative AND NOT (name = ANY($1::text[]))
RETURNING id, name, pg_notify('circus_builders_changed', id::text) AS notified;
