-- The deletion manager walks the copies that still exist in id order (a cursor through the
-- table); once most copies are deleted, this index keeps that walk to the live ones.
CREATE INDEX physical_copy_present ON physical_copy (id) WHERE status = 'PRESENT';
