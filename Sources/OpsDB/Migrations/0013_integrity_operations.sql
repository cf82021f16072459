-- Keeping the archive whole: three operation types beyond the reference system's eight, run on a
-- long-term archive's own queues like the others (see 0014 for what they record).
--   FIXITY_CHECK       re-reads archive copies and recomputes their SHA-256, a budgeted slice at a time
--   CONSISTENCY_AUDIT  compares a listing of the storage with the catalogue (lost, dark, leftovers)
--   ARCHIVE_REPAIR     re-creates a lost or corrupted archive copy from another verified copy
-- (A new enum label cannot be used in the transaction that adds it, so its indexes come in 0014.)
ALTER TYPE operation_type ADD VALUE IF NOT EXISTS 'FIXITY_CHECK';
ALTER TYPE operation_type ADD VALUE IF NOT EXISTS 'CONSISTENCY_AUDIT';
ALTER TYPE operation_type ADD VALUE IF NOT EXISTS 'ARCHIVE_REPAIR';
