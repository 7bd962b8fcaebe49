-- A call-back speaks the language its caller chose on the call that asked for it (a BCP 47 tag
-- such as `es-US`); none, as for requests taken before this column: the line's first language.
ALTER TABLE callbacks ADD COLUMN language TEXT;
