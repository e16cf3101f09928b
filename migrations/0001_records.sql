-- layercake metadata, portable between SQLite and PostgreSQL:
-- TEXT ids (UUIDs), BIGINT times (microseconds since the Unix epoch),
-- INTEGER flags, JSON kept as TEXT. No dialect-specific types or functions.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Every version of every asset definition. `definition` is the asset file
-- as JSON; for assets managed through the API its templates are inline.
CREATE TABLE asset_versions (
    asset_id    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    org_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    definition  TEXT NOT NULL,
    content_fp  TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (asset_id, version)
);
CREATE INDEX asset_versions_content ON asset_versions (asset_id, content_fp);

-- Bumped when a registered layer replaces an image, so that composites
-- made from the old image are never served again.
CREATE TABLE asset_epochs (
    asset_id    TEXT PRIMARY KEY,
    epoch       BIGINT NOT NULL
);

CREATE TABLE files (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    user_id     TEXT,
    filename    TEXT NOT NULL,
    size        BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    extension   TEXT NOT NULL,
    mime_type   TEXT NOT NULL,
    path        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX files_org_hash ON files (org_id, hash);

CREATE TABLE layers (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL,
    asset_id            TEXT NOT NULL,
    asset_version       BIGINT NOT NULL,
    asset_layer         TEXT NOT NULL,
    layer_config        TEXT NOT NULL,
    layer_config_hash   TEXT NOT NULL,
    stage_id            TEXT,
    stage_config        TEXT NOT NULL,
    stage_config_hash   TEXT NOT NULL,
    metadata            TEXT NOT NULL,
    job_id              TEXT,
    task_id             TEXT,
    file_id             TEXT NOT NULL,
    branch              TEXT NOT NULL,
    format              TEXT NOT NULL,
    width               BIGINT NOT NULL,
    height              BIGINT NOT NULL,
    layer_key           TEXT NOT NULL,
    source              TEXT NOT NULL,
    created_at          BIGINT NOT NULL
);
CREATE INDEX layers_org_created ON layers (org_id, created_at);
CREATE INDEX layers_asset ON layers (org_id, asset_id, layer_config_hash, stage_config_hash);
CREATE INDEX layers_key ON layers (layer_key);

CREATE TABLE configurations (
    id                  TEXT PRIMARY KEY,
    short_id            TEXT NOT NULL UNIQUE,
    org_id              TEXT NOT NULL,
    product_id          TEXT NOT NULL,
    product_version     TEXT,
    variant             TEXT NOT NULL,
    metadata            TEXT NOT NULL,
    attachments         TEXT NOT NULL,
    customer_id         TEXT,
    identifier          TEXT,
    scope               TEXT,
    thumbnail           TEXT,
    session_id          TEXT,
    creator             TEXT,
    created_at          BIGINT NOT NULL
);
CREATE INDEX configurations_org_created ON configurations (org_id, created_at);
