-- The asset a task renders, so a remote worker's claim can ask only for
-- the assets whose render backends it has (the worker protocol). NULL for
-- tasks queued before this migration, or by a server older than it: those
-- are claimed by database workers only.
ALTER TABLE tasks ADD COLUMN asset_id TEXT;
