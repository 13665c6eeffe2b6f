-- A sandbox's IANA time zone: local times users give without a zone (a pause until "09:00")
-- are read in it.
ALTER TABLE sandboxes ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
