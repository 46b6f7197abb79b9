-- A job: the builds of one attribute of a jobset, named (project, jobset, job).

-- name: job_latest_build
-- The newest build of a job (builds_job_idx); $4 true: the newest successful one.
SELECT b.id, b.state, b.buildstatus
  FROM builds b
 WHERE b.jobset_id = (SELECT j.id FROM jobsets j JOIN projects p ON p.id = j.project_id
                       WHERE p.name = $1 AND j.name = $2)
   AND b.job = $3
   AND (NOT $4::boolean OR b.buildstatus = 0)
 ORDER BY b.id DESC LIMIT 1;

-- name: job_latest_finished_build
SELECT b.id, b.state, b.buildstatus
  FROM builds b
 WHERE b.jobset_id = (SELECT j.id FROM jobsets j JOIN projects p ON p.id = j.project_id
                       WHERE p.name = $1 AND j.name = $2)
   AND b.job = $3 AND b.state = 'finished'
 ORDER BY b.id DESC LIMIT 1;

-- name: job_latest_success
-- The newest successful build of a job; $4 a system or NULL; $5 true: only builds of
-- evaluations that are finished with every build finished (Hydra's latest-finished).
SELECT b.id
  FROM builds b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = j.project_id
 WHERE p.name = $1 AND j.name = $2 AND b.job = $3 AND b.buildstatus = 0
   AND ($4::text IS NULL OR b.system = $4)
   AND (NOT $5::boolean OR EXISTS (
        SELECT 1 FROM evaluation_builds eb JOIN evaluations e ON e.id = eb.evaluation_id
         WHERE eb.build_id = b.id AND e.status = 'succeeded'
           AND NOT EXISTS (SELECT 1 FROM evaluation_builds o JOIN builds ob ON ob.id = o.build_id
                            WHERE o.evaluation_id = e.id AND ob.state <> 'finished')))
 ORDER BY b.id DESC LIMIT 1;
