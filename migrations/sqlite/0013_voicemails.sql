-- Issue 16: voicemail. One row per recording Twilio made at a <Record> (keyed by its RecordingSid:
-- the Record action and the recording status callback may both arrive, in either order, and
-- write the same row). What the caller was told and who they are come from the call record when
-- the message is stored. A recording of one second or less is never stored. A customers/redact
-- removes the customer's rows (they hold the caller's number and words).
CREATE TABLE voicemails (
    recording_sid        TEXT        PRIMARY KEY,
    call_sid             TEXT        NOT NULL,
    shop                 TEXT        NOT NULL,
    from_number          TEXT        NOT NULL,
    customer_id          INTEGER,
    verification         TEXT,
    -- The order the caller heard about (its name, e.g. #1016), when they heard one.
    order_name           TEXT,
    -- Why voicemail was offered: closed, asked, unanswered, queue_left.
    reason               TEXT,
    duration_s           INTEGER     NOT NULL,
    recording_url        TEXT        NOT NULL,
    transcription        TEXT,
    -- Twilio's TranscriptionStatus (completed, failed) once its callback came.
    transcription_status TEXT,
    created_at           INTEGER NOT NULL,
    handled_at           INTEGER,
    handled_by           TEXT
);
CREATE INDEX voicemails_open ON voicemails (shop, handled_at, created_at);
CREATE INDEX voicemails_customer ON voicemails (shop, customer_id);
