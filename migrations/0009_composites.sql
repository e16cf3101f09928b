-- The composite tier's ledger (storage.composite_budget_bytes): every
-- composite written to the object store, its size and when it was last
-- read from there, so that the least recently used can be evicted once the
-- total passes the budget. Layers are never listed here: they stay.
CREATE TABLE IF NOT EXISTS composites (
    path TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL,
    used_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS composites_by_use ON composites (used_at);
