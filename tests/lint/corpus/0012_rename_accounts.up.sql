ALTER TABLE accounts RENAME TO organizations;
