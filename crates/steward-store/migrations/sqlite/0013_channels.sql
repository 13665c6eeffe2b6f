-- Chat channels (§10): one bot per sandbox and platform (its secrets sealed with the vault
-- cipher; the store never sees a plaintext), link codes (only their SHA-256 hash; single use,
-- short-lived), the chats bound to agents, the platform updates already accepted (dedupe), and
-- every attempt to post a reply.
CREATE TABLE channel_bots (
    sandbox_id     TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    platform       TEXT NOT NULL,
    config         TEXT NOT NULL,
    sealed_secrets TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, platform)
);

CREATE TABLE channel_link_codes (
    code_hash   TEXT PRIMARY KEY,
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    agent_id    TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    platform    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    binding_id  TEXT
);
CREATE INDEX channel_link_codes_by_agent ON channel_link_codes (agent_id, platform, created_at);

CREATE TABLE channel_bindings (
    id          TEXT PRIMARY KEY,
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    agent_id    TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    platform    TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    chat_kind   TEXT NOT NULL,
    chat_title  TEXT,
    user_id     TEXT NOT NULL,
    user_name   TEXT,
    respond     TEXT NOT NULL,
    linked_at   BIGINT NOT NULL
);
-- A sandbox has one bot per platform, so a chat is bound to at most one of its agents.
CREATE UNIQUE INDEX channel_bindings_chat ON channel_bindings (sandbox_id, platform, chat_id);
CREATE INDEX channel_bindings_by_agent ON channel_bindings (agent_id, platform);

CREATE TABLE channel_updates (
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    platform    TEXT NOT NULL,
    update_id   TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, platform, update_id)
);
CREATE INDEX channel_updates_by_age ON channel_updates (received_at);

CREATE TABLE channel_deliveries (
    id          TEXT PRIMARY KEY,
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    agent_id    TEXT NOT NULL,
    platform    TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    ok          BIGINT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX channel_deliveries_by_agent ON channel_deliveries (agent_id, platform, created_at);

-- `getUpdates` long polling (Telegram without a public URL): one poller per bot across every
-- replica, the holder of this lease row; `next_offset` is the `offset` of its next call, so a
-- replica taking over continues where the last holder stopped.
CREATE TABLE channel_leases (
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    platform    TEXT NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, platform)
);
