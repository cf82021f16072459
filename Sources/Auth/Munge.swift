import CMunge
import Foundation

/// Why munge refused to encode or decode a credential.
public struct MungeError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// The credential's lifetime ran out before it was decoded.
        case expired
        /// This credential was decoded before: somebody sent it again.
        case replayed
        /// Encoded in the future by the decoding host's clock.
        case rewound
        /// Not made with this host's munge key (forged, or from another realm).
        case invalid
        /// Not a munge credential at all.
        case malformed
        /// Restricted to another user or group.
        case unauthorized
        /// munged could not be reached: a problem of this host, not of the credential.
        case unavailable
        /// Anything else munge reports.
        case other
    }

    public var kind: Kind
    public var code: Int
    public var message: String
    /// For expired and replayed credentials munge still says whose they were.
    public var uid: UInt32?
    public var gid: UInt32?
    /// For a replayed credential: everything it says (it is genuine, only not new).
    public var identity: MungeIdentity?

    /// True when the credential itself is bad (reject the request); false when munge is not
    /// available here (try again later).
    public var isCredentialProblem: Bool { kind != .unavailable && kind != .other }

    public var description: String {
        var text = "munge: \(message)"
        if let uid { text += " (credential of uid \(uid))" }
        if kind == .unavailable {
            text += "; is munged running? Start it (systemctl start munge) or point --munge-socket / CCAT_MUNGE_SOCKET at its socket"
        }
        return text
    }

    static func kind(of code: munge_err_t) -> Kind {
        switch code {
        case EMUNGE_CRED_EXPIRED: return .expired
        case EMUNGE_CRED_REPLAYED: return .replayed
        case EMUNGE_CRED_REWOUND: return .rewound
        case EMUNGE_CRED_INVALID, EMUNGE_BAD_CIPHER, EMUNGE_BAD_MAC, EMUNGE_BAD_ZIP, EMUNGE_BAD_REALM: return .invalid
        case EMUNGE_BAD_CRED, EMUNGE_BAD_VERSION, EMUNGE_BAD_LENGTH: return .malformed
        case EMUNGE_CRED_UNAUTHORIZED: return .unauthorized
        case EMUNGE_SOCKET, EMUNGE_TIMEOUT: return .unavailable
        default: return .other
        }
    }
}

/// What a decoded credential says: who made it, when, and what it carries.
public struct MungeIdentity: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var payload: Data
    public var encodedAt: Date?
}

/// Encodes and decodes munge credentials through the local munged (libmunge).
public struct Munge: Sendable {
    /// munged's socket; nil: libmunge's default (`/run/munge/munge.socket.2`).
    public var socket: String?

    public init(socket: String? = nil) {
        self.socket = socket.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The socket of `option` (a command-line option), else `CCAT_MUNGE_SOCKET`, else
    /// `configured` (the config file), else libmunge's default.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment, socket option: String? = nil,
                                       configured: String? = nil) -> Munge {
        Munge(socket: option ?? environment["CCAT_MUNGE_SOCKET"].flatMap { $0.isEmpty ? nil : $0 } ?? configured)
    }

    /// A credential for the calling process's uid and gid, carrying `payload`.
    /// `ttl`: seconds the credential stays valid; nil: the longest munged allows.
    public func encode(_ payload: Data, ttl: Int? = nil) throws -> String {
        let context = try makeContext()
        defer { munge_ctx_destroy(context) }
        try check(ccat_munge_ctx_set_int(context, Int32(MUNGE_OPT_TTL.rawValue), Int32(ttl ?? -1)), context)
        var credential: UnsafeMutablePointer<CChar>?
        let code = payload.withUnsafeBytes { bytes in
            munge_encode(&credential, context, bytes.baseAddress, Int32(bytes.count))
        }
        try check(code, context)
        guard let credential else { throw MungeError(kind: .other, code: 0, message: "munge_encode returned no credential") }
        defer { free(credential) }
        return String(cString: credential)
    }

    /// Decodes a credential: its uid, gid and payload, or why it is refused. munged remembers
    /// what it decoded, so a second decode of the same credential is `replayed`.
    public func decode(_ credential: String) throws -> MungeIdentity {
        let context = try makeContext()
        defer { munge_ctx_destroy(context) }
        var payload: UnsafeMutableRawPointer?
        var length: Int32 = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        let code = munge_decode(credential, context, &payload, &length, &uid, &gid)
        defer { if let payload { free(payload) } }
        if code != EMUNGE_SUCCESS {
            var error = self.error(code, context)
            if error.kind == .expired || error.kind == .replayed || error.kind == .rewound {
                error.uid = uid
                error.gid = gid
            }
            if error.kind == .replayed {
                error.identity = MungeIdentity(uid: uid, gid: gid, payload: payload.map { Data(bytes: $0, count: Int(length)) } ?? Data(),
                                               encodedAt: nil)
            }
            throw error
        }
        var encoded: time_t = 0
        let encodedAt = withUnsafeMutablePointer(to: &encoded) { pointer -> Date? in
            ccat_munge_ctx_get_time(context, Int32(MUNGE_OPT_ENCODE_TIME.rawValue), pointer) == EMUNGE_SUCCESS
                ? Date(timeIntervalSince1970: TimeInterval(pointer.pointee)) : nil
        }
        let data = payload.map { Data(bytes: $0, count: Int(length)) } ?? Data()
        return MungeIdentity(uid: uid, gid: gid, payload: data, encodedAt: encodedAt)
    }

    private func makeContext() throws -> OpaquePointer {
        guard let context = munge_ctx_create() else {
            throw MungeError(kind: .other, code: Int(EMUNGE_NO_MEMORY.rawValue), message: "cannot allocate a munge context")
        }
        if let socket {
            let code = ccat_munge_ctx_set_str(context, Int32(MUNGE_OPT_SOCKET.rawValue), socket)
            if code != EMUNGE_SUCCESS {
                let error = self.error(code, context)
                munge_ctx_destroy(context)
                throw error
            }
        }
        return context
    }

    private func check(_ code: munge_err_t, _ context: OpaquePointer) throws {
        if code != EMUNGE_SUCCESS { throw error(code, context) }
    }

    private func error(_ code: munge_err_t, _ context: OpaquePointer) -> MungeError {
        let detail = munge_ctx_strerror(context).map { String(cString: $0) } ?? String(cString: munge_strerror(code))
        let where_ = socket.map { " [socket \($0)]" } ?? ""
        return MungeError(kind: MungeError.kind(of: code), code: Int(code.rawValue), message: detail + where_)
    }
}
