DROP TRIGGER hits_bi;
DROP TABLE hits;
