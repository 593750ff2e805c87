ALTER TABLE tasks ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE TRIGGER tasks_touch BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
