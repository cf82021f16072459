-- How many distinct sites must hold a verified long-term archive copy of a package before its
-- temporary copies (SOURCE files, BUFFER packages and bundles) may be deleted. One row; NULL means
-- every site that has an active long-term archive (the default). Set from the topology file's
-- 'required_archive_sites'.
CREATE TABLE archive_policy (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    required_archive_sites integer CHECK (required_archive_sites >= 1),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO archive_policy DEFAULT VALUES;
