-- Accounts: users (local password, GitHub or LDAP), browser sessions, starred jobs and
-- the pending states of GitHub logins. Secrets are never stored: passwords as argon2id
-- hashes, session tokens and OAuth states as SHA-256.

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    username        text NOT NULL UNIQUE
                    CHECK (username ~ '^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,99}$'),
    email           text,
    full_name       text NOT NULL DEFAULT '',
    -- NULL: this account cannot log in with a password (GitHub or LDAP only).
    password_hash   text,
    -- Checked against the role table in circus/server/accounts/auth.py, as api_keys.role is.
    role            text NOT NULL DEFAULT 'read-only',
    auth_source     text NOT NULL DEFAULT 'local'
                    CHECK (auth_source IN ('local', 'github', 'ldap')),
    github_id       bigint UNIQUE,
    enabled         boolean NOT NULL DEFAULT true,
    declarative     boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz
);

-- A session belongs to a user or to the API key it was opened with; deleting either
-- ends it at once.
CREATE TABLE sessions (
    id              bigserial PRIMARY KEY,
    token_hash      text NOT NULL UNIQUE,
    csrf_token      text NOT NULL,
    user_id         bigint REFERENCES users(id) ON DELETE CASCADE,
    api_key_id      bigint REFERENCES api_keys(id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CHECK ((user_id IS NULL) <> (api_key_id IS NULL))
);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE starred_jobs (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    jobset_id       bigint NOT NULL REFERENCES jobsets(id) ON DELETE CASCADE,
    job             text NOT NULL CHECK (job <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, jobset_id, job)
);

-- The `state` of a GitHub login between the redirect and the callback; kept in the
-- database so that any server process may receive the callback.
CREATE TABLE oauth_states (
    state_hash      text PRIMARY KEY,
    expires_at      timestamptz NOT NULL
);
