-- The Concierge (§5): one per account and sandbox, an agent the platform manages. Its rows are
-- ordinary agents (sessions, runs, events, usage and traces work as for any agent) marked with
-- the account they belong to; agent lists leave them out.
ALTER TABLE agents ADD COLUMN concierge_of TEXT;
CREATE UNIQUE INDEX agents_concierge ON agents (sandbox_id, concierge_of) WHERE concierge_of IS NOT NULL;
