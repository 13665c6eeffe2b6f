-- Integrations (§10): OAuth connect attempts (single-use state), connected accounts with their
-- tokens sealed by the runtime's vault cipher, and publications (which agent serves which
-- workspace/channel of an account).
CREATE TABLE oauth_states (
    nonce                 TEXT PRIMARY KEY,
    sandbox_id            TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    app_id                TEXT NOT NULL,
    account_id            TEXT NOT NULL,
    session_id            TEXT,
    verifier              TEXT,
    redirect_uri          TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    used_at               BIGINT,
    connected_account_id  TEXT,
    error                 TEXT
);

CREATE TABLE connected_accounts (
    id             TEXT PRIMARY KEY,
    sandbox_id     TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    app_id         TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    label          TEXT NOT NULL,
    status         TEXT NOT NULL,
    status_reason  TEXT,
    scopes         TEXT,
    tokens         TEXT NOT NULL,
    expires_at     BIGINT,
    info           TEXT NOT NULL,
    connected_by   TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    refreshed_at   BIGINT,
    UNIQUE (sandbox_id, app_id, external_id)
);
CREATE INDEX connected_accounts_expiring ON connected_accounts (status, expires_at);

CREATE TABLE publications (
    id                    TEXT PRIMARY KEY,
    sandbox_id            TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    connected_account_id  TEXT NOT NULL REFERENCES connected_accounts(id) ON DELETE CASCADE,
    agent_id              TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    target                TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    UNIQUE (connected_account_id, target)
);
