-- Issue 16: call-back instead of waiting. One row per call whose caller pressed 1 in the queue
-- (a second press changes nothing). Placed through Twilio's REST API (Calls) when an agent clicks,
-- retried after ORDERLINE_CALLBACK_RETRY_AFTER when not answered, failed after
-- ORDERLINE_CALLBACK_ATTEMPTS. A customers/redact removes the customer's rows.
CREATE TABLE callbacks (
    call_sid         TEXT        PRIMARY KEY,
    shop             TEXT        NOT NULL,
    -- The number that called (E.164): the only number ever called back.
    to_number        TEXT        NOT NULL,
    -- The number the caller dialled: the call-back comes from it.
    from_number      TEXT,
    customer_id      BIGINT,
    -- Why the caller was in the queue (the transfer reason) and their place when they pressed 1.
    reason           TEXT,
    position         INTEGER,
    -- requested, calling, retry, connected, done, failed
    status           TEXT        NOT NULL,
    attempts         INTEGER     NOT NULL DEFAULT 0,
    last_error       TEXT,
    outbound_sid     TEXT,
    placed_by        TEXT,
    requested_at     TIMESTAMPTZ NOT NULL,
    next_attempt_at  TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX callbacks_open ON callbacks (shop, status, requested_at);
CREATE INDEX callbacks_due ON callbacks (status, next_attempt_at);
