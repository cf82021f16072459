import Postgres

/// What each of the system's group roles may do in the ops database, read from PostgreSQL's own
/// catalogues (so it is what the server enforces, not what a document says): table and column
/// privileges, the row-level security policies that name the role, the functions it may execute
/// and the group roles it belongs to. `ccat db grants` prints it; the deployment guide quotes it.
public struct RoleGrants: Codable, Sendable, Equatable {
    /// The group roles migrations create, in the order the guide lists them.
    public static let groupRoles = ["ccat_daemon", "ccat_admin", "ccat_runner", "ccat_instrument", "ccat_scientist", "ccat_staging_admin"]

    public struct TableGrant: Codable, Sendable, Equatable {
        public var table: String
        public var privileges: [String]
        /// Empty: the privileges hold for the whole table; else only for these columns.
        public var columns: [String]
    }

    public struct Policy: Codable, Sendable, Equatable {
        public var table: String
        public var name: String
        public var command: String
    }

    public var role: String
    public var memberOf: [String]
    public var tables: [TableGrant]
    public var policies: [Policy]
    public var functions: [String]

    public static func load(_ db: PostgresConnection) async throws -> [RoleGrants] {
        let roles = groupRoles
        var report = Dictionary(uniqueKeysWithValues: roles.map { ($0, RoleGrants(role: $0, memberOf: [], tables: [], policies: [], functions: [])) })
        // The list is constant; each query takes it as one text bound as an array.
        let list = "{" + roles.joined(separator: ",") + "}"
        for row in try await db.query("""
            SELECT m.rolname AS role, g.rolname AS grp FROM pg_auth_members a
            JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid
            WHERE m.rolname = ANY(\(list)::text[]) ORDER BY 1, 2
            """) {
            let role: String = try row["role"]
            report[role]?.memberOf.append(try row["grp"])
        }
        for row in try await db.query("""
            SELECT grantee AS role, table_name AS tbl, string_agg(privilege_type, ',' ORDER BY privilege_type) AS privileges
            FROM information_schema.table_privileges
            WHERE table_schema = current_schema() AND grantee = ANY(\(list)::text[])
            GROUP BY 1, 2 ORDER BY 1, 2
            """) {
            let role: String = try row["role"], privileges: String = try row["privileges"]
            report[role]?.tables.append(TableGrant(table: try row["tbl"], privileges: privileges.split(separator: ",").map(String.init), columns: []))
        }
        // Column privileges the table-wide ones do not already cover.
        for row in try await db.query("""
            SELECT c.grantee AS role, c.table_name AS tbl, c.privilege_type AS privilege,
                   string_agg(c.column_name, ',' ORDER BY c.column_name) AS columns
            FROM information_schema.column_privileges c
            WHERE c.table_schema = current_schema() AND c.grantee = ANY(\(list)::text[])
              AND NOT EXISTS (SELECT 1 FROM information_schema.table_privileges t
                              WHERE t.grantee = c.grantee AND t.table_schema = c.table_schema
                                AND t.table_name = c.table_name AND t.privilege_type = c.privilege_type)
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """) {
            let role: String = try row["role"], columns: String = try row["columns"]
            report[role]?.tables.append(TableGrant(table: try row["tbl"], privileges: [try row["privilege"]],
                                                   columns: columns.split(separator: ",").map(String.init)))
        }
        for row in try await db.query("""
            SELECT r.role, p.tablename AS tbl, p.policyname AS name, p.cmd AS command
            FROM pg_policies p CROSS JOIN LATERAL unnest(p.roles) AS r(role)
            WHERE p.schemaname = current_schema() AND r.role = ANY(\(list)::text[])
            ORDER BY 1, 2, 3
            """) {
            let role: String = try row["role"]
            report[role]?.policies.append(Policy(table: try row["tbl"], name: try row["name"], command: try row["command"]))
        }
        for row in try await db.query("""
            SELECT DISTINCT grantee AS role, routine_name AS name FROM information_schema.role_routine_grants
            WHERE routine_schema = current_schema() AND grantee = ANY(\(list)::text[]) AND privilege_type = 'EXECUTE'
            ORDER BY 1, 2
            """) {
            let role: String = try row["role"]
            report[role]?.functions.append(try row["name"])
        }
        return roles.compactMap { report[$0] }.map { grants in
            var sorted = grants
            sorted.tables.sort {
                ($0.table, $0.columns.isEmpty ? 0 : 1, $0.privileges.joined(separator: ",")) < ($1.table, $1.columns.isEmpty ? 0 : 1, $1.privileges.joined(separator: ","))
            }
            return sorted
        }
    }

    /// Plain text, one block per role: stable, so a document can quote it and a test compare.
    public func render() -> String {
        var lines = ["\(role)" + (memberOf.isEmpty ? "" : " (member of \(memberOf.joined(separator: ", ")))")]
        // Tables with the same whole-table privileges on one line.
        var wholeTable: [[String]: [String]] = [:]
        for grant in tables where grant.columns.isEmpty { wholeTable[grant.privileges, default: []].append(grant.table) }
        for (privileges, names) in wholeTable.sorted(by: { $0.key.joined() < $1.key.joined() }) {
            lines.append("  \(privileges.joined(separator: ", ")) on \(names.joined(separator: ", "))")
        }
        for grant in tables where !grant.columns.isEmpty {
            lines.append("  \(grant.privileges.joined(separator: ", ")) on \(grant.table) (\(grant.columns.joined(separator: ", ")))")
        }
        for policy in policies {
            lines.append("  row policy \(policy.name) on \(policy.table) for \(policy.command)")
        }
        if !functions.isEmpty { lines.append("  EXECUTE \(functions.joined(separator: ", "))") }
        if lines.count == 1 { lines.append("  nothing in this database") }
        return lines.joined(separator: "\n")
    }
}

extension Array where Element == RoleGrants {
    public func render() -> String { map { $0.render() }.joined(separator: "\n\n") }
}
