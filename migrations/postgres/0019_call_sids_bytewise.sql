-- Call SIDs are Twilio's identifiers (CA + 32 hex digits), only ever compared for equality. In
-- byte order (COLLATE "C") every index comparison is a memcmp instead of the database locale's
-- strcoll: an incoming call writes a calls row and its call_events rows, each probing and
-- inserting into a B-tree keyed by call_sid (issue 14: about a tenth of Postgres's CPU at
-- saturation went to these comparisons). The indexes are rebuilt once.
ALTER TABLE calls ALTER COLUMN call_sid TYPE TEXT COLLATE "C";
ALTER TABLE call_events ALTER COLUMN call_sid TYPE TEXT COLLATE "C";
