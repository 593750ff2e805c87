-- popx: a generic up with a dialect down, chosen independently
DROP TABLE tags;
