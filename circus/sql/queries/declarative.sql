-- Applying `[declarative]` at start. Each statement changes a row only when a value
-- differs, so applying the same file twice changes nothing (not even updated_at).

-- name: declare_project
INSERT INTO projects (name, repository_url, description, declarative)
VALUES ($1, $2, $3, true)
ON CONFLICT (name) DO UPDATE
   SET repository_url = EXCLUDED.repository_url,
       description = EXCLUDED.description,
       declarative = true,
       updated_at = now()
 WHERE (projects.repository_url, projects.description, projects.declarative)
       IS DISTINCT FROM (EXCLUDED.repository_url, EXCLUDED.description, true)
RETURNING id;

-- name: declare_jobset
INSERT INTO jobsets (project_id, name, nix_expression, flake, branch, check_interval,
                     enabled, description, declarative)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true)
ON CONFLICT (project_id, name) DO UPDATE
   SET nix_expression = EXCLUDED.nix_expression, flake = EXCLUDED.flake,
       branch = EXCLUDED.branch, check_interval = EXCLUDED.check_interval,
       enabled = EXCLUDED.enabled, description = EXCLUDED.description,
       declarative = true, updated_at = now()
 WHERE (jobsets.nix_expression, jobsets.flake, jobsets.branch, jobsets.check_interval,
        jobsets.enabled, jobsets.description, jobsets.declarative)
       IS DISTINCT FROM
       (EXCLUDED.nix_expression, EXCLUDED.flake, EXCLUDED.branch, EXCLUDED.check_interval,
        EXCLUDED.enabled, EXCLUDED.description, true)
RETURNING id;

-- name: declare_jobset_input
INSERT INTO jobset_inputs (jobset_id, name, type, value)
VALUES ($1, $2, $3, $4)
ON CONFLICT (jobset_id, name) DO UPDATE
   SET type = EXCLUDED.type, value = EXCLUDED.value
 WHERE (jobset_inputs.type, jobset_inputs.value) IS DISTINCT FROM (EXCLUDED.type, EXCLUDED.value);

-- name: drop_undeclared_inputs
DELETE FROM jobset_inputs WHERE jobset_id = $1 AND NOT (name = ANY($2::text[]));

-- name: declare_api_key
INSERT INTO api_keys (name, key_hash, role, declarative)
VALUES ($1, $2, $3, true)
ON CONFLICT (key_hash) DO UPDATE
   SET name = EXCLUDED.name, role = EXCLUDED.role, declarative = true
 WHERE (api_keys.name, api_keys.role, api_keys.declarative)
       IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.role, true);

-- name: drop_undeclared_api_keys
-- A key removed from the file stops working at the next start.
DELETE FROM api_keys WHERE declarative AND NOT (key_hash = ANY($1::text[]));

-- name: user_password_hash_by_name
SELECT password_hash FROM users WHERE username = $1;

-- name: declare_user
-- $5 NULL: the stored hash already matches the declared password, so it stays (a new
-- hash of the same password would differ, and change the row on every start).
INSERT INTO users (username, email, role, enabled, password_hash, declarative)
VALUES ($1, $2, $3, $4, $5, true)
ON CONFLICT (username) DO UPDATE
   SET email = EXCLUDED.email, role = EXCLUDED.role, enabled = EXCLUDED.enabled,
       password_hash = coalesce(EXCLUDED.password_hash, users.password_hash),
       declarative = true, updated_at = now()
 WHERE (users.email, users.role, users.enabled, users.declarative)
       IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.role, EXCLUDED.enabled, true)
    OR EXCLUDED.password_hash IS NOT NULL;

-- name: drop_undeclared_users
-- A user removed from the file is deleted at the next start, as API keys are.
DELETE FROM users WHERE declarative AND NOT (username = ANY($1::text[]));
