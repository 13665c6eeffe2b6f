-- A session runs one run at a time (the claim and the run writer's admissions check it; this
-- makes the database refuse a second `running` run of a session whatever the code does).
CREATE UNIQUE INDEX runs_one_running_per_session ON runs (session_id) WHERE status = 'running';
