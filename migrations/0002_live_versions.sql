-- Which version of each asset is live, stated rather than inferred: a
-- revert (to an older definition) reuses that older version, so "newest"
-- and "live" can differ.
CREATE TABLE asset_live (
    asset_id    TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- What each catalogue file looked like when last read, so that a restart
-- can tell an edited file from one that is unchanged since.
CREATE TABLE catalog_imports (
    asset_id     TEXT PRIMARY KEY,
    content_fp   TEXT NOT NULL,
    imported_at  BIGINT NOT NULL
);

CREATE INDEX files_path ON files (path);
