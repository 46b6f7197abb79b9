-- Garbage collection: which outputs' GC roots have expired.

-- name: gc_expired_outputs
-- Output paths every owner of which finished before the cutoff ($1 days ago) and none of
-- which is kept: a path shared with a kept or recent build stays rooted.
SELECT o.path
  FROM build_outputs o
  JOIN builds b ON b.id = o.build_id
 GROUP BY o.path
HAVING bool_and(NOT b.keep AND b.state = 'finished'
                AND b.finished_at < now() - make_interval(days => $1::int));

-- name: gc_forget_paths
-- Expired outputs are no longer offered by the binary cache.
DELETE FROM cache_paths WHERE store_path = ANY($1::text[]) RETURNING store_path;
