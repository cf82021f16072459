import OpsDB
import Postgres

/// A migrated catalogue with CCAT's SOURCE and BUFFER locations, a long-term archive at Cologne
/// and at the US site, and one observation.
struct ArchiveSitesFixture {
    static let checksum = String(repeating: "a", count: 64)

    let db: OpsDB
    let source: DataLocation
    let buffer: DataLocation
    let archives: [DataLocation]
    let observation: ExecutedObsUnit

    /// `through`: the last migration applied (all of them when nil).
    static func make(_ connection: PostgresConnection, through version: Int? = nil) async throws -> ArchiveSitesFixture {
        try await Migrator(migrations: try Migrator.bundled().migrations.filter { $0.version <= version ?? .max }).migrate(connection)
        let db = OpsDB(connection)
        let ccat = try await db.insertSite(name: "CCAT", shortName: "ccat")
        let source = try await db.insertLocation(siteID: ccat.id, name: "instrument_data", type: .source, storage: .disk(rootPath: "/data/source"))
        let buffer = try await db.insertLocation(siteID: ccat.id, name: "buffer", type: .buffer, storage: .disk(rootPath: "/data/buffer"))
        var archives: [DataLocation] = []
        for site in ["cologne", "us"] {
            let archiveSite = try await db.insertSite(name: site, shortName: site)
            archives.append(try await db.insertLocation(siteID: archiveSite.id, name: "long_term_archive", type: .longTermArchive,
                                                        storage: .disk(rootPath: "/data/\(site)/archive")))
        }
        return ArchiveSitesFixture(db: db, source: source, buffer: buffer, archives: archives,
                                   observation: try await db.upsertObservation(obsID: "obs-1"))
    }

    /// A file of the observation registered at the source (with its copy there).
    func registerFile(_ name: String, bytes: Int64) async throws -> RawDataFile {
        try await db.registerRawDataFile(NewRawDataFile(relativePath: "obs-1/\(name)", sizeBytes: bytes, checksum: Self.checksum,
                                                        executedObsUnitID: observation.id, sourceLocationID: source.id)).file
    }

    /// A package of `files`, made and verified (4096 bytes), without copies yet.
    func package(_ files: [RawDataFile]) async throws -> RawDataPackage {
        let package = try await db.createRawDataPackage(name: "obs-1", observationID: observation.id, sourceLocationID: source.id,
                                                        relativePath: "packages/obs-1.tar", fileIDs: files.map(\.id))
        try await db.recordRawDataPackageArchive(package.id, sizeBytes: 4096, checksum: Self.checksum, manifestJSON: "[]")
        return package
    }

    /// A verified copy of `package` at `location`.
    @discardableResult
    func copy(of package: RawDataPackage, at location: DataLocation) async throws -> PhysicalCopy {
        try await db.insertPhysicalCopy(of: .rawDataPackage(package.id), at: location.id, relativePath: package.relativePath,
                                        sizeBytes: 4096, checksum: Self.checksum, verified: true)
    }
}
