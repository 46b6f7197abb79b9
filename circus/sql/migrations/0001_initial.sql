-- The spine: projects, jobsets and their inputs, evaluations, builds with everything a
-- build produces, log chunks, API keys. Build statuses are Hydra's `buildstatus` codes.

CREATE TABLE projects (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE
                    CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,99}$'),
    display_name    text NOT NULL DEFAULT '',
    description     text NOT NULL DEFAULT '',
    repository_url  text NOT NULL,
    homepage        text NOT NULL DEFAULT '',
    enabled         boolean NOT NULL DEFAULT true,
    declarative     boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobsets (
    id              bigserial PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,99}$'),
    description     text NOT NULL DEFAULT '',
    nix_expression  text NOT NULL DEFAULT 'hydraJobs',
    flake           boolean NOT NULL DEFAULT true,
    branch          text,
    -- Hydra's jobset states: 0 disabled, 1 enabled, 2 one-shot, 3 one-at-a-time.
    enabled         smallint NOT NULL DEFAULT 1 CHECK (enabled BETWEEN 0 AND 3),
    hidden          boolean NOT NULL DEFAULT false,
    check_interval  integer NOT NULL DEFAULT 60 CHECK (check_interval >= 0),
    scheduling_shares integer NOT NULL DEFAULT 100 CHECK (scheduling_shares > 0),
    keep_evaluations integer NOT NULL DEFAULT 3,
    declarative     boolean NOT NULL DEFAULT false,
    -- Set when someone asks for an evaluation now; cleared when the evaluator takes it.
    trigger_time    timestamptz,
    last_checked_at timestamptz,
    error_message   text,
    error_time      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE jobset_inputs (
    id              bigserial PRIMARY KEY,
    jobset_id       bigint NOT NULL REFERENCES jobsets(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_-]*$'),
    type            text NOT NULL CHECK (type IN ('string', 'boolean', 'nix', 'path', 'git')),
    value           text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (jobset_id, name)
);

CREATE TABLE evaluations (
    id              bigserial PRIMARY KEY,
    jobset_id       bigint NOT NULL REFERENCES jobsets(id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    commit_hash     text NOT NULL,
    inputs_hash     text NOT NULL,
    flake_uri       text NOT NULL DEFAULT '',
    error_message   text,
    nr_jobs         integer NOT NULL DEFAULT 0,
    nr_builds       integer NOT NULL DEFAULT 0,
    nr_new_builds   integer NOT NULL DEFAULT 0,
    nr_job_errors   integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX evaluations_jobset_idx ON evaluations (jobset_id, id DESC);
CREATE INDEX evaluations_status_idx ON evaluations (status, id DESC);

CREATE TABLE evaluation_inputs (
    evaluation_id   bigint NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
    name            text NOT NULL,
    type            text NOT NULL,
    uri             text NOT NULL DEFAULT '',
    revision        text NOT NULL DEFAULT '',
    value           text NOT NULL DEFAULT '',
    PRIMARY KEY (evaluation_id, name)
);

-- A job that failed to evaluate while the others did.
CREATE TABLE evaluation_errors (
    evaluation_id   bigint NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
    job             text NOT NULL,
    error_message   text NOT NULL,
    PRIMARY KEY (evaluation_id, job)
);

CREATE TABLE builds (
    id              bigserial PRIMARY KEY,
    jobset_id       bigint NOT NULL REFERENCES jobsets(id) ON DELETE CASCADE,
    -- Denormalised so that listing a project's builds needs no join to page.
    project_id      bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    job             text NOT NULL,
    drv_path        text NOT NULL,
    nix_name        text NOT NULL DEFAULT '',
    system          text NOT NULL,
    description     text NOT NULL DEFAULT '',
    license         text NOT NULL DEFAULT '',
    homepage        text NOT NULL DEFAULT '',
    maintainers     text NOT NULL DEFAULT '',
    timeout         integer,
    max_silent      integer,
    is_aggregate    boolean NOT NULL DEFAULT false,
    priority        integer NOT NULL DEFAULT 100,
    global_priority integer NOT NULL DEFAULT 0,
    keep            boolean NOT NULL DEFAULT false,
    -- queued → running → finished; `buildstatus` is set when finished.
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'finished')),
    buildstatus     smallint CHECK (buildstatus BETWEEN 0 AND 11),
    error_message   text,
    runner_id       text,
    lease_expires_at timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    log_size        bigint NOT NULL DEFAULT 0,
    signature       text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (jobset_id, job, drv_path),
    CHECK ((state = 'finished') = (buildstatus IS NOT NULL))
);
-- Pages of the build list, newest first, whole or by project/jobset/state.
CREATE INDEX builds_jobset_idx ON builds (jobset_id, id DESC);
CREATE INDEX builds_project_idx ON builds (project_id, id DESC);
CREATE INDEX builds_status_idx ON builds (buildstatus, id DESC);
CREATE INDEX builds_drv_idx ON builds (drv_path);
CREATE INDEX builds_job_idx ON builds (jobset_id, job, id DESC);
-- The queue: only unfinished builds are in these, so claiming stays cheap.
CREATE INDEX builds_queue_idx ON builds (global_priority DESC, priority DESC, id)
    WHERE state = 'queued';
CREATE INDEX builds_running_idx ON builds (lease_expires_at) WHERE state = 'running';

CREATE TABLE evaluation_builds (
    evaluation_id   bigint NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
    build_id        bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    is_new          boolean NOT NULL DEFAULT true,
    PRIMARY KEY (evaluation_id, build_id)
);
CREATE INDEX evaluation_builds_build_idx ON evaluation_builds (build_id);

CREATE TABLE build_outputs (
    build_id        bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    name            text NOT NULL,
    path            text NOT NULL,
    PRIMARY KEY (build_id, name)
);
CREATE INDEX build_outputs_path_idx ON build_outputs (path);

-- Each derivation Nix built (or substituted) while realising a build.
CREATE TABLE build_steps (
    build_id        bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    step_nr         integer NOT NULL,
    drv_path        text NOT NULL,
    system          text NOT NULL DEFAULT '',
    kind            text NOT NULL DEFAULT 'build' CHECK (kind IN ('build', 'substitution')),
    machine         text NOT NULL DEFAULT '',
    status          smallint,
    error_message   text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (build_id, step_nr)
);

CREATE TABLE build_products (
    build_id        bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    product_nr      integer NOT NULL,
    type            text NOT NULL,
    subtype         text NOT NULL DEFAULT '',
    name            text NOT NULL,
    path            text NOT NULL,
    default_path    text NOT NULL DEFAULT '',
    file_size       bigint,
    sha256          text,
    PRIMARY KEY (build_id, product_nr)
);

CREATE TABLE build_metrics (
    build_id        bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    name            text NOT NULL,
    value           double precision NOT NULL,
    unit            text NOT NULL DEFAULT '',
    PRIMARY KEY (build_id, name)
);

-- A build waits for the builds of its input derivations (and an aggregate for its
-- constituents) so that a failure is reported once, as "dependency failed" downstream.
CREATE TABLE build_dependencies (
    build_id        bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    dependency_id   bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    PRIMARY KEY (build_id, dependency_id)
);
CREATE INDEX build_dependencies_dep_idx ON build_dependencies (dependency_id);

CREATE TABLE aggregate_constituents (
    aggregate_id    bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    constituent_id  bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    PRIMARY KEY (aggregate_id, constituent_id)
);

-- The log as the runner reads it; folded into build_logs (zstd) when the build ends.
CREATE TABLE build_log_chunks (
    build_id        bigint NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    seq             integer NOT NULL,
    data            text NOT NULL,
    PRIMARY KEY (build_id, seq)
);

CREATE TABLE build_logs (
    build_id        bigint PRIMARY KEY REFERENCES builds(id) ON DELETE CASCADE,
    compressed      bytea NOT NULL,
    size            bigint NOT NULL
);

CREATE TABLE api_keys (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    key_hash        text NOT NULL UNIQUE,
    role            text NOT NULL,
    declarative     boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz
);
