-- Projects (run by circus/store/projects.py). Few rows: exact counts are cheap.

-- name: projects_list
SELECT * FROM projects ORDER BY id DESC LIMIT $1 OFFSET $2;

-- name: projects_count
SELECT count(*) FROM projects;

-- name: project_by_id
SELECT * FROM projects WHERE id = $1;

-- name: project_id_if_exists
SELECT id FROM projects WHERE id = $1;

-- name: project_id_by_name
SELECT id FROM projects WHERE name = $1;

-- name: project_by_name
-- With the names of its jobsets, as Hydra shows a project.
SELECT p.*, ARRAY(SELECT j.name FROM jobsets j WHERE j.project_id = p.id ORDER BY j.name)
       AS jobsets
  FROM projects p
 WHERE p.name = $1;

-- name: projects_with_jobsets
SELECT p.*, ARRAY(SELECT j.name FROM jobsets j WHERE j.project_id = p.id ORDER BY j.name)
       AS jobsets
  FROM projects p
 ORDER BY p.name;

-- name: project_insert
-- repository_url '' is a Hydra project's until its first jobset names one.
INSERT INTO projects (name, repository_url, description, display_name, homepage, enabled,
                      pull_requests, fork_pull_requests, owner)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING *;

-- name: project_update
UPDATE projects
   SET name = $2, repository_url = $3, description = $4, display_name = $5,
       homepage = $6, enabled = $7, pull_requests = $8, fork_pull_requests = $9,
       updated_at = now()
 WHERE id = $1
RETURNING *;

-- name: project_set_repository
UPDATE projects SET repository_url = $2, updated_at = now()
 WHERE id = $1 AND repository_url IS DISTINCT FROM $2
RETURNING id;

-- name: project_delete
-- Jobsets, evaluations and builds go with it (ON DELETE CASCADE).
DELETE FROM projects WHERE id = $1 RETURNING id;

-- name: projects_matching
-- $1 name/description filter or NULL, $2 limit, $3 offset
SELECT p.*,
       (SELECT count(*) FROM jobsets j WHERE j.project_id = p.id) AS nr_jobsets,
       (SELECT count(*) FROM builds b WHERE b.project_id = p.id AND b.state = 'queued')
           AS nr_queued
  FROM projects p
 WHERE ($1::text IS NULL OR p.name ILIKE '%' || $1 || '%'
        OR p.display_name ILIKE '%' || $1 || '%' OR p.description ILIKE '%' || $1 || '%')
 ORDER BY p.name
 LIMIT $2 OFFSET $3;

-- name: projects_matching_count
SELECT count(*) FROM projects p
 WHERE ($1::text IS NULL OR p.name ILIKE '%' || $1 || '%'
        OR p.display_name ILIKE '%' || $1 || '%' OR p.description ILIKE '%' || $1 || '%');

-- name: project_names
-- For filter drop-downs: a bounded list.
SELECT id, name FROM projects ORDER BY name LIMIT 500;

-- name: project_by_id_or_name
-- A project by id ($1) or name ($2).
SELECT * FROM projects WHERE id = $1 OR name = $2 LIMIT 1;
