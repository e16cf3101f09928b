-- A public token may read a file's bytes only when the file is a layer's
-- image (http::files): that check looks layers up by org and file.
CREATE INDEX IF NOT EXISTS layers_by_file ON layers (org_id, file_id);
