import Postgres

// The catalogue's counts and bytes by state, kept by triggers as rows change (migration 0023):
// what `ccat status`, the status page and /metrics show, at a cost that does not grow with the
// catalogue.

/// Rows and bytes of one subject (a table, or `unpacking` and `package_archive_sites`) in one
/// state; copies also by location and kind.
public struct TallyFigure: Codable, Sendable, Equatable, Hashable {
    public var subject: String
    public var state: String
    /// physical_copy only, else 0.
    public var dataLocationId: Int64
    /// physical_copy only, else "".
    public var kind: String
    public var rows: Int64
    public var bytes: Int64
}

/// Where the kept tally and a fresh count disagree (`ccat db recount --check`).
public struct TallyCheck: Codable, Sendable, Equatable {
    public struct Difference: Codable, Sendable, Equatable {
        public var kept: TallyFigure?
        public var counted: TallyFigure?
    }
    public var differences: [Difference]
    /// Packages whose kept number of archive sites is not what their copies say (at most 20 ids).
    public var packagesWithWrongArchiveSites: Int
    public var examplePackageIds: [Int64]
    public var agrees: Bool

    public init(differences: [Difference], packagesWithWrongArchiveSites: Int, examplePackageIds: [Int64]) {
        self.differences = differences
        self.packagesWithWrongArchiveSites = packagesWithWrongArchiveSites
        self.examplePackageIds = examplePackageIds
        agrees = differences.isEmpty && packagesWithWrongArchiveSites == 0
    }
}

extension OpsDB {
    /// Every figure of the tally, its rows summed.
    public func catalogueTally() async throws -> [TallyFigure] {
        try await all(TallyFigure.self, """
            SELECT subject, state, data_location_id, kind, sum(row_count)::bigint AS rows, sum(byte_count)::bigint AS bytes
            FROM catalogue_tally GROUP BY 1, 2, 3, 4 HAVING sum(row_count) <> 0 OR sum(byte_count) <> 0 ORDER BY 1, 2, 3, 4
            """)
    }

    /// Sums each figure's rows into one; returns how many rows went. The monitoring manager does
    /// it every cycle, so that reading the tally stays a read of a few hundred rows.
    @discardableResult
    public func foldCatalogueTally() async throws -> Int64 {
        try await one(Int64Row.self, "SELECT ccat_fold_catalogue_tally() AS value").value
    }

    /// Counts the whole catalogue afresh into the tally (after a restore, or a bulk load with
    /// triggers off): as long as counting every row takes.
    public func recountCatalogueTally() async throws {
        try await connection.execute("SELECT ccat_recount_catalogue_tally()")
    }

    /// The kept tally against a fresh count of every table (read-only; as long as counting every
    /// row takes).
    public func checkCatalogueTally() async throws -> TallyCheck {
        // One snapshot for both sides, so that writers between them are no difference.
        try await transaction(isolation: .repeatableRead) { db in
            let kept = Set(try await db.catalogueTally())
            let counted = Set(try await db.all(TallyFigure.self, """
                SELECT subject, state, data_location_id, kind, row_count AS rows, byte_count AS bytes FROM ccat_catalogue_counts()
                WHERE row_count <> 0 OR byte_count <> 0
                """))
            func key(_ figure: TallyFigure) -> String { "\(figure.subject)|\(figure.state)|\(figure.dataLocationId)|\(figure.kind)" }
            let keptByKey = Dictionary(uniqueKeysWithValues: kept.map { (key($0), $0) })
            let countedByKey = Dictionary(uniqueKeysWithValues: counted.map { (key($0), $0) })
            let differences = Set(keptByKey.keys).union(countedByKey.keys).sorted().compactMap { name -> TallyCheck.Difference? in
                keptByKey[name] == countedByKey[name] ? nil : TallyCheck.Difference(kept: keptByKey[name], counted: countedByKey[name])
            }
            let wrong = try await db.connection.query("""
                SELECT p.id FROM raw_data_package p LEFT JOIN package_archive_sites_held held ON held.raw_data_package_id = p.id
                WHERE p.archive_sites <> coalesce(held.sites, 0) ORDER BY p.id
                """).map { try $0["id"] as Int64 }
            return TallyCheck(differences: differences, packagesWithWrongArchiveSites: wrong.count, examplePackageIds: Array(wrong.prefix(20)))
        }
    }
}

private struct Int64Row: Decodable {
    var value: Int64
}
