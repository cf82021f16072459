-- The managers look for work among the live copies at buffers and sources: few rows beside the
-- archives' copies, which grow for ever. PostgreSQL's per-column statistics cannot tell: a buffer
-- holds many copies (almost all of them DELETED) and most copies are PRESENT (almost all of them in
-- an archive), so 'PRESENT at these buffers' looked like most of the table and the planner walked
-- every live copy in id order instead of reading the few at the buffers through physical_copy_location.
-- Statistics over the columns together give the planner the real counts per location and status.
CREATE STATISTICS physical_copy_location_status (mcv) ON data_location_id, status, kind FROM physical_copy;
ANALYZE physical_copy;
