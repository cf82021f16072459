import Synchronization

/// Which of this daemon's services lead now and which wait as standby, for /healthz; each
/// `ManagerService` writes its own entry.
public final class LeadershipBoard: Sendable {
    private let roles = Mutex<[String: Bool]>([:])

    public init() {}

    func set(_ service: String, leader: Bool) {
        roles.withLock { $0[service] = leader }
    }

    /// Service name -> leads now; a service that has not connected yet is absent.
    public var snapshot: [String: Bool] { roles.withLock { $0 } }
}
