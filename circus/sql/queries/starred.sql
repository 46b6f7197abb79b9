-- Starred jobs: the jobs a user follows, by jobset and job name. Nobody waits on these
-- rows, so no writer here notifies the bus.

-- name: starred_page
SELECT s.id, s.jobset_id, j.name AS jobset, p.id AS project_id, p.name AS project, s.job,
       s.created_at
  FROM starred_jobs s
  JOIN jobsets j ON j.id = s.jobset_id
  JOIN projects p ON p.id = j.project_id
 WHERE s.user_id = $1
 ORDER BY s.id LIMIT $2 OFFSET $3;

-- name: starred_count
SELECT count(*) FROM starred_jobs WHERE user_id = $1;

-- name: starred_insert
-- Starring twice is the same star: the second call finds the first.
WITH added AS (
    INSERT INTO starred_jobs (user_id, jobset_id, job) VALUES ($1, $2, $3)
    ON CONFLICT (user_id, jobset_id, job) DO NOTHING
    RETURNING id, true AS created
)
SELECT id, created FROM added
UNION ALL
SELECT id, false FROM starred_jobs
 WHERE user_id = $1 AND jobset_id = $2 AND job = $3 AND NOT EXISTS (SELECT FROM added);

-- name: starred_get
SELECT s.id, s.jobset_id, j.name AS jobset, p.id AS project_id, p.name AS project, s.job,
       s.created_at
  FROM starred_jobs s
  JOIN jobsets j ON j.id = s.jobset_id
  JOIN projects p ON p.id = j.project_id
 WHERE s.id = $1;

-- name: starred_delete
DELETE FROM starred_jobs WHERE id = $1 AND user_id = $2 RETURNING id;

-- name: jobset_id_if_exists
-- A star must name a jobset that exists (a 404, not a foreign key error).
SELECT id FROM jobsets WHERE id = $1;

-- name: starred_with_latest_builds
-- A user's starred jobs with the newest build of each (a job has few builds).
SELECT s.id, s.jobset_id, j.name AS jobset, p.name AS project, s.job, s.created_at,
       b.id AS build_id, b.state, b.buildstatus, b.finished_at
  FROM starred_jobs s
  JOIN jobsets j ON j.id = s.jobset_id
  JOIN projects p ON p.id = j.project_id
  LEFT JOIN LATERAL (SELECT id, state, buildstatus, finished_at FROM builds
                      WHERE jobset_id = s.jobset_id AND job = s.job
                      ORDER BY id DESC LIMIT 1) b ON true
 WHERE s.user_id = $1
 ORDER BY p.name, j.name, s.job
 LIMIT $2 OFFSET $3;

-- name: starred_find
SELECT id FROM starred_jobs WHERE user_id = $1 AND jobset_id = $2 AND job = $3;
