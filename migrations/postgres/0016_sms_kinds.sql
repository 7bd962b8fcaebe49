-- Issue 19: a second kind of text during a call, the return label link (key 6 after key 3),
-- beside the tracking link (key 4). One row per call, order and kind: pressing either key again
-- sends nothing, and asking for both sends both. Rows written before this migration are
-- tracking links.
ALTER TABLE sms_messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'tracking';
ALTER TABLE sms_messages DROP CONSTRAINT sms_messages_pkey;
ALTER TABLE sms_messages ADD PRIMARY KEY (call_sid, order_id, kind);
