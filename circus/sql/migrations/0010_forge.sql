-- The forge loop: webhooks in (per-project secrets, deliveries recorded once, pull
-- request jobsets) and notifications out (events written by triggers in the transaction
-- that changes the row, expanded into deliveries that a retry queue sends).

-- One webhook per project and forge. `secret` is a Fernet token (circus/services/sealed.py):
-- a database dump alone does not reveal it.
CREATE TABLE project_webhooks (
    id              bigserial PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    forge           text NOT NULL CHECK (forge IN ('github', 'gitea', 'forgejo', 'gitlab')),
    secret          bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, forge)
);

-- Each delivery a forge sent us, once: the same delivery id twice triggers once.
CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    project_id      bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    forge           text NOT NULL,
    delivery        text NOT NULL,
    event           text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, forge, delivery)
);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);

-- The delivery that asked for the jobset's next evaluation, and the one that started each
-- evaluation.
ALTER TABLE jobsets ADD COLUMN trigger_delivery bigint
    REFERENCES webhook_deliveries(id) ON DELETE SET NULL;
ALTER TABLE evaluations ADD COLUMN webhook_delivery_id bigint
    REFERENCES webhook_deliveries(id) ON DELETE SET NULL;

-- Pull requests: a project may build them (and those from forks); each request is a
-- jobset of its own, removed some time after the request closed.
ALTER TABLE projects ADD COLUMN pull_requests boolean NOT NULL DEFAULT false;
ALTER TABLE projects ADD COLUMN fork_pull_requests boolean NOT NULL DEFAULT false;
ALTER TABLE jobsets ADD COLUMN pull_request integer;
ALTER TABLE jobsets ADD COLUMN closed_at timestamptz;
CREATE UNIQUE INDEX jobsets_pull_request_idx ON jobsets (project_id, pull_request)
    WHERE pull_request IS NOT NULL;

-- Per-project notification settings over the global [notifications] table; `secrets` is
-- a Fernet token of the JSON object of the secret keys (tokens, Slack URL).
CREATE TABLE project_notifications (
    project_id      bigint PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    settings        jsonb NOT NULL DEFAULT '{}',
    secrets         bytea,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- What happened, written in the transaction that made it happen; circus/notify turns each
-- into deliveries (and deletes it) in one transaction.
CREATE TABLE notification_events (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL
                    CHECK (kind IN ('evaluation_started', 'evaluation_finished',
                                    'build_finished')),
    evaluation_id   bigint,
    build_id        bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One message to one target. Deliveries with the same sequence_key (one commit status
-- context, say) go out in id order: a late "pending" never overwrites "success".
CREATE TABLE notification_tasks (
    id              bigserial PRIMARY KEY,
    target          text NOT NULL
                    CHECK (target IN ('github', 'gitea', 'gitlab', 'webhook', 'slack', 'email')),
    project_id      bigint REFERENCES projects(id) ON DELETE CASCADE,
    sequence_key    text NOT NULL,
    dedup_key       text UNIQUE,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'done', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL CHECK (max_attempts >= 1),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX notification_tasks_due_idx ON notification_tasks (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX notification_tasks_sequence_idx ON notification_tasks (sequence_key, id)
    WHERE status IN ('pending', 'sending');
CREATE INDEX notification_tasks_done_idx ON notification_tasks (done_at)
    WHERE status IN ('done', 'failed');

CREATE FUNCTION evaluations_notification_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO notification_events (kind, evaluation_id)
        VALUES (CASE WHEN NEW.status = 'running' THEN 'evaluation_started'
                     ELSE 'evaluation_finished' END, NEW.id);
    ELSIF OLD.status = 'running' AND NEW.status <> 'running' THEN
        INSERT INTO notification_events (kind, evaluation_id)
        VALUES ('evaluation_finished', NEW.id);
    ELSE
        RETURN NULL;
    END IF;
    PERFORM pg_notify('circus_notifications', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER evaluations_notification_events
    AFTER INSERT OR UPDATE OF status ON evaluations
    FOR EACH ROW EXECUTE FUNCTION evaluations_notification_events();

-- Statement-level: a bulk cancel of 100 000 builds is one pass over its rows.
CREATE FUNCTION builds_notification_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification_events (kind, build_id)
    SELECT 'build_finished', n.id
      FROM changed n JOIN previous o ON o.id = n.id
     WHERE n.state = 'finished' AND o.state <> 'finished'
     ORDER BY n.id;
    IF FOUND THEN
        PERFORM pg_notify('circus_notifications', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER builds_notification_events
    AFTER UPDATE ON builds
    REFERENCING OLD TABLE AS previous NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION builds_notification_events();
