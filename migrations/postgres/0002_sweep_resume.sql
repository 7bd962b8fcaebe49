-- Where an interrupted reconciliation sweep resumes (NULL when no sweep is under way).
ALTER TABLE sync_watermarks ADD COLUMN resume_from TIMESTAMPTZ;
