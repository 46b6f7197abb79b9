-- Remote builders: machines reached over SSH that build with Nix's own SSH store. Their
-- health as the runners saw it, which builder each running build is on, the features a
-- derivation requires, derivations that failed recently (the failed-paths cache), and an
-- index for the claim's per-jobset order (fair shares).

CREATE TABLE builders (
    id                   bigserial PRIMARY KEY,
    name                 text NOT NULL UNIQUE,
    ssh_uri              text NOT NULL,
    systems              text[] NOT NULL,
    max_jobs             integer NOT NULL DEFAULT 1 CHECK (max_jobs > 0),
    speed_factor         double precision NOT NULL DEFAULT 1 CHECK (speed_factor > 0),
    supported_features   text[] NOT NULL DEFAULT '{}',
    mandatory_features   text[] NOT NULL DEFAULT '{}',
    -- A path on each runner host: the key itself is never in the database.
    ssh_key_file         text,
    -- Pinned: a builder whose host key does not match is never connected to.
    public_host_key      text NOT NULL,
    enabled              boolean NOT NULL DEFAULT true,
    -- Written by [declarative] remote_builders: the ones no longer declared are deleted.
    declarative          boolean NOT NULL DEFAULT false,
    -- 'unknown' until a probe answers; only an 'up' builder past `disabled_until` gets builds.
    health               text NOT NULL DEFAULT 'unknown'
                         CHECK (health IN ('unknown', 'up', 'down')),
    consecutive_failures integer NOT NULL DEFAULT 0,
    disabled_until       timestamptz,
    last_error           text,
    last_failure_at      timestamptz,
    last_success_at      timestamptz,
    last_probe_at        timestamptz,
    -- /proc/pressure "some avg10" as the last probe read them (percent).
    psi_cpu              double precision,
    psi_memory           double precision,
    last_dispatched_at   timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE builds ADD COLUMN builder_id bigint REFERENCES builders(id) ON DELETE SET NULL;
-- The derivation's requiredSystemFeatures, as the evaluator read them.
ALTER TABLE builds ADD COLUMN required_features text[] NOT NULL DEFAULT '{}';
-- Slots in use per builder.
CREATE INDEX builds_builder_idx ON builds (builder_id) WHERE state = 'running';
-- Each jobset's queue in claim order, so the claim takes a few from every jobset.
CREATE INDEX builds_jobset_queue_idx ON builds (jobset_id, global_priority DESC,
                                                 priority DESC, id)
    WHERE state = 'queued';
-- Each jobset's recent use, for the same order.
CREATE INDEX builds_jobset_running_idx ON builds (jobset_id) WHERE state = 'running';
CREATE INDEX builds_jobset_started_idx ON builds (jobset_id, started_at DESC)
    WHERE started_at IS NOT NULL;

-- A derivation that failed is not built again within queue_runner.failed_paths_ttl; a
-- restart of the build deletes its row.
CREATE TABLE failed_paths (
    drv_path   text PRIMARY KEY,
    build_id   bigint NOT NULL,
    status     smallint NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);
