-- /api/v1/admin/system: what an operator checks first. The build counts read the queue's
-- partial indexes only.

-- name: admin_system_status
SELECT current_setting('server_version') AS postgres_version,
       pg_database_size(current_database()) AS database_size_bytes,
       (SELECT count(*) FROM builds WHERE state = 'queued') AS builds_queued,
       (SELECT count(*) FROM builds WHERE state = 'running') AS builds_running,
       (SELECT count(*) FROM evaluations WHERE status = 'running') AS evaluations_running,
       (SELECT count(*) FROM projects) AS projects,
       (SELECT count(*) FROM jobsets) AS jobsets,
       now() AS now;
