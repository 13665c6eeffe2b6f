-- Cron schedules (§11) and their executions. `next_fire_at` is the next due time (UTC ms);
-- a replica fires it by moving it forward with a compare-and-set in the same transaction that
-- records the execution and starts the run, so each due time fires exactly once.
CREATE TABLE schedules (
    id             TEXT PRIMARY KEY,
    sandbox_id     TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    agent_id       TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    config         TEXT NOT NULL,
    state          TEXT NOT NULL,
    resume_at      BIGINT,
    next_fire_at   BIGINT,
    last_fired_at  BIGINT,
    fire_count     BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT,
    last_error_at  BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX schedules_name ON schedules (agent_id, name);
CREATE INDEX schedules_due ON schedules (next_fire_at);

CREATE TABLE schedule_executions (
    schedule_id   TEXT NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    scheduled_at  BIGINT NOT NULL,
    fired_at      BIGINT NOT NULL,
    outcome       TEXT NOT NULL,
    session_id    TEXT,
    run_id        TEXT,
    error         TEXT,
    PRIMARY KEY (schedule_id, scheduled_at)
);
