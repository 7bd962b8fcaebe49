-- Issue 14: a delivery's body (8 KiB of JSON for an order) is compressed when it is stored and
-- read once by the applier, then cleared. Postgres's default, pglz, took 5.5% of the machine's
-- CPU during the 20,000-delivery intake benchmark (perf: `pglz_compress`, the largest single
-- symbol); lz4 compresses several times faster for a similar ratio. Only rows written from now
-- on use it. lz4 needs Postgres 14 built with it (the Debian and upstream packages are): where
-- it is missing, the column keeps pglz and nothing else changes.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE webhook_deliveries ALTER COLUMN body SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'lz4 is not available: delivery bodies stay compressed with pglz';
END
$$;
