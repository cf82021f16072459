import CLibPQ
import Dispatch
import Foundation
import Logging

/// One connection to PostgreSQL over libpq.
///
/// Every libpq call runs on this connection's own serial dispatch queue, never on Swift's
/// cooperative thread pool, so a slow query or a wait for notifications blocks nothing else.
/// A connection runs one command at a time; give each concurrent task its own connection.
///
/// A connection that broke is re-established before the next command (and its `LISTEN`s renewed).
/// A command that was in flight when it broke fails with `.connectionLost`: its outcome is unknown.
public final class PostgresConnection: @unchecked Sendable {
    public let configuration: PostgresConfiguration
    public let logger: Logger

    private let queue: DispatchQueue
    // State below is only touched on `queue`.
    private var handle: OpaquePointer?
    private var channels: Set<String> = []
    private var closed = false
    private var everConnected = false
    /// Set from BEGIN until COMMIT/ROLLBACK: a connection that breaks meanwhile is not silently
    /// replaced, so the rest of the transaction cannot autocommit on a new session.
    var transactionOpen = false
    /// Receives server notices; retained by every result, because libpq hands a result's notice
    /// hooks to it (and may call them) after the connection is gone.
    let notices: NoticeContext
    private var cancelHandle: OpaquePointer?

    private init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.queue = DispatchQueue(label: "ccat.postgres.connection")
        self.notices = NoticeContext(logger: logger)
    }

    deinit {
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        if let handle { PQfinish(handle) }
    }

    /// Opens a connection; throws `.connectionFailed` with one line naming what failed.
    public static func connect(_ configuration: PostgresConfiguration,
                               logger: Logger = Logger(label: "ccat.postgres")) async throws -> PostgresConnection {
        let connection = PostgresConnection(configuration: configuration, logger: logger)
        try await connection.onQueue { _ = try connection.ensureConnected() }
        return connection
    }

    // MARK: - Running commands

    /// Runs a statement and returns its rows.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        let (sql, binds) = query.render()
        return try await cancellable { cancelled in try self.run(sql: sql, binds: binds, cancelled: cancelled) }
    }

    /// Runs a statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ query: PostgresQuery) async throws -> Int {
        try await self.query(query).affectedRows
    }

    /// Runs a trusted, parameterless SQL text that may hold several statements (a migration file).
    /// Values never belong here: use `query(_:)` with interpolation for anything not written by us.
    public func executeScript(_ sql: String) async throws {
        try await cancellable { cancelled in
            let handle = try self.ensureConnected()
            let sent = PQsendQuery(handle, sql) == 1
            _ = try self.handleResult(sent ? self.awaitResult(handle, sql: "<script>", cancelled: cancelled) : nil,
                                      handle: handle, sql: "<script>", binds: [])
        }
    }

    /// Closes the connection. Later calls fail with `.misuse`.
    public func close() async {
        try? await onQueue {
            self.closed = true
            self.dropHandle()
        }
    }

    /// The server's version as an integer, e.g. 150018 for 15.18.
    public func serverVersion() async throws -> Int {
        try await onQueue { Int(PQserverVersion(try self.ensureConnected())) }
    }

    /// Where this connection goes, without the password: host (or socket directory), port, database, user.
    public func target() async throws -> ConnectionTarget {
        try await onQueue { ConnectionTarget(handle: try self.ensureConnected()) }
    }

    // MARK: - Queue plumbing

    func onQueue<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Runs `work` on the queue. If the task is cancelled while the work waits its turn, it never
    /// starts; if cancelled while it runs, `work` sees the flag set and asks the server to cancel
    /// its statement (which then fails with SQLSTATE 57014). Cancel requests are only sent from the
    /// queue while that statement is unfinished, so they never reach another call's statement.
    func cancellable<T: Sendable>(_ work: @escaping @Sendable (CancellationFlag) throws -> T) async throws -> T {
        let flag = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await onQueue {
                if flag.isSet {
                    throw PostgresError(code: .cancelled, message: "the task was cancelled before the statement was sent")
                }
                return try work(flag)
            }
        } onCancel: {
            flag.set()
        }
    }

    /// On the queue, after a statement (or a script of several) was sent: waits for its results
    /// and returns the one that tells its outcome (the first error, else the last result), clearing
    /// the others; nil if libpq produced none. While the caller is cancelled, a cancel request goes
    /// to the server at once and again every second until the last statement ends, because one
    /// that arrives before the server has started a statement is dropped by it. COPY to or from
    /// the client is ended and refused: nothing here streams COPY data.
    func awaitResult(_ handle: OpaquePointer, sql: String, cancelled: CancellationFlag) throws -> OpaquePointer? {
        var lastCancel: ContinuousClock.Instant?
        var outcome: OpaquePointer?
        var copyRefused = false
        func failed(_ result: OpaquePointer) -> Bool { [PGRES_FATAL_ERROR, PGRES_BAD_RESPONSE].contains(PQresultStatus(result)) }
        while true {
            // Wait for the next result without blocking in libpq, so cancellation is seen. A broken
            // connection ends the wait too: PQgetResult then reports the failure.
            while PQconsumeInput(handle) == 1, PQisBusy(handle) == 1 {
                if cancelled.isSet, lastCancel.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true {
                    sendCancel()
                    lastCancel = .now
                }
                var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, 100)
            }
            guard let result = PQgetResult(handle) else { break }
            switch PQresultStatus(result) {
            case PGRES_COPY_IN:
                // The server answers the refusal with an error result, read by the next turn.
                PQclear(result)
                copyRefused = true
                _ = PQputCopyEnd(handle, "COPY FROM STDIN is not supported by this client")
            case PGRES_COPY_OUT:
                PQclear(result)
                copyRefused = true
                var row: UnsafeMutablePointer<CChar>?
                while PQgetCopyData(handle, &row, 0) > 0 { PQfreemem(row) }
            case PGRES_COPY_BOTH:
                // Only replication connections get here; there is no way back but a new connection.
                PQclear(result)
                if let outcome { PQclear(outcome) }
                dropHandle()
                throw PostgresError(code: .misuse, message: "COPY BOTH (replication) is not supported; the connection was closed", query: sql)
            default:
                if let kept = outcome, failed(kept) {
                    PQclear(result)
                } else {
                    if let kept = outcome { PQclear(kept) }
                    outcome = result
                }
            }
        }
        if copyRefused {
            if let outcome { PQclear(outcome) }
            throw PostgresError(code: .misuse, message: "COPY to or from the client is not supported; use INSERT, or COPY with a file on the server",
                                query: sql)
        }
        return outcome
    }

    private func sendCancel() {
        guard let cancelHandle else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        if PQcancel(cancelHandle, &buffer, Int32(buffer.count)) == 0 {
            logger.warning("cannot cancel the running statement", metadata: ["postgres.error": "\(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))"])
        }
    }

    // MARK: - Connection management (on queue)

    func ensureConnected() throws -> OpaquePointer {
        if closed { throw PostgresError(code: .misuse, message: "the connection was closed") }
        if let handle, PQstatus(handle) == CONNECTION_OK { return handle }
        if transactionOpen {
            throw PostgresError(code: .connectionLost, message: "the connection broke inside a transaction; the server rolled it back")
        }
        let reconnecting = everConnected
        dropHandle()
        let attempts = reconnecting || configuration.waitForFirstConnection ? max(1, configuration.reconnectAttempts) : 1
        var delay = configuration.reconnectDelay
        var lastError: (any Error)?
        for attempt in 1...attempts {
            do {
                let handle = try open()
                if reconnecting {
                    logger.notice("reconnected to PostgreSQL", metadata: ["postgres.attempt": "\(attempt)"])
                }
                return handle
            } catch {
                lastError = error
                if attempt < attempts {
                    logger.warning("reconnecting to PostgreSQL failed; retrying",
                                   metadata: ["postgres.attempt": "\(attempt)", "postgres.error": "\(error)"])
                    Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
                    delay = delay * 2
                }
            }
        }
        throw lastError!
    }

    private func open() throws -> OpaquePointer {
        var keywords = ["fallback_application_name"]
        var values = [configuration.applicationName]
        let environment = ProcessInfo.processInfo.environment
        if environment["PGCONNECT_TIMEOUT"] == nil {
            keywords.append("connect_timeout"); values.append("10")
        }
        // Detect dead peers within minutes rather than the kernel's default two hours (idle), or
        // TCP's quarter of an hour of retransmissions (data unacknowledged for two minutes: the link
        // is down), so a connection across a failed WAN link errors and is reopened instead of hanging.
        keywords.append("keepalives_idle"); values.append("60")
        keywords.append("keepalives_interval"); values.append("10")
        keywords.append("keepalives_count"); values.append("6")
        keywords.append("tcp_user_timeout"); values.append("120000")
        // Last, so that anything the caller's conninfo sets overrides the defaults above.
        keywords.append("dbname"); values.append(configuration.conninfo)
        if !configuration.sessionSettings.isEmpty {
            let given = (try? PostgresConnInfo.parse(configuration.conninfo))?.first { $0.keyword == "options" }?.value
            let ours = configuration.sessionSettings.sorted { $0.key < $1.key }.map { "-c \($0.key)=\($0.value)" }
            keywords.append("options"); values.append(([given].compactMap { $0 } + ours).joined(separator: " "))
        }

        let handle: OpaquePointer? = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let handle else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = oneLine(String(cString: PQerrorMessage(handle)))
            let target = ConnectionTarget(handle: handle)
            PQfinish(handle)
            var error = PostgresError(code: .connectionFailed, message: "\(message) (\(target.summary))")
            error.hint = PostgresError.connectionHint(for: message)
            throw error
        }
        PQsetNoticeReceiver(handle, { context, result in
            guard let context, let result else { return }
            let notices = Unmanaged<NoticeContext>.fromOpaque(context).takeUnretainedValue()
            let message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) } ?? ""
            notices.logger.debug("server notice", metadata: ["postgres.notice": "\(message)"])
        }, Unmanaged.passUnretained(notices).toOpaque())

        // Fixed session settings make text-format decoding independent of server and role defaults.
        do {
            _ = try handleResult(
                PQexec(handle, "SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'; SET IntervalStyle TO 'iso_8601'; SET extra_float_digits TO 3; SET bytea_output TO 'hex'"),
                handle: handle, sql: "<session setup>", binds: [])
            for channel in channels.sorted() {
                _ = try handleResult(PQexec(handle, "LISTEN \(quoteIdentifier(channel))"), handle: handle, sql: "LISTEN", binds: [])
            }
        } catch {
            PQfinish(handle)
            throw error
        }
        self.handle = handle
        everConnected = true
        cancelHandle = PQgetCancel(handle)
        return handle
    }

    private func dropHandle() {
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        cancelHandle = nil
        if let handle { PQfinish(handle) }
        handle = nil
    }

    func addChannel(_ channel: String) { channels.insert(channel) }
    func removeChannel(_ channel: String) { channels.remove(channel) }

    var transactionStatus: PGTransactionStatusType {
        guard let handle else { return PQTRANS_UNKNOWN }
        return PQtransactionStatus(handle)
    }

    // MARK: - Statements (on queue)

    func run(sql: String, binds: [PostgresBind], cancelled: CancellationFlag = CancellationFlag()) throws -> PostgresRows {
        for (index, bind) in binds.enumerated() where bind.text?.utf8.contains(0) == true {
            throw PostgresError(code: .invalidParameter,
                                message: "parameter $\(index + 1) contains a NUL character, which PostgreSQL text cannot store",
                                query: sql)
        }
        let handle = try ensureConnected()
        let types = binds.map { Oid($0.type.rawValue) }
        let texts = binds.map(\.text)
        let sent = withOptionalCStrings(texts) { values in
            types.withUnsafeBufferPointer { typePointer in
                PQsendQueryParams(handle, sql, Int32(binds.count), typePointer.baseAddress, values, nil, nil, 0) == 1
            }
        }
        return try handleResult(sent ? awaitResult(handle, sql: sql, cancelled: cancelled) : nil, handle: handle, sql: sql, binds: binds)
    }

    func handleResult(_ result: OpaquePointer?, handle: OpaquePointer, sql: String, binds: [PostgresBind]) throws -> PostgresRows {
        guard let result else {
            let message = oneLine(String(cString: PQerrorMessage(handle)))
            if PQstatus(handle) != CONNECTION_OK {
                throw PostgresError(code: .connectionLost, message: message, query: sql)
            }
            throw PostgresError(code: .server, message: "no result from libpq: \(message)", query: sql)
        }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_SINGLE_TUPLE:
            let storage = PostgresResultStorage(result, retaining: notices)
            return PostgresRows(storage: storage, affectedRows: storage.rowCount)
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
            PQclear(result)
            return PostgresRows(storage: nil, affectedRows: affected)
        default:
            let error = serverError(result, handle: handle, sql: sql, binds: binds)
            PQclear(result)
            throw error
        }
    }

    private func serverError(_ result: OpaquePointer, handle: OpaquePointer, sql: String, binds: [PostgresBind]) -> PostgresError {
        func field(_ code: Character) -> String? {
            PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        let lost = PQstatus(handle) != CONNECTION_OK
        let primary = field("M") ?? oneLine(String(cString: PQerrorMessage(handle)))
        var error = PostgresError(code: lost ? .connectionLost : .server,
                                  message: redact(primary, binds: binds),
                                  sqlState: field("C").map(SQLState.init(rawValue:)),
                                  hint: field("H").map { redact($0, binds: binds) },
                                  query: sql)
        error.severity = field("V") ?? field("S")
        error.detail = field("D")
        error.schemaName = field("s")
        error.tableName = field("t")
        error.columnName = field("c")
        error.constraintName = field("n")
        return error
    }
}

/// Where a connection goes, without secrets.
public struct ConnectionTarget: Sendable, Codable, Equatable {
    public var host: String
    public var port: String
    public var database: String
    public var user: String

    init(handle: OpaquePointer) {
        host = PQhost(handle).map { String(cString: $0) } ?? ""
        port = PQport(handle).map { String(cString: $0) } ?? ""
        database = PQdb(handle).map { String(cString: $0) } ?? ""
        user = PQuser(handle).map { String(cString: $0) } ?? ""
    }

    public var summary: String {
        var parts: [String] = []
        if !database.isEmpty { parts.append("database \"\(database)\"") }
        if !user.isEmpty { parts.append("user \"\(user)\"") }
        if !host.isEmpty { parts.append(host.hasPrefix("/") ? "socket directory \(host)" : "host \(host)") }
        if !port.isEmpty { parts.append("port \(port)") }
        return parts.joined(separator: ", ")
    }
}

// MARK: - C string helpers

func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    withOptionalCStrings(strings.map(Optional.some), body)
}

/// Lends `strings` as a NULL-terminated array of C strings (nil entries stay NULL; one extra NULL at the end).
func withOptionalCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    defer { copies.forEach { free($0) } }
    return body(copies.map { UnsafePointer($0) } + [nil])
}

/// Holds the logger the notice receiver writes to. Connections and results keep it alive.
final class NoticeContext: @unchecked Sendable {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}
