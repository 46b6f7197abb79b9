-- builds.sr.ht jobs: a YAML manifest of packages, sources and shell tasks, submitted by
-- an API key or a user, claimed by a runner like a build (a lease; a dead runner's job
-- goes back to the queue), its tasks run one after another in a sandbox. Logs are chunks
-- as builds' are (task_nr 0 is the setup log), so any server streams them live.

CREATE TABLE srht_jobs (
    id              bigserial PRIMARY KEY,
    -- Who submitted it: a user (dashboard session or none) or an API key.
    owner_user_id   bigint REFERENCES users(id) ON DELETE CASCADE,
    owner_key_id    bigint REFERENCES api_keys(id) ON DELETE CASCADE,
    owner_name      text NOT NULL,
    manifest        text NOT NULL,
    note            text,
    tags            text[] NOT NULL DEFAULT '{}',
    image           text NOT NULL,
    arch            text,
    secrets         boolean NOT NULL DEFAULT true,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN (
                        'pending', 'queued', 'running', 'success', 'failed', 'cancelled',
                        'timeout')),
    runner_id       text,
    lease_until     timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    error_message   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    CHECK (owner_user_id IS NOT NULL OR owner_key_id IS NOT NULL)
);
CREATE INDEX srht_jobs_queued_idx ON srht_jobs (id) WHERE status = 'queued';
CREATE INDEX srht_jobs_running_idx ON srht_jobs (lease_until) WHERE status = 'running';
CREATE INDEX srht_jobs_user_idx ON srht_jobs (owner_user_id, id);
CREATE INDEX srht_jobs_key_idx ON srht_jobs (owner_key_id, id);

CREATE TABLE srht_tasks (
    job_id          bigint NOT NULL REFERENCES srht_jobs(id) ON DELETE CASCADE,
    nr              integer NOT NULL CHECK (nr > 0),
    name            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN (
                        'pending', 'running', 'success', 'failed', 'skipped')),
    PRIMARY KEY (job_id, nr)
);

CREATE TABLE srht_log_chunks (
    job_id          bigint NOT NULL REFERENCES srht_jobs(id) ON DELETE CASCADE,
    task_nr         integer NOT NULL,
    seq             integer NOT NULL,
    data            text NOT NULL,
    PRIMARY KEY (job_id, task_nr, seq)
);

CREATE TABLE srht_artifacts (
    id              bigserial PRIMARY KEY,
    job_id          bigint NOT NULL REFERENCES srht_jobs(id) ON DELETE CASCADE,
    -- The path as the manifest gave it.
    path            text NOT NULL,
    name            text NOT NULL,
    size            bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, path)
);

-- An artifact's bytes in pieces, so a runner on any host can hand it to every server
-- through the database, and a download streams it without holding it whole.
CREATE TABLE srht_artifact_chunks (
    artifact_id     bigint NOT NULL REFERENCES srht_artifacts(id) ON DELETE CASCADE,
    seq             integer NOT NULL,
    data            bytea NOT NULL,
    PRIMARY KEY (artifact_id, seq)
);
