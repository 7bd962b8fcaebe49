-- Postgres's 0019 compares call SIDs byte by byte (COLLATE "C"). SQLite already does: its
-- default collation is BINARY. Kept so both backends' migrations share their numbers.
SELECT 1;
