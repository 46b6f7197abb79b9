-- Channels: a name that follows a jobset's newest fully green evaluation.

-- name: channels_advance
-- Automatic promotion: each channel chosen by id ($1) or by a successful build of its
-- jobset ($2) moves to its jobset's newest evaluation that evaluated, has builds, and
-- all of whose builds succeeded. A channel only ever moves forward this way.
WITH candidates AS (
    SELECT c.id, c.jobset_id, GREATEST(c.advance_after_id, COALESCE(c.current_evaluation_id, 0))
               AS after
      FROM channels c
     WHERE c.id = ANY($1::bigint[])
        OR c.jobset_id IN (SELECT b.jobset_id FROM builds b
                            WHERE b.id = ANY($2::bigint[]) AND b.buildstatus = 0)
), green AS (
    SELECT c.id, (
        SELECT e.id FROM evaluations e
         WHERE e.jobset_id = c.jobset_id AND e.id > c.after AND e.status = 'succeeded'
           AND EXISTS (SELECT 1 FROM evaluation_builds eb WHERE eb.evaluation_id = e.id)
           AND NOT EXISTS (
               SELECT 1 FROM evaluation_builds eb JOIN builds b ON b.id = eb.build_id
                WHERE eb.evaluation_id = e.id
                  AND (b.state <> 'finished' OR b.buildstatus <> 0))
         ORDER BY e.id DESC LIMIT 1) AS evaluation_id
      FROM candidates c
)
UPDATE channels c
   SET current_evaluation_id = g.evaluation_id, promoted_at = now(), updated_at = now()
  FROM green g
 WHERE c.id = g.id AND g.evaluation_id IS NOT NULL
RETURNING c.id, c.current_evaluation_id;

-- name: channels_named_like
SELECT c.*, p.name AS project, j.name AS jobset, e.commit_hash AS eval_commit
  FROM channels c
  JOIN projects p ON p.id = c.project_id
  JOIN jobsets j ON j.id = c.jobset_id
  LEFT JOIN evaluations e ON e.id = c.current_evaluation_id
 WHERE ($1::text IS NULL OR c.name ILIKE '%' || $1 || '%')
 ORDER BY c.name
 LIMIT $2 OFFSET $3;

-- name: channels_named_like_count
SELECT count(*) FROM channels c WHERE ($1::text IS NULL OR c.name ILIKE '%' || $1 || '%');

-- name: channel_with_names
SELECT c.*, p.name AS project, j.name AS jobset, e.commit_hash AS eval_commit,
       e.status AS eval_status, e.created_at AS eval_time
  FROM channels c
  JOIN projects p ON p.id = c.project_id
  JOIN jobsets j ON j.id = c.jobset_id
  LEFT JOIN evaluations e ON e.id = c.current_evaluation_id
 WHERE c.id = $1;

-- name: channels_page
SELECT * FROM channels
 WHERE ($1::bigint IS NULL OR project_id = $1)
 ORDER BY id DESC LIMIT $2 OFFSET $3;

-- name: channels_count_of
SELECT count(*) FROM channels WHERE ($1::bigint IS NULL OR project_id = $1);

-- name: channel_by_id
SELECT * FROM channels WHERE id = $1;

-- name: channel_by_name
SELECT * FROM channels WHERE name = $1;

-- name: channel_insert
-- Only a jobset of the project ($1) is accepted: no row back otherwise.
WITH ins AS (
    INSERT INTO channels (project_id, jobset_id, name, description)
    SELECT j.project_id, j.id, $3, $4 FROM jobsets j WHERE j.id = $2 AND j.project_id = $1
    RETURNING *
)
SELECT ins.* FROM ins;

-- name: channel_update
WITH upd AS (
    UPDATE channels SET name = $2, description = $3, updated_at = now()
     WHERE id = $1
    RETURNING *
)
SELECT upd.* FROM upd;

-- name: channel_delete
DELETE FROM channels WHERE id = $1
RETURNING id;

-- name: channel_promote
-- Point channel $1 at evaluation $2 (of its own jobset). Automatic promotion then only
-- considers evaluations newer than any existing now, so it does not undo this choice.
WITH upd AS (
    UPDATE channels c
       SET current_evaluation_id = e.id, promoted_at = now(), updated_at = now(),
           advance_after_id = (SELECT max(id) FROM evaluations WHERE jobset_id = c.jobset_id)
      FROM evaluations e
     WHERE c.id = $1 AND e.id = $2 AND e.jobset_id = c.jobset_id
    RETURNING c.*
)
SELECT upd.* FROM upd;

-- name: channel_evaluation
SELECT e.id, e.commit_hash, e.jobset_id, e.finished_at FROM evaluations e WHERE e.id = $1;

-- name: channel_jobs
-- The successful jobs of evaluation $1 with their outputs, for nixexprs and store-paths.
SELECT b.job, b.nix_name, b.system,
       array_agg(o.name ORDER BY o.name) AS output_names,
       array_agg(o.path ORDER BY o.name) AS output_paths
  FROM evaluation_builds eb
  JOIN builds b ON b.id = eb.build_id
  JOIN build_outputs o ON o.build_id = b.id
 WHERE eb.evaluation_id = $1 AND b.state = 'finished' AND b.buildstatus = 0
 GROUP BY b.id, b.job, b.nix_name, b.system
 ORDER BY b.job;
