-- API keys, stored as their SHA-256 only: the admin's list, create and delete, and a
-- presented key (a Bearer key or a key login) found by its hash. Nobody waits on these
-- rows, so no writer here notifies the bus.

-- name: api_keys_list
SELECT id, name, role, declarative, created_at, last_used_at
  FROM api_keys ORDER BY id LIMIT $1 OFFSET $2;

-- name: api_keys_count
SELECT count(*) FROM api_keys;

-- name: api_key_insert
INSERT INTO api_keys (name, key_hash, role)
VALUES ($1, $2, $3)
RETURNING id, name, role, declarative, created_at, last_used_at;

-- name: api_key_delete
DELETE FROM api_keys WHERE id = $1 RETURNING id;

-- name: api_key_use
-- Looking a key up is also using it, so one statement finds it and stamps it.
UPDATE api_keys SET last_used_at = now()
 WHERE key_hash = $1
RETURNING id, name, role;
