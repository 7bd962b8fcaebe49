-- Issue 16: the tracking link by text. One row per call and order (pressing 4 again sends
-- nothing): claimed before Twilio is asked, then Twilio's message SID and status, or the failure.
-- Status callbacks (POST /twilio/sms-status) update the status by message SID. A
-- customers/redact removes the customer's rows (they hold the caller's number).
CREATE TABLE sms_messages (
    call_sid    TEXT        NOT NULL,
    order_id    INTEGER     NOT NULL,
    shop        TEXT        NOT NULL,
    customer_id INTEGER,
    to_number   TEXT        NOT NULL,
    from_number TEXT,
    message_sid TEXT        UNIQUE,
    -- 'requested' until Twilio answers, then Twilio's (queued, sent, delivered, undelivered,
    -- failed, …); 'failed' with error_code when Twilio refused it or did not answer.
    status      TEXT        NOT NULL,
    error_code  INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (call_sid, order_id)
);
CREATE INDEX sms_messages_customer ON sms_messages (shop, customer_id) WHERE customer_id IS NOT NULL;
