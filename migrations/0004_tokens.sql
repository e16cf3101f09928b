-- API tokens. The token itself is never stored: `hash` is the hex blake3
-- of it. `kind` is private | public; `origins` is a JSON array of the
-- origins a public token may be used from. A server with no row here at
-- all runs in development mode (see http::auth).
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    origins     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE UNIQUE INDEX tokens_hash ON tokens (hash);
