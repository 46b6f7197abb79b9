-- Accounts: users, sessions, API keys through the API, starred jobs, OAuth states.
-- Nobody waits on these rows (a session is read when a request comes), so no writer here
-- notifies the bus.

-- name: accounts_user_get
SELECT id, username, email, full_name, role, auth_source, enabled, declarative,
       created_at, updated_at, last_login_at, (password_hash IS NOT NULL) AS has_password
  FROM users WHERE id = $1;

-- name: accounts_user_for_login
SELECT id, username, role, enabled, password_hash FROM users WHERE username = $1;

-- name: accounts_user_password_hash
SELECT password_hash FROM users WHERE id = $1;

-- name: accounts_users_list
SELECT id, username, email, full_name, role, auth_source, enabled, declarative,
       created_at, updated_at, last_login_at
  FROM users ORDER BY id LIMIT $1 OFFSET $2;

-- name: accounts_users_count
SELECT count(*) FROM users;

-- name: accounts_user_insert
INSERT INTO users (username, email, full_name, password_hash, role, enabled)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, username, email, full_name, role, auth_source, enabled, declarative,
          created_at, updated_at, last_login_at;

-- name: accounts_user_update
-- $7: a new password hash, or NULL to keep the one there is.
UPDATE users
   SET email = $2, full_name = $3, role = $4, enabled = $5,
       username = $6, password_hash = coalesce($7, password_hash), updated_at = now()
 WHERE id = $1
RETURNING id, username, email, full_name, role, auth_source, enabled, declarative,
          created_at, updated_at, last_login_at;

-- name: accounts_user_set_password
UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1;

-- name: accounts_user_delete
DELETE FROM users WHERE id = $1 RETURNING id;

-- name: accounts_user_logged_in
UPDATE users SET last_login_at = now() WHERE id = $1;

-- name: accounts_user_by_github
SELECT id, username, enabled FROM users WHERE github_id = $1;

-- name: accounts_user_by_username
SELECT id, username, auth_source, enabled FROM users WHERE username = $1;

-- name: accounts_user_insert_external
-- A user that GitHub or LDAP vouches for: read-only until an admin says otherwise.
INSERT INTO users (username, email, full_name, role, auth_source, github_id)
VALUES ($1, $2, $3, 'read-only', $4, $5)
RETURNING id, username, enabled;

-- name: accounts_session_insert
INSERT INTO sessions (token_hash, csrf_token, user_id, api_key_id, expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
RETURNING id, expires_at;

-- name: accounts_session_purge_expired
DELETE FROM sessions WHERE expires_at < now();

-- name: accounts_session_lookup
-- The session behind a cookie with who it stands for; a disabled user, an expired
-- session or a deleted key finds nothing, so each stops working at once.
SELECT s.id, s.csrf_token, s.user_id, s.api_key_id, s.expires_at,
       coalesce(u.username, k.name) AS name, coalesce(u.role, k.role) AS role
  FROM sessions s
  LEFT JOIN users u ON u.id = s.user_id
  LEFT JOIN api_keys k ON k.id = s.api_key_id
 WHERE s.token_hash = $1 AND s.expires_at > now()
   AND (u.enabled OR k.id IS NOT NULL);

-- name: accounts_session_delete
DELETE FROM sessions WHERE token_hash = $1;

-- name: accounts_sessions_drop_others
-- After a password change, every other session of the user ends.
DELETE FROM sessions WHERE user_id = $1 AND id <> coalesce($2, 0);

-- name: accounts_api_keys_list
SELECT id, name, role, declarative, created_at, last_used_at
  FROM api_keys ORDER BY id LIMIT $1 OFFSET $2;

-- name: accounts_api_keys_count
SELECT count(*) FROM api_keys;

-- name: accounts_api_key_insert
INSERT INTO api_keys (name, key_hash, role)
VALUES ($1, $2, $3)
RETURNING id, name, role, declarative, created_at, last_used_at;

-- name: accounts_api_key_delete
DELETE FROM api_keys WHERE id = $1 RETURNING id;

-- name: accounts_starred_list
SELECT s.id, s.jobset_id, j.name AS jobset, p.id AS project_id, p.name AS project, s.job,
       s.created_at
  FROM starred_jobs s
  JOIN jobsets j ON j.id = s.jobset_id
  JOIN projects p ON p.id = j.project_id
 WHERE s.user_id = $1
 ORDER BY s.id LIMIT $2 OFFSET $3;

-- name: accounts_starred_count
SELECT count(*) FROM starred_jobs WHERE user_id = $1;

-- name: accounts_starred_insert
-- Starring twice is the same star: the second call finds the first.
WITH added AS (
    INSERT INTO starred_jobs (user_id, jobset_id, job) VALUES ($1, $2, $3)
    ON CONFLICT (user_id, jobset_id, job) DO NOTHING
    RETURNING id, true AS created
)
SELECT id, created FROM added
UNION ALL
SELECT id, false FROM starred_jobs
 WHERE user_id = $1 AND jobset_id = $2 AND job = $3 AND NOT EXISTS (SELECT FROM added);

-- name: accounts_starred_get
SELECT s.id, s.jobset_id, j.name AS jobset, p.id AS project_id, p.name AS project, s.job,
       s.created_at
  FROM starred_jobs s
  JOIN jobsets j ON j.id = s.jobset_id
  JOIN projects p ON p.id = j.project_id
 WHERE s.id = $1;

-- name: accounts_starred_delete
DELETE FROM starred_jobs WHERE id = $1 AND user_id = $2 RETURNING id;

-- name: accounts_jobset_exists
SELECT id FROM jobsets WHERE id = $1;

-- name: accounts_oauth_state_insert
WITH purged AS (DELETE FROM oauth_states WHERE expires_at < now())
INSERT INTO oauth_states (state_hash, expires_at)
VALUES ($1, now() + make_interval(secs => $2));

-- name: accounts_oauth_state_take
-- A state is good for one callback.
DELETE FROM oauth_states WHERE state_hash = $1 AND expires_at > now() RETURNING state_hash;
