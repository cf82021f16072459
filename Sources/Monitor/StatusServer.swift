import Foundation
import Hummingbird
import Logging
import Managers
import NIOCore
import OpsDB
import Postgres
import Prometheus
import ServiceLifecycle

/// The daemon's HTTP side: `/metrics` (Prometheus), `/healthz`, `/api/v1/status` (the document
/// of `ccat status --json`) and `/`, the status page. Every route only reads.
public struct StatusServer: Sendable {
    public let address: HTTPAddress
    let reader: CatalogueReader
    let leadership: LeadershipBoard
    let live: PrometheusCollectorRegistry?
    let logger: Logger
    /// Seconds between the status page's own reloads.
    let refreshSeconds: Int

    public init(address: HTTPAddress, conninfo: String, leadership: LeadershipBoard, live: PrometheusCollectorRegistry?,
                logger: Logger, refreshSeconds: Int = 30) {
        self.address = address
        self.reader = CatalogueReader(conninfo: conninfo, logger: logger)
        self.leadership = leadership
        self.live = live
        self.logger = logger
        self.refreshSeconds = refreshSeconds
    }

    /// A service for the daemon's service group; it stops with the group.
    public func makeService(onRunning: @escaping @Sendable (HTTPAddress) async -> Void = { _ in }) -> some Service {
        let router = Router()
        router.get("metrics") { _, _ in try await self.metrics() }
        router.get("healthz") { _, _ in try await self.health() }
        router.get("api/v1/status") { _, _ in try await self.statusDocument() }
        router.get("/") { _, _ in try await self.page() }
        let requested = address
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "ccat", reuseAddress: true),
            onServerRunning: { channel in
                var bound = requested
                if let port = channel.localAddress?.port { bound.port = port }
                await onRunning(bound)
            },
            logger: logger)
    }

    /// Serves for the length of `body`, which gets the address the server listens on (port 0: one
    /// the kernel picked); for tests and benchmarks. The server stops when `body` returns.
    public func serving<T: Sendable>(_ body: (HTTPAddress) async throws -> T) async throws -> T {
        let (addresses, continuation) = AsyncStream.makeStream(of: HTTPAddress.self)
        let service = makeService { continuation.yield($0) }
        let running = Task { try await service.run() }
        defer { running.cancel() }
        var bound: HTTPAddress?
        for await address in addresses {
            bound = address
            break
        }
        guard let bound else {
            // The server ended before it listened: its error says why.
            try await running.value
            throw MonitorError.cannotListen(address, reason: "the server stopped before it listened")
        }
        return try await body(bound)
    }

    static func text(_ body: String, status: HTTPResponse.Status = .ok, type: String) -> Response {
        Response(status: status, headers: [.contentType: type, .cacheControl: "no-store"], body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// A catalogue that cannot be read is still an answer: `ccat_database_up 0`, and this
    /// daemon's own figures.
    func metrics() async throws -> Response {
        var snapshot: MonitoringSnapshot?
        do {
            snapshot = try await reader.read { try await MonitoringSnapshot.read($0) }
        } catch {
            logger.warning("/metrics cannot read the ops database", metadata: ["error": "\(error)"])
        }
        return Self.text(MetricsExposition.render(snapshot, leadership: leadership.snapshot, live: live),
                         type: "text/plain; version=0.0.4; charset=utf-8")
    }

    /// What /healthz answers: 200 while the database answers, 503 when it does not; says which
    /// services this daemon leads and which it waits for as standby.
    struct Health: Codable {
        var status: String
        var database: String
        var role: String
        var leading: [String]
        var standby: [String]
        var error: String?
    }

    func health() async throws -> Response {
        let roles = leadership.snapshot
        var health = Health(status: "ok", database: "reachable", role: roles.values.contains(true) ? "leader" : roles.isEmpty ? "starting" : "standby",
                            leading: roles.filter(\.value).keys.sorted(), standby: roles.filter { !$0.value }.keys.sorted())
        do {
            try await reader.read { try await $0.ping() }
        } catch {
            health.status = "unavailable"
            health.database = "unreachable"
            health.error = "\(error)"
        }
        let body = String(decoding: try JSONDocument.encoder().encode(health), as: UTF8.self) + "\n"
        return Self.text(body, status: health.database == "reachable" ? .ok : .serviceUnavailable, type: "application/json")
    }

    struct Failure: Codable {
        var error: String
    }

    func statusDocument() async throws -> Response {
        do {
            let status = try await reader.read { try await $0.pipelineStatus() }
            return Self.text(String(decoding: try JSONDocument.encoder().encode(status), as: UTF8.self) + "\n", type: "application/json")
        } catch {
            let body = String(decoding: try JSONDocument.encoder().encode(Failure(error: "cannot read the ops database: \(error)")), as: UTF8.self)
            return Self.text(body + "\n", status: .serviceUnavailable, type: "application/json")
        }
    }

    func page() async throws -> Response {
        do {
            let (snapshot, hours, requests) = try await reader.read { db in
                (try await MonitoringSnapshot.read(db), try await db.linkHours(), try await db.recentStagingRequests(limit: 20))
            }
            let page = StatusPage(snapshot: snapshot, hours: hours, requests: requests, leadership: leadership.snapshot,
                                  refreshSeconds: refreshSeconds, generatedAt: Date())
            return Self.text(page.render(), type: "text/html; charset=utf-8")
        } catch {
            logger.warning("the status page cannot read the ops database", metadata: ["error": "\(error)"])
            return Self.text(StatusPage.unavailable(error: "\(error)", refreshSeconds: refreshSeconds), status: .serviceUnavailable,
                             type: "text/html; charset=utf-8")
        }
    }
}

/// The HTTP side's own database session, opened on first use and opened again after a failure.
actor CatalogueReader {
    let conninfo: String
    let logger: Logger
    private var connection: PostgresConnection?

    init(conninfo: String, logger: Logger) {
        self.conninfo = conninfo
        self.logger = logger
    }

    func read<T: Sendable>(_ body: (OpsDB) async throws -> T) async throws -> T {
        let connection: PostgresConnection
        if let open = self.connection {
            connection = open
        } else {
            connection = try await PostgresConnection.connect(
                PostgresConfiguration(conninfo: conninfo, applicationName: "ccat daemon http", reconnectAttempts: 1), logger: logger)
            self.connection = connection
        }
        do {
            return try await body(OpsDB(connection))
        } catch {
            if self.connection === connection {
                self.connection = nil
                await connection.close()
            }
            throw error
        }
    }
}
