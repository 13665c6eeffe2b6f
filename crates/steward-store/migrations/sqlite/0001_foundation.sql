-- Tenancy, keys, login codes, agents and their versions, idempotency records.
-- Timestamps are milliseconds since the Unix epoch; JSON is stored as TEXT.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE sandboxes (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES accounts(id),
    created_at  BIGINT NOT NULL,
    archived_at BIGINT
);

CREATE TABLE grants (
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, account_id)
);
CREATE INDEX grants_by_account ON grants (account_id, sandbox_id);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    sandbox_id     TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    kind           TEXT NOT NULL,
    agent_id       TEXT,
    name           TEXT NOT NULL,
    key_hash       TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX api_keys_by_sandbox ON api_keys (sandbox_id, id);

CREATE TABLE login_codes (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    consumed_at BIGINT
);
CREATE INDEX login_codes_by_email ON login_codes (email, created_at);

CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    sandbox_id    TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    config        TEXT NOT NULL,
    state         TEXT NOT NULL,
    state_reason  TEXT,
    token_balance BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    archived_at   BIGINT
);
-- Names are unique among a sandbox's live agents; an archived agent frees its name.
CREATE UNIQUE INDEX agents_live_name ON agents (sandbox_id, name) WHERE archived_at IS NULL;
CREATE INDEX agents_by_sandbox ON agents (sandbox_id, id);

CREATE TABLE agent_versions (
    agent_id   TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    config     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      BIGINT,
    body        TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_by_age ON idempotency_keys (created_at);
