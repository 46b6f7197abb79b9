-- API keys as the server sees them: a write request's Bearer key, by its SHA-256.

-- name: api_key_use
-- Looking a key up is also using it, so one statement finds it and stamps it.
UPDATE api_keys SET last_used_at = now()
 WHERE key_hash = $1
RETURNING id, name, role;
