-- squawk-ignore-file require-concurrent-index-creation

CREATE INDEX tasks_state_idx ON tasks (state);
CREATE INDEX tasks_updated_idx ON tasks (updated_at);
