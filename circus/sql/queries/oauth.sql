-- OAuth states: the `state` of a GitHub login under way, as its SHA-256, good for one
-- callback. Nobody waits on these rows, so no writer here notifies the bus.

-- name: oauth_state_insert
-- Expired states go when a login starts, which keeps the table small without a timer.
WITH purged AS (DELETE FROM oauth_states WHERE expires_at < now())
INSERT INTO oauth_states (state_hash, expires_at)
VALUES ($1, now() + make_interval(secs => $2));

-- name: oauth_state_take
-- A state is good for one callback.
DELETE FROM oauth_states WHERE state_hash = $1 AND expires_at > now() RETURNING state_hash;
