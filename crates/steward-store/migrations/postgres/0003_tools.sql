-- Tool sources (§6) and environments (§7). The configuration is stored as the JSON of its wire
-- shape; the name is a column so it can be unique per sandbox.
CREATE TABLE sources (
    id          TEXT COLLATE "C" PRIMARY KEY,
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX sources_name ON sources (sandbox_id, name);

CREATE TABLE environments (
    id          TEXT COLLATE "C" PRIMARY KEY,
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX environments_name ON environments (sandbox_id, name);
