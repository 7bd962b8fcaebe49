-- Reports: orderline's own response time per call, an index to read recent call events by time,
-- and the daily aggregates the reports read for every day rolled up (kept after retention deletes
-- the calls and their events: they hold counts, never a caller). Whether a caller called again is
-- read with a window function over calls_started (0003).
ALTER TABLE calls ADD COLUMN first_word_ms INTEGER;
-- A report reads recent days' call events by time: one range scan (appends at the index's end).
CREATE INDEX call_events_at ON call_events (at);

CREATE TABLE call_days (
    shop   TEXT        NOT NULL,
    day    TIMESTAMPTZ NOT NULL,  -- the UTC midnight starting the day
    figure TEXT        NOT NULL,  -- see domain::report::Figure
    label  TEXT        NOT NULL,
    n      BIGINT      NOT NULL,
    PRIMARY KEY (shop, day, figure, label)
);

-- Every day before `rolled_through` is in call_days (and final: the repeat window has passed).
CREATE TABLE call_days_rolled (
    shop           TEXT        PRIMARY KEY,
    rolled_through TIMESTAMPTZ NOT NULL
);
