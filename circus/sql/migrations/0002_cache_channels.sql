-- The binary cache's catalogue, channels, and what garbage collection needs.

-- Every store path Circus serves: the outputs of its successful builds and their
-- closures, with what a narinfo says about them, so a narinfo is one indexed read and
-- an unrelated path of the same store is never served.
CREATE TABLE cache_paths (
    hash_part       text PRIMARY KEY CHECK (hash_part ~ '^[0-9a-z]{32}$'),
    store_path      text NOT NULL,
    nar_hash        text NOT NULL,          -- sha256:<nix32>, as in Nix's fingerprint
    nar_size        bigint NOT NULL CHECK (nar_size > 0),
    refs            text[] NOT NULL DEFAULT '{}',  -- full store paths
    deriver         text,
    -- The build whose closure first brought the path; kept when the build is deleted
    -- because the path was still built by Circus.
    build_id        bigint REFERENCES builds(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cache_paths_build_idx ON cache_paths (build_id);

CREATE TABLE channels (
    id              bigserial PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    jobset_id       bigint NOT NULL REFERENCES jobsets(id) ON DELETE CASCADE,
    name            text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,99}$'),
    description     text NOT NULL DEFAULT '',
    current_evaluation_id bigint REFERENCES evaluations(id) ON DELETE SET NULL,
    -- Automatic promotion only looks at evaluations newer than this: a manual promotion
    -- (even back to an older evaluation) is not undone by an older green evaluation.
    advance_after_id bigint NOT NULL DEFAULT 0,
    promoted_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channels_jobset_idx ON channels (jobset_id);
CREATE INDEX channels_project_idx ON channels (project_id, id);

-- Finished builds by age, for the periodic expiry of GC roots (and the recent builds
-- list and time series of the API: `finished_at < x` implies the predicate).
CREATE INDEX builds_finished_idx ON builds (finished_at) WHERE finished_at IS NOT NULL;
