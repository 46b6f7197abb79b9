-- Projects for /api/v1/projects. Few rows: exact counts are cheap.

-- name: api_projects_list
SELECT * FROM projects ORDER BY id DESC LIMIT $1 OFFSET $2;

-- name: api_projects_count
SELECT count(*) FROM projects;

-- name: api_project_get
SELECT * FROM projects WHERE id = $1;

-- name: api_project_id_for_name
SELECT id FROM projects WHERE name = $1;

-- name: api_project_insert
INSERT INTO projects (name, repository_url, description, display_name, homepage, enabled)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: api_project_update
UPDATE projects
   SET name = $2, repository_url = $3, description = $4, display_name = $5,
       homepage = $6, enabled = $7, updated_at = now()
 WHERE id = $1
RETURNING *;

-- name: api_project_delete
-- Jobsets, evaluations and builds go with it (ON DELETE CASCADE).
DELETE FROM projects WHERE id = $1 RETURNING id;

-- name: api_project_get_id
SELECT id FROM projects WHERE id = $1;
