-- One render per layer key: a task whose layer is already recorded when it
-- is created or claimed finishes without rendering, pointing at that layer.
--
-- reused_layer: the id of the layer record such a task finished with
-- (NULL when it rendered, or has not stopped).
-- rerender: 1 when the task must render even though its key is recorded
-- (its stored object was found missing or unusable since).
ALTER TABLE tasks ADD COLUMN reused_layer TEXT;
ALTER TABLE tasks ADD COLUMN rerender BIGINT NOT NULL DEFAULT 0;
