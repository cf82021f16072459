// A large archived catalogue made in one go, and a batch of work at every stage: what
// ccat-bench-managers measures the managers on, and what the tests hold their cost to.
import Foundation
import OpsDB
import Postgres

/// Files per observation (and so per raw data package), and packages per bundle.
public let filesPerObservation = 10, packagesPerBundle = 10

/// The sites of the catalogue: CCAT (a SOURCE and a buffer), Cologne and the US (a buffer and a
/// long-term archive each).
public struct CatalogueSites: Sendable {
    public let source: Int64
    public let telescope: Int64
    /// Cologne's and the US's.
    public let buffers: [Int64]
    public let archives: [Int64]

    public static func create(_ db: OpsDB) async throws -> CatalogueSites {
        let ccat = try await db.insertSite(name: "CCAT", shortName: "ccat")
        let source = try await db.insertLocation(siteID: ccat.id, name: "instrument_data", type: .source, storage: .disk(rootPath: "/data/source")).id
        let telescope = try await db.insertLocation(siteID: ccat.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/buffer")).id
        var buffers: [Int64] = [], archives: [Int64] = []
        for (name, shortName) in [("Cologne", "cologne"), ("US", "us")] {
            let site = try await db.insertSite(name: name, shortName: shortName)
            buffers.append(try await db.insertLocation(siteID: site.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/\(shortName)/buffer")).id)
            archives.append(try await db.insertLocation(siteID: site.id, name: "archive", type: .longTermArchive,
                                                        storage: .disk(rootPath: "/data/\(shortName)/archive")).id)
        }
        return CatalogueSites(source: source, telescope: telescope, buffers: buffers, archives: archives)
    }
}

/// What this session's statements have read so far, from the statistics views: rows (heap rows
/// of sequential scans and index entries of index scans) and buffers touched (hits and reads of
/// heap, index and TOAST blocks).
public struct ReadCounter {
    let connection: PostgresConnection
    public init(_ connection: PostgresConnection) { self.connection = connection }

    public func read() async throws -> (rows: Int64, buffers: Int64) {
        // This backend's counters reach the views when it flushes them, forced after the next statement.
        _ = try await connection.query("SELECT pg_stat_force_next_flush()")
        _ = try await connection.query("SELECT pg_stat_clear_snapshot()")
        let row = try await connection.query("""
            SELECT (SELECT coalesce(sum(coalesce(seq_tup_read, 0)), 0) FROM pg_stat_user_tables)::bigint
                   + (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes)::bigint AS rows,
                   (SELECT coalesce(sum(coalesce(heap_blks_read, 0) + coalesce(heap_blks_hit, 0) + coalesce(idx_blks_read, 0)
                                        + coalesce(idx_blks_hit, 0) + coalesce(toast_blks_read, 0) + coalesce(toast_blks_hit, 0)
                                        + coalesce(tidx_blks_read, 0) + coalesce(tidx_blks_hit, 0)), 0)
                    FROM pg_statio_user_tables)::bigint AS buffers
            """)[0]
        return (try row["rows"], try row["buffers"])
    }
}

/// The archived history, set-based: indexes and unique constraints are dropped for the fill and
/// built afterwards (one sort each instead of 10^7 insertions; primary keys and what foreign keys
/// lean on stay), and foreign keys are not checked
/// row by row (session_replication_role = replica; the rows are made consistent by construction).
///
/// `files` raw data files of `filesPerObservation` each. Returns the numbers of packages and
/// bundles made.
@discardableResult
public func fillArchive(_ connection: PostgresConnection, files: Int, sites: CatalogueSites) async throws -> (packages: Int, bundles: Int) {
    let (source, telescope, buffers, archives) = (sites.source, sites.telescope, sites.buffers, sites.archives)
    let packages = files / filesPerObservation
    let bundles = (packages + packagesPerBundle - 1) / packagesPerBundle
    let tables = ["executed_obs_unit", "raw_data_package", "raw_data_file", "physical_copy", "data_transfer_package", "data_transfer",
                  "long_term_archive_transfer", "operation"]
    // Plain indexes, and unique constraints no foreign key leans on: rebuilt by a sort each after the fill.
    let indexes: [(name: String, definition: String)] = try await connection.query("""
        SELECT ic.relname::text AS name, pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE t.relname = ANY(\(tables)) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """).map { (try $0["name"], try $0["definition"]) }
    let uniques: [(table: String, name: String, definition: String)] = try await connection.query("""
        SELECT t.relname::text AS tab, c.conname::text AS name, pg_get_constraintdef(c.oid) AS definition
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        WHERE t.relname = ANY(\(tables)) AND c.contype = 'u'
          AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = c.conindid)
        """).map { (try $0["tab"], try $0["name"], try $0["definition"]) }
    for index in indexes { try await connection.execute("DROP INDEX \(identifier: index.name)") }
    for unique in uniques { try await connection.execute("ALTER TABLE \(identifier: unique.table) DROP CONSTRAINT \(identifier: unique.name)") }
    try await connection.executeScript("SET session_replication_role = replica; SET maintenance_work_mem = '1GB'; SET synchronous_commit = off")
    let day = "now() - interval '1 day'", hour = "now() - interval '1 hour'"
    let (cologneBuffer, usBuffer) = (buffers[0], buffers[1])
    let statements: [String] = [
        "INSERT INTO executed_obs_unit (obs_id, start_time) SELECT 'obs-' || g, \(day) FROM generate_series(1, \(packages)) g",
        """
        INSERT INTO data_transfer_package (name, origin_location_id, status, relative_path, size_bytes, checksum, created_at, updated_at)
        SELECT 'bundle-' || g, \(telescope), 'COMPLETED', 'bundles/bundle-' || g || '.tar', 104857600, repeat('c', 64), \(day), \(day)
        FROM generate_series(1, \(bundles)) g
        """,
        """
        INSERT INTO raw_data_package (name, executed_obs_unit_id, source_location_id, status, relative_path, size_bytes, checksum,
                                      data_transfer_package_id, updated_at)
        SELECT 'pkg-' || g, g, \(source), 'COMPLETED', 'packages/pkg-' || g || '.tar', 10485760, repeat('a', 64),
               (g - 1) / \(packagesPerBundle) + 1, \(day)
        FROM generate_series(1, \(packages)) g
        """,
        """
        INSERT INTO raw_data_file (filename, relative_path, size_bytes, checksum, executed_obs_unit_id, source_location_id, raw_data_package_id, registered_at)
        SELECT 'f' || g || '.fits', 'obs-' || o || '/f' || g || '.fits', 1048576, repeat('b', 64), o, \(source), o, \(day)
        FROM generate_series(1, \(packages * filesPerObservation)) g, LATERAL (SELECT (g - 1) / \(filesPerObservation) + 1 AS o) x
        """,
        """
        INSERT INTO physical_copy (kind, raw_data_file_id, data_location_id, status, relative_path, size_bytes, checksum, created_at, deleted_at)
        SELECT 'RAW_DATA_FILE', f.id, \(source), 'DELETED', f.relative_path, f.size_bytes, f.checksum, \(day), \(hour) FROM raw_data_file f
        """,
        // Packages at the telescope's and each site's buffer (deleted once archived), and in both archives.
        """
        INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, status, relative_path, size_bytes, checksum, verified_at, created_at, deleted_at)
        SELECT 'RAW_DATA_PACKAGE', p.id, b, 'DELETED', p.relative_path, p.size_bytes, p.checksum, \(day), \(day), \(hour)
        FROM raw_data_package p, unnest(\(sqlArray([telescope] + buffers))) b
        """,
        """
        INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, status, relative_path, size_bytes, checksum, verified_at, created_at)
        SELECT 'RAW_DATA_PACKAGE', p.id, a, 'PRESENT', p.relative_path, p.size_bytes, p.checksum, \(day), \(day)
        FROM raw_data_package p, unnest(\(sqlArray(archives))) a
        """,
        """
        INSERT INTO physical_copy (kind, data_transfer_package_id, data_location_id, status, relative_path, size_bytes, checksum, verified_at, created_at, deleted_at)
        SELECT 'DATA_TRANSFER_PACKAGE', d.id, b, 'DELETED', d.relative_path, d.size_bytes, d.checksum, \(day), \(day), \(hour)
        FROM data_transfer_package d, unnest(\(sqlArray([telescope] + buffers))) b
        """,
        // Each bundle went to Cologne, and from Cologne on to the US; both unpacked.
        """
        INSERT INTO data_transfer (data_transfer_package_id, origin_location_id, destination_location_id, method, status, unpack_status,
                                   attempts, unpack_attempts, bytes_transferred, started_at, finished_at, unpacked_at, created_at, updated_at)
        SELECT d.id, hop.origin, hop.destination, 'RSYNC', 'COMPLETED', 'COMPLETED', 1, 1, d.size_bytes, \(day), \(day), \(day), \(day), \(day)
        FROM data_transfer_package d,
             (VALUES (\(telescope)::bigint, \(cologneBuffer)::bigint), (\(cologneBuffer)::bigint, \(usBuffer)::bigint)) hop(origin, destination)
        """,
        """
        INSERT INTO long_term_archive_transfer (raw_data_package_id, origin_location_id, destination_location_id, status, attempts,
                                                started_at, finished_at, created_at, updated_at)
        SELECT p.id, site.buffer, site.archive, 'COMPLETED', 1, \(day), \(day), \(day), \(day)
        FROM raw_data_package p, (VALUES (\(cologneBuffer)::bigint, \(archives[0])::bigint), (\(usBuffer)::bigint, \(archives[1])::bigint)) site(buffer, archive)
        """,
        // Every step's operation, succeeded.
        """
        INSERT INTO operation (operation_type, queue, data_location_id, state, raw_data_package_id, attempts, created_at, updated_at, started_at, finished_at)
        SELECT 'RAW_DATA_PACKAGE_CREATION', 'ccat_raw_data_package_creation', \(source), 'succeeded', p.id, 1, \(day), \(day), \(day), \(day)
        FROM raw_data_package p
        """,
        """
        INSERT INTO operation (operation_type, queue, data_location_id, state, data_transfer_package_id, attempts, created_at, updated_at, started_at, finished_at)
        SELECT 'DATA_TRANSFER_PACKAGE_CREATION', 'ccat_data_transfer_package_creation', \(telescope), 'succeeded', d.id, 1, \(day), \(day), \(day), \(day)
        FROM data_transfer_package d
        """,
        """
        INSERT INTO operation (operation_type, queue, data_location_id, state, data_transfer_id, attempts, created_at, updated_at, started_at, finished_at)
        SELECT kind, 'ccat_' || lower(kind::text), t.destination_location_id, 'succeeded', t.id, 1, \(day), \(day), \(day), \(day)
        FROM data_transfer t, unnest('{DATA_TRANSFER,DATA_TRANSFER_UNPACKING}'::operation_type[]) kind
        """,
        """
        INSERT INTO operation (operation_type, queue, data_location_id, state, long_term_archive_transfer_id, attempts, created_at, updated_at, started_at, finished_at)
        SELECT 'LONG_TERM_ARCHIVE_TRANSFER', 'ccat_long_term_archive_transfer', x.destination_location_id, 'succeeded', x.id, 1, \(day), \(day), \(day), \(day)
        FROM long_term_archive_transfer x
        """,
    ]
    for statement in statements { try await connection.execute(PostgresQuery(stringLiteral: statement)) }
    try await connection.execute("SET session_replication_role = DEFAULT")
    for index in indexes { try await connection.execute(PostgresQuery(stringLiteral: index.definition)) }
    for unique in uniques {
        try await connection.execute("ALTER TABLE \(identifier: unique.table) ADD CONSTRAINT \(identifier: unique.name) \(PostgresQuery(stringLiteral: unique.definition))")
    }
    // The triggers that keep the catalogue's tally were off with the foreign keys: count it once.
    try await connection.execute("SELECT ccat_recount_catalogue_tally()")
    try await connection.executeScript("RESET maintenance_work_mem; RESET synchronous_commit")
    try await connection.execute("VACUUM ANALYZE")
    return (packages, bundles)
}

/// A batch of work at every stage: files to package, packages to bundle, bundles to send,
/// transfers to unpack, packages to archive.
public func seedPendingWork(_ connection: PostgresConnection, batch: Int, sites: CatalogueSites) async throws {
    let (source, telescope, cologneBuffer) = (sites.source, sites.telescope, sites.buffers[0])
    let statements: [String] = [
        // Files of `batch` new observations, registered and present at the source.
        "INSERT INTO executed_obs_unit (obs_id, start_time) SELECT 'new-' || g, now() FROM generate_series(1, \(batch)) g",
        """
        INSERT INTO raw_data_file (filename, relative_path, size_bytes, checksum, executed_obs_unit_id, source_location_id, registered_at)
        SELECT 'n' || g || '.fits', o.obs_id || '/n' || g || '.fits', 1048576, repeat('b', 64), o.id, \(source), now() - interval '1 hour'
        FROM executed_obs_unit o, generate_series(1, \(filesPerObservation)) g WHERE o.obs_id LIKE 'new-%'
        """,
        """
        INSERT INTO physical_copy (kind, raw_data_file_id, data_location_id, status, relative_path, size_bytes, checksum)
        SELECT 'RAW_DATA_FILE', f.id, \(source), 'PRESENT', f.relative_path, f.size_bytes, f.checksum FROM raw_data_file f WHERE f.raw_data_package_id IS NULL
        """,
        // Packages made and verified at the telescope's buffer, not yet in a bundle; and packages
        // unpacked at Cologne's buffer, not yet archived.
        """
        INSERT INTO raw_data_package (name, executed_obs_unit_id, source_location_id, status, relative_path, size_bytes, checksum, updated_at)
        SELECT 'waiting-' || stage || '-' || g, g, \(source), 'COMPLETED', 'packages/waiting-' || stage || '-' || g || '.tar', 10485760, repeat('a', 64),
               now() - interval '1 day'
        FROM generate_series(1, \(batch)) g, unnest('{bundle,archive}'::text[]) stage
        """,
        """
        INSERT INTO physical_copy (kind, raw_data_package_id, data_location_id, status, relative_path, size_bytes, checksum, verified_at)
        SELECT 'RAW_DATA_PACKAGE', p.id, CASE WHEN p.name LIKE 'waiting-bundle-%' THEN \(telescope) ELSE \(cologneBuffer) END, 'PRESENT',
               p.relative_path, p.size_bytes, p.checksum, now()
        FROM raw_data_package p WHERE p.name LIKE 'waiting-%'
        """,
        // Bundles made and verified at the telescope's buffer, not yet sent; and bundles arrived
        // at Cologne, not yet unpacked.
        """
        INSERT INTO data_transfer_package (name, origin_location_id, status, relative_path, size_bytes, checksum)
        SELECT 'waiting-' || stage || '-' || g, \(telescope), 'COMPLETED', 'bundles/waiting-' || stage || '-' || g || '.tar', 104857600, repeat('c', 64)
        FROM generate_series(1, \(batch)) g, unnest('{send,unpack}'::text[]) stage
        """,
        """
        UPDATE raw_data_package p SET data_transfer_package_id = d.id
        FROM data_transfer_package d WHERE p.name = 'waiting-archive-' || split_part(d.name, '-', 3) AND d.name LIKE 'waiting-unpack-%'
        """,
        """
        INSERT INTO physical_copy (kind, data_transfer_package_id, data_location_id, status, relative_path, size_bytes, checksum, verified_at)
        SELECT 'DATA_TRANSFER_PACKAGE', d.id, CASE WHEN d.name LIKE 'waiting-send-%' THEN \(telescope) ELSE \(cologneBuffer) END, 'PRESENT',
               d.relative_path, d.size_bytes, d.checksum, now()
        FROM data_transfer_package d WHERE d.name LIKE 'waiting-%'
        """,
        """
        INSERT INTO data_transfer (data_transfer_package_id, origin_location_id, destination_location_id, method, status, attempts, bytes_transferred, finished_at)
        SELECT d.id, \(telescope), \(cologneBuffer), 'RSYNC', 'COMPLETED', 1, d.size_bytes, now() FROM data_transfer_package d WHERE d.name LIKE 'waiting-unpack-%'
        """,
    ]
    for statement in statements { try await connection.execute(PostgresQuery(stringLiteral: statement)) }
    try await connection.execute("ANALYZE")
}

/// `ARRAY[1,2]::bigint[]`, for statements built as text.
func sqlArray(_ ids: [Int64]) -> String { "ARRAY[\(ids.map(String.init).joined(separator: ","))]::bigint[]" }
