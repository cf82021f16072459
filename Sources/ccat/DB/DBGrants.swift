import ArgumentParser
import CCatCLI
import OpsDB

struct DBGrants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants",
        abstract: "Show what each of ccat's group roles may do in the ops database, as PostgreSQL enforces it.",
        discussion: """
            Read from the server's catalogues: table and column privileges, the row-level security \
            policies that name the role, the functions it may execute, and the roles it is a member of. \
            Give hosts logins in these group roles (docs/deployment.md says which host gets which).
            """
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "Only this group role (\(RoleGrants.groupRoles.joined(separator: ", "))).")
    var role: String?

    func validate() throws {
        if let role, !RoleGrants.groupRoles.contains(role) {
            throw ValidationError("'\(role)' is not one of ccat's group roles: \(RoleGrants.groupRoles.joined(separator: ", "))")
        }
    }

    func run() async throws {
        let logger = options.makeLogger(label: "ccat.db")
        try await options.withDatabase(applicationName: "ccat db grants", logger: logger) { db, _ in
            let grants = try await RoleGrants.load(db).filter { role == nil || $0.role == role }
            if options.json {
                try printJSON(grants)
            } else {
                print(grants.render())
            }
        }
    }
}
