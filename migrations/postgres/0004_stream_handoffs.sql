-- Media Streams calls: what a stream's session decided (transfer or goodbye) as the TwiML that the
-- <Redirect> after <Connect> answers with. Written before the stream is closed, read (and deleted)
-- by whichever instance Twilio's Redirect reaches.
CREATE TABLE stream_handoffs (
    call_sid    TEXT        PRIMARY KEY,
    shop        TEXT        NOT NULL,
    customer_id BIGINT,
    twiml       TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX stream_handoffs_created ON stream_handoffs (created_at);
