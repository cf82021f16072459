import Foundation
import Logging
import OpsDB

/// 2. Completed packages in a buffer -> bundles (data transfer packages) up to the size limit, or
/// smaller once the oldest has waited `bundleMaxAgeSeconds`.
public struct DataTransferPackageManager: ManagerCycle {
    public let name = "data-transfer-package-manager"
    let settings: ManagerSettings
    public init(settings: ManagerSettings) { self.settings = settings }

    public func cycle(_ db: OpsDB, logger: Logger) async throws -> Int {
        let work = try await CycleContext.load(db, manager: name, logger: logger)
        let places = work.places
        var created = 0
        let waiting = try await db.unbundledPackages(limit: settings.batchSize * 10)
        for (bufferID, packages) in Dictionary(grouping: waiting, by: \.bufferID).sorted(by: { $0.key < $1.key }) {
            // A bundle is written next to its packages, so it must fit in what the buffer has free
            // (at its last check). A buffer short of space bundles what it has without waiting:
            // those packages leave, and their space is freed once they are archived.
            let size = BundleSizing(maxBytes: settings.bundleMaxBytes, status: try await db.locationStatus(bufferID),
                                    waitingBytes: packages.reduce(0) { $0 + $1.bytes })
            var batch: [UnbundledPackage] = []
            var bytes: Int64 = 0
            func close() async throws {
                guard !batch.isEmpty else { return }
                let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withYear, .withMonth, .withDay, .withTime])
                let name = "bundle-\(places.siteName(of: bufferID) ?? "site")-\(stamp)-\(batch[0].packageID)"
                let bundle = try await db.createDataTransferPackage(name: name, originLocationID: bufferID,
                                                                   relativePath: "bundles/\(name).tar", packageIDs: batch.map(\.packageID))
                logger.info("bundle \(bundle.name): \(batch.count) packages, \(bytes) bytes", metadata: ["bundle": "\(bundle.id)"])
                created += 1
                batch = []
                bytes = 0
            }
            for package in packages {
                if !batch.isEmpty, size.bound(bytes + package.bytes, count: batch.count + 1) > size.limit { try await close() }
                batch.append(package)
                bytes += package.bytes
                if size.bound(bytes, count: batch.count) >= size.limit { try await close() }
            }
            if size.pressed || (batch.map(\.ageSeconds).max() ?? 0) >= settings.bundleMaxAgeSeconds { try await close() }
        }
        created += try await work.scheduleEach(try await db.bundlesWithoutOperation(limit: settings.batchSize), item: { "bundle \($0)" }) { id in
            guard let bundle = try await db.dataTransferPackage(id: id) else { return nil }
            let size = try await db.rawDataPackages(bundleID: id).reduce(Int64(0)) { $0 + ($1.sizeBytes ?? 0) }
            return OperationPlan(.dataTransferPackageCreation, at: bundle.originLocationID, target: .dataTransferPackage(id), sizeHintBytes: size)
        }
        return created
    }
}

/// How large a bundle in one buffer may be: the configured size, or what the buffer had free at
/// its last check (MONITORING) if that is less. When the packages waiting there take half of the
/// free space or more, the buffer is `pressed`: they are bundled now, before more packages take
/// the room their bundles need.
struct BundleSizing {
    let limit: Int64
    let fitsFreeSpace: Bool
    let pressed: Bool

    init(maxBytes: Int64, status: LocationStatus?, waitingBytes: Int64) {
        if let status, status.reachable, let free = status.freeBytes {
            limit = max(min(free, maxBytes), 0)
            fitsFreeSpace = free < maxBytes
            pressed = waitingBytes * 2 >= free
        } else {
            limit = maxBytes
            fitsFreeSpace = false
            pressed = false
        }
    }

    /// The bundle's size on disk for `count` packages of `bytes` in all, when that must fit in
    /// free space: tar headers and padding counted generously (as `TarArchive.sizeBound`).
    func bound(_ bytes: Int64, count: Int) -> Int64 { fitsFreeSpace ? bytes + 1024 + Int64(count) * 2560 : bytes }
}
