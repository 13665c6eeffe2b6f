-- Inbound webhook triggers (§11) and their deliveries. The signing secret is stored encrypted
-- (the server's vault cipher); a delivery id is unique per trigger, so a sender's retries start
-- one run.
CREATE TABLE triggers (
    id             TEXT PRIMARY KEY,
    sandbox_id     TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    agent_id       TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    config         TEXT NOT NULL,
    secret         TEXT NOT NULL,
    state          TEXT NOT NULL,
    resume_at      BIGINT,
    last_fired_at  BIGINT,
    fire_count     BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT,
    last_error_at  BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX triggers_name ON triggers (agent_id, name);

CREATE TABLE trigger_deliveries (
    trigger_id   TEXT NOT NULL REFERENCES triggers(id) ON DELETE CASCADE,
    delivery_id  TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    payload      TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, delivery_id)
);
