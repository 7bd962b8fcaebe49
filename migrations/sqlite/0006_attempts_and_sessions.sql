-- Failed attempts (wrong postal codes, wrong agent logins) counted across calls and instances.
-- `subject` is a SHA-256 of what is counted (a customer, a calling number), never the value
-- itself; rows older than their kind's window are removed as new ones of that kind are written.
CREATE TABLE failed_attempts (
    kind       TEXT        NOT NULL,
    subject    TEXT        NOT NULL,
    at         INTEGER     NOT NULL
);
CREATE INDEX failed_attempts_subject ON failed_attempts (kind, subject, at);
CREATE INDEX failed_attempts_at ON failed_attempts (at);

-- Agents' console sessions: one random token per login, kept as its HMAC-SHA256 under the agent
-- token (so changing the token ends them all), valid until `expires_at` or until logout deletes it.
CREATE TABLE agent_sessions (
    token_hash TEXT        PRIMARY KEY,
    created_at INTEGER     NOT NULL,
    expires_at INTEGER     NOT NULL
);
CREATE INDEX agent_sessions_expires ON agent_sessions (expires_at);
