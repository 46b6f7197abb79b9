-- Users: accounts that log in with a password, GitHub or LDAP, and the admin's changes to
-- them. A change of password, role or state ends the user's sessions (the trigger of
-- migration 0008); nobody else waits on these rows, so no writer here notifies the bus.

-- name: user_get
SELECT id, username, email, full_name, role, auth_source, enabled, declarative,
       created_at, updated_at, last_login_at, (password_hash IS NOT NULL) AS has_password
  FROM users WHERE id = $1;

-- name: user_credentials
SELECT id, username, role, enabled, password_hash FROM users WHERE username = $1;

-- name: user_password_hash
SELECT password_hash FROM users WHERE id = $1;

-- name: users_list
SELECT id, username, email, full_name, role, auth_source, enabled, declarative,
       created_at, updated_at, last_login_at
  FROM users ORDER BY id LIMIT $1 OFFSET $2;

-- name: users_count
SELECT count(*) FROM users;

-- name: user_insert
INSERT INTO users (username, email, full_name, password_hash, role, enabled)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, username, email, full_name, role, auth_source, enabled, declarative,
          created_at, updated_at, last_login_at;

-- name: user_update
-- $7: a new password hash, or NULL to keep the one there is.
UPDATE users
   SET email = $2, full_name = $3, role = $4, enabled = $5,
       username = $6, password_hash = coalesce($7, password_hash), updated_at = now()
 WHERE id = $1
RETURNING id, username, email, full_name, role, auth_source, enabled, declarative,
          created_at, updated_at, last_login_at;

-- name: user_set_password
UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1;

-- name: user_delete
DELETE FROM users WHERE id = $1 RETURNING id;

-- name: user_stamp_login
UPDATE users SET last_login_at = now() WHERE id = $1;

-- name: user_by_github_id
SELECT id, username, enabled FROM users WHERE github_id = $1;

-- name: user_by_name
SELECT id, username, auth_source, enabled FROM users WHERE username = $1;

-- name: user_insert_external
-- A user that GitHub or LDAP vouches for: read-only until an admin says otherwise.
INSERT INTO users (username, email, full_name, role, auth_source, github_id)
VALUES ($1, $2, $3, 'read-only', $4, $5)
RETURNING id, username, enabled;
