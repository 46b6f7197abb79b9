-- The binary cache's catalogue (cache_paths): written by the runner after a successful
-- build, read by the server for every narinfo and NAR.

-- name: cache_paths_record
-- The closure of a build's outputs; a path already known keeps its first build.
INSERT INTO cache_paths (hash_part, store_path, nar_hash, nar_size, refs, deriver, build_id)
SELECT p.hash_part, p.store_path, p.nar_hash, p.nar_size,
       CASE WHEN p.refs = '' THEN '{}'::text[] ELSE string_to_array(p.refs, ' ') END,
       NULLIF(p.deriver, ''), $1
  FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])
       AS p(hash_part, store_path, nar_hash, nar_size, refs, deriver)
ON CONFLICT (hash_part) DO NOTHING;

-- name: cache_path_by_hash
SELECT hash_part, store_path, nar_hash, nar_size, refs, deriver
  FROM cache_paths WHERE hash_part = $1;

-- name: outputs_expired
-- Output paths every owner of which finished before the cutoff ($1 days ago) and none of
-- which is kept: a path shared with a kept or recent build stays rooted.
SELECT o.path
  FROM build_outputs o
  JOIN builds b ON b.id = o.build_id
 GROUP BY o.path
HAVING bool_and(NOT b.keep AND b.state = 'finished'
                AND b.finished_at < now() - make_interval(days => $1::int));

-- name: cache_paths_forget
-- Expired outputs are no longer offered by the binary cache.
DELETE FROM cache_paths WHERE store_path = ANY($1::text[]) RETURNING store_path;
