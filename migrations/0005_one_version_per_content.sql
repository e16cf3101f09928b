-- One version per distinct definition of an asset: processes recording the
-- same definition at once (several `serve` starting together on a shared
-- PostgreSQL) cannot both create a version for it; the loser's insert
-- conflicts and it takes the winner's version.
DROP INDEX asset_versions_content;
CREATE UNIQUE INDEX asset_versions_content ON asset_versions (asset_id, content_fp);
