-- Build logs: chunks appended while a build runs (each one notifies circus_build_log),
-- folded into build_logs when the build finishes: zstd frames of at most 1 MiB of log
-- each, so a reader never decompresses more than one frame at a time.

-- name: logstore_append_chunk
WITH chunk AS (
    INSERT INTO build_log_chunks (build_id, seq, data) VALUES ($1, $2, $3)
    RETURNING build_id
)
SELECT pg_notify('circus_build_log', build_id::text) FROM chunk;

-- name: logstore_chunks_after
-- $3: at most this many chunks (NULL: all).
SELECT seq, data FROM build_log_chunks WHERE build_id = $1 AND seq > $2 ORDER BY seq
 LIMIT $3;

-- name: logstore_chunks_from
-- The chunks holding bytes [$2, $2 + $3) of a running build's log, each with the byte
-- offset it starts at. octet_length reads the size from the TOAST header, so the
-- chunks before $2 are counted without being read.
SELECT start, data FROM (
    SELECT seq, data, coalesce(sum(octet_length(data)) OVER (
               ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS start
      FROM build_log_chunks WHERE build_id = $1
) c
 WHERE start + octet_length(data) > $2 AND start < $2 + $3
 ORDER BY seq;

-- name: logstore_extent
-- One statement, one snapshot: the folded log, else the chunks so far (no row: no log).
SELECT size::bigint AS size, true AS folded FROM build_logs WHERE build_id = $1
UNION ALL
SELECT sum(octet_length(data))::bigint, false FROM build_log_chunks WHERE build_id = $1
HAVING count(*) > 0
LIMIT 1;

-- name: logstore_compressed_slice
-- $3 bytes of the compressed log from byte $2 (1-based), so it is never fetched whole.
SELECT substring(compressed FROM $2 FOR $3) FROM build_logs WHERE build_id = $1;

-- name: logstore_store_folded
WITH stored AS (
    INSERT INTO build_logs (build_id, compressed, size) VALUES ($1, $2, $3)
    ON CONFLICT (build_id) DO UPDATE SET compressed = EXCLUDED.compressed, size = EXCLUDED.size
    RETURNING build_id
), dropped AS (
    DELETE FROM build_log_chunks WHERE build_id = $1
), sized AS (
    UPDATE builds SET log_size = $3 WHERE id = $1
)
SELECT build_id FROM stored;

-- name: build_log_state
-- Read in one REPEATABLE READ transaction with the log itself: the runner folds the
-- chunks into build_logs in the transaction that finishes the build, so one snapshot
-- sees either the whole folded log or every chunk so far.
SELECT b.state, b.buildstatus, EXISTS (SELECT 1 FROM build_logs l WHERE l.build_id = b.id)
       AS folded
  FROM builds b
 WHERE b.id = $1;
