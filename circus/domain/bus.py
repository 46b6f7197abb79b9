"""The bus's channel names: every LISTEN/NOTIFY channel Circus uses, in one place (no
I/O; circus/db/bus.py listens, the named queries and their callers notify).

Payloads are small ids; the rows are the truth."""

from __future__ import annotations

EVAL_REQUESTED = "circus_eval_requested"  # payload: jobset id
EVAL_CHANGED = "circus_eval_changed"  # payload: evaluation id
BUILDS_QUEUED = "circus_builds_queued"  # payload: number of builds or ''
BUILD_CHANGED = "circus_build_changed"  # payload: build id
BUILD_LOG = "circus_build_log"  # payload: build id
# payload: ''; sent by the triggers of migration 0010 and by new notification tasks
NOTIFICATIONS = "circus_notifications"
BUILDERS_CHANGED = "circus_builders_changed"  # payload: builder id (created, changed, gone)
SRHT_JOBS_QUEUED = "circus_srht_jobs_queued"  # payload: job id
SRHT_JOB_CHANGED = "circus_srht_job_changed"  # payload: job id (claimed, a task, ended)
SRHT_LOG = "circus_srht_log"  # payload: job id
CHANNELS = (EVAL_REQUESTED, EVAL_CHANGED, BUILDS_QUEUED, BUILD_CHANGED, BUILD_LOG,
            NOTIFICATIONS, BUILDERS_CHANGED, SRHT_JOBS_QUEUED, SRHT_JOB_CHANGED, SRHT_LOG)

# Not PostgreSQL channels: signals put into a subscriber's queue in this process.
# After a reconnect: "you may have missed something".
RECONNECTED = "circus_reconnected"
# The server is stopping: a live stream ends now (its client reconnects elsewhere).
SERVER_CLOSING = "circus_server_closing"
SIGNALS = (RECONNECTED, SERVER_CLOSING)
