-- Notifications out (run by circus/store/notifications.py): events the triggers of
-- migration 0010 write, the deliveries made of them, the retry queue that sends those.

-- name: notification_events_lock
-- One process at a time turns events into deliveries, in event order, so deliveries of
-- one sequence get ids in the order things happened. Held to the end of the transaction.
SELECT pg_try_advisory_xact_lock(hashtext('circus_notification_events'));

-- name: notification_events_take
SELECT * FROM notification_events ORDER BY id LIMIT $1;

-- name: notification_events_delete
DELETE FROM notification_events WHERE id = ANY($1::bigint[]);

-- name: notification_evaluation
-- An evaluation as its notifications tell it, with the progress of its builds.
SELECT e.id, e.status, e.commit_hash, e.error_message, e.nr_builds,
       j.id AS jobset_id, j.name AS jobset, j.pull_request,
       p.id AS project_id, p.name AS project, p.repository_url,
       c.unfinished, c.failed, c.total
  FROM evaluations e
  JOIN jobsets j ON j.id = e.jobset_id
  JOIN projects p ON p.id = j.project_id
  CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE b.state <> 'finished') AS unfinished,
               count(*) FILTER (WHERE b.state = 'finished' AND b.buildstatus <> 0) AS failed,
               count(*) AS total
          FROM evaluation_builds eb JOIN builds b ON b.id = eb.build_id
         WHERE eb.evaluation_id = e.id) c
 WHERE e.id = $1;

-- name: notification_evaluations_of_build
-- The evaluations (done evaluating) that contain build $1, newest first, at most $2;
-- without their build counts (see notification_evaluation).
SELECT e.id, e.commit_hash, j.name AS jobset, p.id AS project_id, p.name AS project,
       p.repository_url
  FROM evaluation_builds eb
  JOIN evaluations e ON e.id = eb.evaluation_id
  JOIN jobsets j ON j.id = e.jobset_id
  JOIN projects p ON p.id = j.project_id
 WHERE eb.build_id = $1 AND e.status = 'succeeded'
 ORDER BY eb.evaluation_id DESC
 LIMIT $2;

-- name: notification_evaluation_builds
SELECT b.id, b.job, b.state, b.buildstatus
  FROM evaluation_builds eb JOIN builds b ON b.id = eb.build_id
 WHERE eb.evaluation_id = $1
 ORDER BY b.job;

-- name: notification_build
SELECT b.id, b.job, b.state, b.buildstatus, b.error_message, b.system, b.nix_name,
       b.drv_path, j.name AS jobset, p.id AS project_id, p.name AS project
  FROM builds b
  JOIN jobsets j ON j.id = b.jobset_id
  JOIN projects p ON p.id = b.project_id
 WHERE b.id = $1;

-- name: notification_tasks_insert
-- A delivery already made for the same dedup key (a status already reported) is skipped.
WITH ins AS (
    INSERT INTO notification_tasks (target, project_id, sequence_key, dedup_key, payload,
                                    max_attempts)
    SELECT t.target, t.project_id, t.sequence_key, t.dedup_key, t.payload::jsonb, $7
      FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[])
           AS t(target, project_id, sequence_key, dedup_key, payload, n)
     ORDER BY t.n
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id
)
SELECT count(*) AS inserted,
       CASE WHEN count(*) > 0 THEN pg_notify('circus_notifications', '') END AS notified
  FROM ins;

-- name: notification_tasks_claim
-- Due deliveries, and those whose sender died (lease over), each only when no earlier
-- delivery of its sequence is still to go; marked as ours for $2 seconds.
UPDATE notification_tasks t
   SET status = 'sending', attempts = t.attempts + 1, updated_at = now(),
       lease_expires_at = now() + make_interval(secs => $2)
 WHERE t.id IN (
        SELECT c.id FROM notification_tasks c
         WHERE ((c.status = 'pending' AND c.next_attempt_at <= now())
                OR (c.status = 'sending' AND c.lease_expires_at < now()))
           AND NOT EXISTS (
                SELECT 1 FROM notification_tasks o
                 WHERE o.sequence_key = c.sequence_key AND o.id < c.id
                   AND o.status IN ('pending', 'sending'))
         ORDER BY c.id
         LIMIT $1
           FOR UPDATE SKIP LOCKED)
RETURNING t.*;

-- name: notification_task_done
-- Only by the holder of the claim ($2 = attempts it claimed with): done once.
UPDATE notification_tasks
   SET status = 'done', done_at = now(), updated_at = now(), lease_expires_at = NULL,
       last_error = NULL
 WHERE id = $1 AND status = 'sending' AND attempts = $2
RETURNING id;

-- name: notification_task_attempt_failed
-- Tried again in $3 seconds, or failed for good after max_attempts.
UPDATE notification_tasks
   SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
       done_at = CASE WHEN attempts >= max_attempts THEN now() END,
       next_attempt_at = now() + make_interval(secs => $3),
       last_error = $4, lease_expires_at = NULL, updated_at = now()
 WHERE id = $1 AND status = 'sending' AND attempts = $2
RETURNING status;

-- name: notification_tasks_seconds_until_due
SELECT EXTRACT(EPOCH FROM min(CASE WHEN status = 'pending' THEN next_attempt_at
                                   ELSE lease_expires_at END) - now())::float8
  FROM notification_tasks WHERE status IN ('pending', 'sending');

-- name: notification_tasks_purge
DELETE FROM notification_tasks
 WHERE status IN ('done', 'failed') AND done_at < now() - make_interval(days => $1);

-- name: notification_tasks_page
SELECT * FROM notification_tasks
 WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR project_id = $2)
 ORDER BY id DESC LIMIT $3 OFFSET $4;

-- name: notification_tasks_count
SELECT count(*) FROM notification_tasks
 WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR project_id = $2);

-- name: notification_task_get
SELECT t.*,
       (SELECT min(n.id) FROM notification_tasks n
         WHERE n.sequence_key = t.sequence_key AND n.id > t.id AND n.status = 'done')
       AS superseded_by
  FROM notification_tasks t WHERE t.id = $1;

-- name: notification_task_retry
UPDATE notification_tasks
   SET status = 'pending', attempts = 0, max_attempts = $2, next_attempt_at = now(),
       last_error = NULL, done_at = NULL, updated_at = now()
 WHERE id = $1 AND status = 'failed'
RETURNING *, pg_notify('circus_notifications', '') AS notified;

-- name: project_notifications_get
SELECT settings, secrets, updated_at FROM project_notifications WHERE project_id = $1;

-- name: project_notifications_put
INSERT INTO project_notifications (project_id, settings, secrets) VALUES ($1, $2::jsonb, $3)
ON CONFLICT (project_id) DO UPDATE
   SET settings = excluded.settings, secrets = excluded.secrets, updated_at = now();
