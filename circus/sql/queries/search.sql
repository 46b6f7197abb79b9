-- Search for /api/v1/search. Projects and jobsets are few: a substring match ($1 is an
-- ILIKE pattern, already escaped). Jobs and store paths are matched by prefix as a range
-- [$1, $2) with the text_pattern_ops operators, so the indexes of migration 0004 serve
-- them even in a generic plan and no search reads every build.

-- name: search_projects
SELECT id, name, display_name, description
  FROM projects
 WHERE name ILIKE $1 OR display_name ILIKE $1 OR description ILIKE $1
 ORDER BY name LIMIT $2;

-- name: search_jobsets
SELECT j.id, j.name, j.project_id, p.name AS project, j.description
  FROM jobsets j JOIN projects p ON p.id = j.project_id
 WHERE j.name ILIKE $1 OR j.description ILIKE $1
 ORDER BY p.name, j.name LIMIT $2;

-- name: search_jobs
-- One row per (job, jobset), from builds_job_search_idx (index-only).
SELECT s.job, s.jobset_id, j.name AS jobset, j.project_id, p.name AS project
  FROM (SELECT job, jobset_id FROM builds
         WHERE job ~>=~ $1 AND job ~<~ $2
         GROUP BY job, jobset_id
         ORDER BY job, jobset_id LIMIT $3) s
  JOIN jobsets j ON j.id = s.jobset_id
  JOIN projects p ON p.id = j.project_id
 ORDER BY s.job, p.name, j.name;

-- name: search_builds_by_path
-- Builds whose derivation or one of whose outputs starts with the path.
SELECT b.id, b.job, b.jobset_id, j.name AS jobset, b.project_id, p.name AS project,
       b.drv_path, b.state, b.buildstatus, b.finished_at
  FROM (SELECT id FROM (SELECT id FROM builds
                          WHERE drv_path ~>=~ $1 AND drv_path ~<~ $2
                          ORDER BY drv_path LIMIT $3) d
        UNION
        SELECT build_id FROM (SELECT build_id FROM build_outputs
                               WHERE path ~>=~ $1 AND path ~<~ $2
                               ORDER BY path LIMIT $3) o) m
  JOIN builds b ON b.id = m.id
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id
 ORDER BY b.id DESC LIMIT $3;

-- Hydra's GET /search?query=: a fixed number of statements whatever matches (documents
-- come whole from these, not one query per hit), each bounded by $3 / $2 rows.

-- name: search_projects_whole
-- $1 ILIKE pattern, $2 limit; the columns of hydra_project.
SELECT p.*, ARRAY(SELECT j.name FROM jobsets j WHERE j.project_id = p.id ORDER BY j.name)
       AS jobsets
  FROM projects p
 WHERE p.name ILIKE $1 OR p.display_name ILIKE $1 OR p.description ILIKE $1
 ORDER BY p.name LIMIT $2;

-- name: search_jobsets_whole
-- $1 ILIKE pattern, $2 limit; the columns of hydra_jobset.
SELECT j.*, p.name AS project, p.repository_url,
       (SELECT e.started_at FROM evaluations e
         WHERE e.jobset_id = j.id AND e.status = 'running'
         ORDER BY e.id DESC LIMIT 1) AS eval_started_at
  FROM jobsets j
  JOIN projects p ON p.id = j.project_id
 WHERE j.name ILIKE $1 OR j.description ILIKE $1
 ORDER BY p.name, j.name LIMIT $2;

-- name: search_builds_by_job
-- The newest successful build of each job whose name starts with the text ([$1, $2)
-- on builds_job_search_idx: a substring would read every build), at most $3 jobs.
SELECT m.id
  FROM (SELECT job, jobset_id FROM builds
         WHERE job ~>=~ $1 AND job ~<~ $2
         GROUP BY job, jobset_id
         ORDER BY job, jobset_id LIMIT $3) s
 CROSS JOIN LATERAL (SELECT b.id FROM builds b
                      WHERE b.jobset_id = s.jobset_id AND b.job = s.job
                        AND b.buildstatus = 0
                      ORDER BY b.id DESC LIMIT 1) m;

-- name: search_builds_with_output
-- Builds with an output at exactly this store path (Hydra's "buildsdrv" use the drv).
SELECT DISTINCT build_id AS id FROM build_outputs WHERE path = $1
 ORDER BY build_id DESC LIMIT $2;
