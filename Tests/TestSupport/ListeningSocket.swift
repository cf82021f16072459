import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A TCP socket listening on loopback (a port of the kernel's choice unless given): to hold a
/// port, or to learn one that is free.
public struct ListeningSocket: Sendable {
    public let fd: Int32
    public let port: Int

    public init(port: Int = 0) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSetupError(description: "socket: \(String(cString: strerror(errno)))") }
        // SO_REUSEADDR: a port whose last connections linger in TIME_WAIT counts as free; a port
        // something listens on does not (Linux refuses two listeners either way).
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let descriptor = fd
        let listening = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && listen(descriptor, 8) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard listening else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw TestSetupError(description: "cannot listen on 127.0.0.1:\(port): \(reason)")
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    public func close() { Glibc.close(fd) }
}
