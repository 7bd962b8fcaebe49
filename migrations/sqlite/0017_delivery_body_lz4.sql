-- Issue 14: Postgres stores delivery bodies compressed with lz4 from this migration on (see
-- migrations/postgres/0017). SQLite does not compress them: nothing to change here; the file
-- keeps both backends' migration numbers in step.
SELECT 1;
