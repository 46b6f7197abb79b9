-- Sessions: a browser's login, found by the SHA-256 of its cookie's token. Nobody waits
-- on these rows (a session is read when a request comes), so no writer here notifies the
-- bus.

-- name: session_insert
INSERT INTO sessions (token_hash, csrf_token, user_id, api_key_id, expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
RETURNING id, expires_at;

-- name: sessions_purge_expired
DELETE FROM sessions WHERE expires_at < now();

-- name: session_by_token
-- The session behind a cookie with who it stands for; a disabled user, an expired
-- session or a deleted key finds nothing, so each stops working at once.
SELECT s.id, s.csrf_token, s.user_id, s.api_key_id, s.expires_at,
       coalesce(u.username, k.name) AS name, coalesce(u.role, k.role) AS role
  FROM sessions s
  LEFT JOIN users u ON u.id = s.user_id
  LEFT JOIN api_keys k ON k.id = s.api_key_id
 WHERE s.token_hash = $1 AND s.expires_at > now()
   AND (u.enabled OR k.id IS NOT NULL);

-- name: session_delete
DELETE FROM sessions WHERE token_hash = $1;

-- name: session_keep
-- The session that survives this transaction's change of a user (see users_end_sessions
-- in migration 0008); 0 keeps none.
SELECT set_config('circus.keep_session', coalesce($1::bigint, 0)::text, true);
