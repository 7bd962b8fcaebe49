-- Issue 16: signed outbound notifications (ORDERLINE_NOTIFY_URL). One row per call and kind
-- (`transferred`); the JSON is built from the call's card when it is sent, so it holds what the
-- record holds by then. Retried with backoff until delivered, or dead after the last attempt.
CREATE TABLE notifications (
    call_sid        TEXT        NOT NULL,
    kind            TEXT        NOT NULL,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    dead_at         TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (call_sid, kind)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
