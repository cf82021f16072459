import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where `ccat daemon --http` listens: `PORT` (loopback), `HOST:PORT` or `[IPv6]:PORT`.
public struct HTTPAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses the option's or the configuration file's value; a bare port means loopback.
    public init(parsing text: String) throws(MonitorError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var host = "127.0.0.1", portText = trimmed
        if trimmed.hasPrefix("["), let close = trimmed.firstIndex(of: "]") {
            host = String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
            let rest = trimmed[trimmed.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .badAddress(text) }
            portText = String(rest.dropFirst())
        } else if let colon = trimmed.lastIndex(of: ":") {
            host = String(trimmed[..<colon])
            portText = String(trimmed[trimmed.index(after: colon)...])
            if host.isEmpty { host = "127.0.0.1" }
            if host.contains(":") { throw .badAddress(text) }
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else { throw .badAddress(text) }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The address as a browser or `curl` would use it.
    public var url: String { "http://\(description)/" }

    /// Fails with the address and the system's reason when nothing could listen there (taken,
    /// not an address of this host, a privileged port): said before any service starts.
    public func checkAvailable() throws(MonitorError) {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &found)
        guard resolved == 0, let info = found else {
            throw .cannotListen(self, reason: String(cString: gai_strerror(resolved)))
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { throw .cannotListen(self, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 1) == 0 else {
            throw .cannotListen(self, reason: String(cString: strerror(errno)))
        }
    }
}

/// Why the daemon's HTTP side could not do what it was asked.
public enum MonitorError: Error, Sendable, CustomStringConvertible, Equatable {
    case badAddress(String)
    case cannotListen(HTTPAddress, reason: String)

    public var description: String {
        switch self {
        case .badAddress(let text):
            return "'\(text)' is not an address to listen on: give PORT (loopback), HOST:PORT or [IPv6]:PORT, e.g. 127.0.0.1:9464"
        case .cannotListen(let address, let reason):
            return "cannot listen on \(address) for the status page and /metrics: \(reason)"
                + (reason.lowercased().contains("in use") ? " (another process has port \(address.port): stop it, or choose another with --http or 'http:' in the config file)" : "")
        }
    }
}
