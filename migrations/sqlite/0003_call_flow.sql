-- Call events are numbered by the request of the call that produced them (its step, which the
-- call's URLs carry) and their place in that request: a retried Twilio request writes nothing
-- twice, and any instance can record any step without reading the call first.
DROP TABLE call_events;
CREATE TABLE call_events (
    call_sid  TEXT        NOT NULL,
    step      INTEGER     NOT NULL,
    idx       INTEGER     NOT NULL,
    kind      TEXT        NOT NULL,  -- 'lookup' | 'step' | 'key' | 'verification' | 'order' | 'transfer' | 'goodbye' | 'status' | 'error'
    detail    TEXT        NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (call_sid, step, idx)
);

-- Twilio's status callbacks can arrive out of order: a callback applies only when its
-- SequenceNumber is higher than the last one applied.
ALTER TABLE calls ADD COLUMN status_seq INTEGER;
CREATE INDEX calls_started ON calls (shop, started_at DESC);
