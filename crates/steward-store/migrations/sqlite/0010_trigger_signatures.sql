-- Legacy-signed trigger deliveries (`Steward-Signature`, which does not cover the delivery id):
-- each signature is accepted once, recorded in the transaction that accepts its delivery, so a
-- captured delivery re-sent with new delivery ids starts nothing. The key is the hex SHA-256 of
-- the trigger id and the signature's bytes; rows are remembered past the end of the signature's
-- timestamp window and then deleted, a bounded number at a time.
CREATE TABLE trigger_signatures (
    signature_key  TEXT PRIMARY KEY,
    delivery_id    TEXT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX trigger_signatures_expiry ON trigger_signatures (expires_at);
