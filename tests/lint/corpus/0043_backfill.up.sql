UPDATE tasks SET source = 'web' WHERE source IS NULL;
