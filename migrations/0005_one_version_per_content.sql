-- One version per distinct definition of an asset: processes recording the
-- same definition at once (several `serve` starting together on a shared
-- PostgreSQL) cannot both create a version for it; the loser's insert
-- conflicts and it takes the winner's version.
--
-- Older databases may hold duplicates (an earlier release gave a reverted
-- definition a new version). Keep one per definition, the live version or
-- else the newest, and mark the others' fingerprints so that no content
-- lookup finds them; their images and records stay.
UPDATE asset_versions SET content_fp = content_fp || '~v' || CAST(version AS TEXT)
WHERE EXISTS (
    SELECT 1 FROM asset_versions o
    WHERE o.asset_id = asset_versions.asset_id
      AND o.content_fp = asset_versions.content_fp
      AND o.version <> asset_versions.version
      AND (
        EXISTS (SELECT 1 FROM asset_live l WHERE l.asset_id = o.asset_id AND l.version = o.version)
        OR (
          o.version > asset_versions.version
          AND NOT EXISTS (SELECT 1 FROM asset_live l
                          WHERE l.asset_id = asset_versions.asset_id AND l.version = asset_versions.version)
        )
      )
);
DROP INDEX asset_versions_content;
CREATE UNIQUE INDEX asset_versions_content ON asset_versions (asset_id, content_fp);
