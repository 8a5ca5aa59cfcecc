-- Stream tickets (issue 15): a browser's EventSource cannot send an Authorization header,
-- so a client trades its bearer token for a short-lived, single-use ticket that it puts in
-- the stream's URL (?ticket=). Only the ticket's SHA-256 is kept; redeeming it deletes the
-- row in one statement (DELETE ... RETURNING), so exactly one of several instances sharing
-- the database wins. The ticket stands for the session of the token it was made with
-- (session_id: its refresh family, token_version: the user's when it was made) and never
-- outlives that token (access_expires_at); the purge thread drops expired rows.
CREATE TABLE stream_tickets (
    token_hash text PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id uuid NOT NULL,
    token_version INTEGER NOT NULL,
    access_expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX stream_tickets_expires_idx ON stream_tickets (expires_at);
