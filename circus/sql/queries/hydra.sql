-- Hydra's JSON API (circus/server/hydra*.py): the same rows as /api/v1, read by names
-- (Hydra addresses projects and jobsets by name) and in the batches its documents need.

-- name: hydra_jobset_inputs
SELECT jobset_id, name, type, value FROM jobset_inputs
 WHERE jobset_id = ANY($1::bigint[])
 ORDER BY jobset_id, name;

-- name: hydra_eval_inputs
SELECT evaluation_id, name, type, uri, revision, value FROM evaluation_inputs
 WHERE evaluation_id = ANY($1::bigint[])
 ORDER BY evaluation_id, name;

-- name: hydra_eval_members
SELECT evaluation_id, build_id FROM evaluation_builds
 WHERE evaluation_id = ANY($1::bigint[])
 ORDER BY evaluation_id, build_id;

-- name: hydra_eval_build_ids
SELECT build_id FROM evaluation_builds WHERE evaluation_id = $1 ORDER BY build_id;
