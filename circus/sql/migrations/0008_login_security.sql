-- Login security (issue 10, hole 8): failed-login throttles checked before any password
-- is hashed, and sessions that end when what they were granted on changes.

-- Per account name (as typed, whether or not such a user exists, so the answer does not
-- tell which names exist): failures in a row and when the last one was. A success
-- deletes the row.
CREATE TABLE login_account_throttle (
    username        text PRIMARY KEY,
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL
);
CREATE INDEX login_account_throttle_last_idx ON login_account_throttle (last_failure_at);

-- How long after its last failure an account waits: nothing while it has fewer than
-- `free` failures in a row, then 1 s, 2 s, 4 s ... up to `longest` seconds.
CREATE FUNCTION login_backoff(failures integer, free integer, longest integer)
RETURNS interval LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN failures < free THEN interval '0'
                ELSE make_interval(secs => least(longest, power(2, least(failures - free, 30))))
           END
$$;

-- Per client address: a token bucket of password attempts (each one costs an argon2 hash).
CREATE TABLE login_address_throttle (
    address         text PRIMARY KEY,
    tokens          double precision NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX login_address_throttle_updated_idx ON login_address_throttle (updated_at);

-- A new password, another role or a disabled account ends the user's sessions, whichever
-- front end (API, dashboard, declarative file, psql) made the change. The session that
-- made it may name itself in `circus.keep_session` (set_config(..., true), so for its own
-- transaction only) to survive: a user changing their own password stays logged in.
CREATE FUNCTION users_end_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sessions
     WHERE user_id = NEW.id
       AND id IS DISTINCT FROM
           nullif(current_setting('circus.keep_session', true), '')::bigint;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_end_sessions
AFTER UPDATE OF password_hash, role, enabled ON users
FOR EACH ROW
WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash
      OR OLD.role IS DISTINCT FROM NEW.role
      OR OLD.enabled IS DISTINCT FROM NEW.enabled)
EXECUTE FUNCTION users_end_sessions();
