-- Each org's share of the render queue (jobs.max_pending_per_org) counts
-- its pending tasks on every submission.
CREATE INDEX IF NOT EXISTS tasks_org_status ON tasks (org_id, status);
