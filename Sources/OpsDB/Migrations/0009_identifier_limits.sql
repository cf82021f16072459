-- Identifiers a registration brings in become parts of package names, archive paths, S3 keys and
-- index rows; their limits (RegistrationRules in the code, which says the same to the user first)
-- are also the schema's, so no client can store one that breaks a later stage. NOT VALID: rows
-- registered before these limits are left as they are (an admin can find them with the same
-- conditions); every new or changed row is checked.
ALTER TABLE executed_obs_unit ADD CONSTRAINT executed_obs_unit_obs_id_limits
    CHECK (char_length(obs_id) BETWEEN 1 AND 128 AND obs_id ~ '^[A-Za-z0-9][A-Za-z0-9._+:-]*$') NOT VALID;
ALTER TABLE instrument_module ADD CONSTRAINT instrument_module_name_limits
    CHECK (char_length(instrument) BETWEEN 1 AND 64 AND char_length(name) BETWEEN 1 AND 64) NOT VALID;
ALTER TABLE raw_data_file ADD CONSTRAINT raw_data_file_relative_path_limits
    CHECK (octet_length(relative_path) <= 1024 AND relative_path !~ '[[:cntrl:]]' AND relative_path ~ '/'
           AND relative_path !~ '(^|/)\.?(/|$)' AND relative_path !~ '/$') NOT VALID;
