-- Build logs: chunks appended while a build runs (each one notifies circus_build_log),
-- folded into one zstd blob in build_logs when the build finishes.

-- name: logstore_append_chunk
WITH chunk AS (
    INSERT INTO build_log_chunks (build_id, seq, data) VALUES ($1, $2, $3)
    RETURNING build_id
)
SELECT pg_notify('circus_build_log', build_id::text) FROM chunk;

-- name: logstore_chunks_after
SELECT seq, data FROM build_log_chunks WHERE build_id = $1 AND seq > $2 ORDER BY seq;

-- name: logstore_compressed
SELECT compressed, size FROM build_logs WHERE build_id = $1;

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
