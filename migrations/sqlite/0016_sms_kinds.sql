-- Issue 19: a second kind of text during a call, the return label link (key 6 after key 3),
-- beside the tracking link (key 4). One row per call, order and kind: pressing either key again
-- sends nothing, and asking for both sends both. Rows written before this migration are
-- tracking links. SQLite cannot change a primary key in place: the table is rebuilt.
CREATE TABLE sms_messages_new (
    call_sid    TEXT        NOT NULL,
    order_id    INTEGER     NOT NULL,
    kind        TEXT        NOT NULL DEFAULT 'tracking',
    shop        TEXT        NOT NULL,
    customer_id INTEGER,
    to_number   TEXT        NOT NULL,
    from_number TEXT,
    message_sid TEXT        UNIQUE,
    status      TEXT        NOT NULL,
    error_code  INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (call_sid, order_id, kind)
);
INSERT INTO sms_messages_new (call_sid, order_id, kind, shop, customer_id, to_number, from_number, message_sid,
    status, error_code, created_at, updated_at)
SELECT call_sid, order_id, 'tracking', shop, customer_id, to_number, from_number, message_sid,
    status, error_code, created_at, updated_at FROM sms_messages;
DROP TABLE sms_messages;
ALTER TABLE sms_messages_new RENAME TO sms_messages;
CREATE INDEX sms_messages_customer ON sms_messages (shop, customer_id) WHERE customer_id IS NOT NULL;
