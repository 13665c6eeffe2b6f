-- An in-flight idempotency record belongs to the process handling it (`owner`: node id and
-- incarnation) for a lease it renews while the request runs. A retry after the lease ended (the
-- owner died) takes the record over instead of answering 409 until the 24 h TTL.
-- `created_ref` names what the request created, written in the same transaction as the work
-- (e.g. `ses_…/run_…`), so a taken-over retry answers with it instead of creating it again.
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT;
ALTER TABLE idempotency_keys ADD COLUMN lease_until BIGINT;
ALTER TABLE idempotency_keys ADD COLUMN created_ref TEXT;
