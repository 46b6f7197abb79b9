-- A build as every list shows it: its row's listed columns with its project's and
-- jobset's names. The list queries pick a page of ids by the index that serves their
-- filters, then read those ids from here (the planner inlines the view).
CREATE VIEW build_list AS
SELECT b.id, b.project_id, p.name AS project, b.jobset_id, j.name AS jobset, b.job,
       b.nix_name, b.system, b.drv_path, b.state, b.buildstatus, b.error_message,
       b.priority, b.global_priority, b.is_aggregate, b.keep, b.attempts, b.runner_id,
       b.created_at, b.started_at, b.finished_at
  FROM builds b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id;
