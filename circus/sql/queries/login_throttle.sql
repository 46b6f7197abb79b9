-- Login throttles: a token bucket per client address and a run of failures per account
-- name, which decide before any password is hashed whether an attempt may go ahead
-- (services/login.py). Nobody waits on these rows, so no writer here notifies the bus.

-- name: login_address_take
-- Spend one password attempt of an address's bucket ($2 at most, refilled at $3 a
-- second). No row: the bucket is empty.
INSERT INTO login_address_throttle AS t (address, tokens, updated_at)
VALUES ($1, $2::float8 - 1, now())
ON CONFLICT (address) DO UPDATE
   SET tokens = least($2::float8, t.tokens
                      + extract(epoch FROM now() - t.updated_at)::float8 * $3::float8) - 1,
       updated_at = now()
 WHERE least($2::float8, t.tokens
             + extract(epoch FROM now() - t.updated_at)::float8 * $3::float8) >= 1
RETURNING tokens;

-- name: login_address_wait
-- Seconds until the address's bucket holds an attempt again.
SELECT (1 - least($2::float8, tokens
                  + extract(epoch FROM now() - updated_at)::float8 * $3::float8))
       / $3::float8
  FROM login_address_throttle WHERE address = $1;

-- name: login_account_take
-- Count an attempt on an account name as a failure before its password is checked, so
-- that concurrent guesses cannot all slip past the count; a success clears it. $2: the
-- failures that are free, $3: the longest wait, after which old failures are forgotten.
-- No row: the account waits (a refused attempt does not lengthen the wait).
INSERT INTO login_account_throttle AS t (username, failures, last_failure_at)
VALUES ($1, 1, now())
ON CONFLICT (username) DO UPDATE
   SET failures = CASE WHEN t.last_failure_at < now() - make_interval(secs => $3::int)
                       THEN 1 ELSE t.failures + 1 END,
       last_failure_at = now()
 WHERE t.last_failure_at + login_backoff(t.failures, $2::int, $3::int) <= now()
RETURNING failures;

-- name: login_account_wait
SELECT extract(epoch FROM last_failure_at + login_backoff(failures, $2::int, $3::int)
                         - now())::float8
  FROM login_account_throttle WHERE username = $1;

-- name: login_account_clear
DELETE FROM login_account_throttle WHERE username = $1;

-- name: login_throttle_purge
-- Rows that no longer hold anyone back: accounts whose failures are forgotten ($1 s),
-- addresses whose bucket is full again ($2 s).
WITH accounts AS (
    DELETE FROM login_account_throttle
     WHERE last_failure_at < now() - make_interval(secs => $1)
)
DELETE FROM login_address_throttle WHERE updated_at < now() - make_interval(secs => $2);
