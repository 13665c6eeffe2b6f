-- Vaults, model providers, sessions, runs, the conversation history and the event log.

CREATE TABLE vaults (
    id          TEXT PRIMARY KEY,
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- base64(nonce || XChaCha20-Poly1305 ciphertext); the key never touches the database.
    ciphertext  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX vaults_name ON vaults (sandbox_id, name);

-- A provider's id is a slug chosen by the user (e.g. `anthropic`), unique per sandbox; agents
-- name it in `model.provider_id`.
CREATE TABLE providers (
    sandbox_id       TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    id               TEXT NOT NULL,
    provider         TEXT NOT NULL,
    base_url         TEXT NOT NULL,
    api_key_vault_id TEXT,
    models           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, id)
);

ALTER TABLE agents ADD COLUMN input_tokens_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN output_tokens_total BIGINT NOT NULL DEFAULT 0;

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    sandbox_id    TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    agent_id      TEXT NOT NULL,
    agent_version BIGINT NOT NULL,
    status        TEXT NOT NULL,
    end_user      TEXT,
    counterparty  TEXT,
    metadata      TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    last_seq      BIGINT NOT NULL DEFAULT 0,
    message_seq   BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    deleted_at    BIGINT
);
CREATE INDEX sessions_by_sandbox ON sessions (sandbox_id, id);
CREATE INDEX sessions_by_agent ON sessions (agent_id, id);

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    sandbox_id    TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    status        TEXT NOT NULL,
    stop_reason   TEXT,
    error_type    TEXT,
    error_message TEXT,
    input         TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    trace         TEXT NOT NULL,
    owner         TEXT,
    heartbeat_at  BIGINT,
    created_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT
);
CREATE INDEX runs_by_session ON runs (session_id, id);
CREATE INDEX runs_by_sandbox ON runs (sandbox_id, id);
CREATE INDEX runs_by_status ON runs (status, heartbeat_at);

-- What the model sees: the conversation, in order.
CREATE TABLE session_messages (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    run_id     TEXT NOT NULL,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- What clients see: every event, persisted before it is sent.
CREATE TABLE events (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    run_id     TEXT NOT NULL,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
