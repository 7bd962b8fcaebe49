-- Reports: orderline's own response time per call, an index to see whether a caller called again
-- within the repeat window, and the daily aggregates the reports read for every day rolled up
-- (kept after retention deletes the calls and their events: they hold counts, never a caller).
ALTER TABLE calls ADD COLUMN first_word_ms INTEGER;
CREATE INDEX calls_repeat ON calls (shop, from_e164, started_at) WHERE from_e164 IS NOT NULL;

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
