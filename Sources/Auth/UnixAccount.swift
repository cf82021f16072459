import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The unix account behind a uid, and its groups, as this host's name service knows them.
public struct UnixAccount: Sendable, Equatable {
    public var name: String
    public var groups: [String]

    public static func lookup(uid: UInt32, gid: UInt32) -> UnixAccount? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let namePointer = entry.pw_name else { return nil }
        let name = String(cString: namePointer)
        var count: Int32 = 64
        var gids = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(namePointer, gid, &gids, &count) < 0 {
            gids = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(namePointer, gid, &gids, &count)
        }
        var groups: [String] = []
        for groupID in gids.prefix(Int(max(count, 0))) + [gid] {
            var group = Glibc.group()
            var groupResult: UnsafeMutablePointer<Glibc.group>?
            var groupBuffer = [CChar](repeating: 0, count: 16384)
            if getgrgid_r(groupID, &group, &groupBuffer, groupBuffer.count, &groupResult) == 0, groupResult != nil, let groupName = group.gr_name {
                let text = String(cString: groupName)
                if !groups.contains(text) { groups.append(text) }
            }
        }
        return UnixAccount(name: name, groups: groups.sorted())
    }
}
