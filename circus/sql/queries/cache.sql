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
