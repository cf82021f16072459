import Foundation
import Mustache
import OpsDB
import Processes

/// Templates are rendered with this content type: `{{value}}` is shell-quoted, `{{{value}}}` is
/// inserted as it is (only for text the renderer built and checked, like the #SBATCH lines).
struct ShellContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { shellQuote(text) }
}

/// What a job script is rendered from.
public struct JobScriptContext: Sendable {
    public var batchJobID: Int64
    public var queue: String
    /// The short name of the queue's site and the name of its location (`{{site}}`,
    /// `{{location}}`): a site's `setup.mustache` override can pick the host or environment by them.
    public var site: String
    public var location: String
    public var operation: OperationType
    public var scheduler: BatchSchedulerKind
    public var directives: SbatchDirectives
    /// Absolute path of `ccat-runner` on the compute nodes.
    public var runnerPath: String
    /// Variables exported before the runner starts (names must be shell identifiers).
    public var environment: [(name: String, value: String)]

    public init(batchJobID: Int64, queue: String, site: String = "", location: String = "", operation: OperationType,
                scheduler: BatchSchedulerKind, directives: SbatchDirectives, runnerPath: String,
                environment: [(name: String, value: String)]) {
        self.batchJobID = batchJobID
        self.queue = queue
        self.site = site
        self.location = location
        self.operation = operation
        self.scheduler = scheduler
        self.directives = directives
        self.runnerPath = runnerPath
        self.environment = environment
    }
}

/// Renders job scripts from `jobscripts/*.mustache`.
///
/// Templates: `<operation>.sh.mustache` (e.g. `staging.sh.mustache`) if present, else
/// `default.sh.mustache`; partials such as `{{> setup}}` come from `setup.mustache`. A template in the
/// admin's override directory replaces the built-in one of the same name, so a site can add
/// `module load` lines by overriding `setup.mustache` alone.
public struct JobScriptRenderer: Sendable {
    public let library: MustacheLibrary
    /// Where each template came from, for the comment in rendered scripts and for `--help` output.
    public let sources: [String: String]

    public init(builtinDirectory: String, overrideDirectory: String? = nil) throws {
        MustacheContentTypes.register(ShellContentType(), named: "SHELL")
        var library = MustacheLibrary()
        var sources: [String: String] = [:]
        for directory in [builtinDirectory] + (overrideDirectory.map { [$0] } ?? []) {
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
                throw JobScriptError(description: "job script template directory \(directory) cannot be read")
            }
            for file in files.sorted() where file.hasSuffix(".mustache") {
                let path = "\(directory)/\(file)"
                let name = String(file.dropLast(".mustache".count))
                let text = try String(contentsOfFile: path, encoding: .utf8)
                do {
                    // The pragma makes {{value}} shell-quoted in every template, built-in or not.
                    library.register(try MustacheTemplate(string: "{{% CONTENT_TYPE: SHELL}}" + text), named: name)
                } catch {
                    throw JobScriptError(description: "job script template \(path) does not parse: \(error)")
                }
                sources[name] = path
            }
        }
        guard sources["default.sh"] != nil else {
            throw JobScriptError(description: "no default.sh.mustache in \(builtinDirectory)\(overrideDirectory.map { " or \($0)" } ?? "")")
        }
        self.library = library
        self.sources = sources
    }

    /// Finds the built-in templates: `$CCAT_JOBSCRIPTS`, then `PREFIX/share/ccat/jobscripts` of
    /// the installation the executable belongs to, then the nearest `jobscripts/` above the
    /// executable (a build tree: `.build/<triple>/<configuration>/ccat` below the checkout).
    public static func locateBuiltinDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let explicit = environment["CCAT_JOBSCRIPTS"], !explicit.isEmpty { return explicit }
        var candidates = [Installation.shareDirectory.appendingPathComponent("jobscripts")]
        var directory = Installation.executableDirectory.standardizedFileURL
        while directory.path != "/" {
            candidates.append(directory.appendingPathComponent("jobscripts"))
            directory.deleteLastPathComponent()
        }
        let template = "default.sh.mustache"
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.appendingPathComponent(template).path) }) else {
            throw JobScriptError(description: "cannot find the job script templates (\(template)) in \(candidates[0].path) or a jobscripts/ directory above \(Installation.executableDirectory.path); pass --jobscripts DIR, set CCAT_JOBSCRIPTS, or reinstall ccat ('make install' puts them in PREFIX/share/ccat/jobscripts)")
        }
        return found.path
    }

    public func templateName(for operation: OperationType) -> String {
        let specific = "\(operation.queueSuffix).sh"
        return sources[specific] != nil ? specific : "default.sh"
    }

    public func render(_ context: JobScriptContext) throws -> String {
        for variable in context.environment where variable.name.wholeMatch(of: /[A-Za-z_][A-Za-z0-9_]*/) == nil {
            throw JobScriptError(description: "environment variable name '\(variable.name)' is not a shell identifier")
        }
        let name = templateName(for: context.operation)
        let values: [String: Any] = [
            "sbatch_directives": context.directives.lines,
            "batch_job_id": String(context.batchJobID),
            "queue": context.queue,
            "site": context.site,
            "location": context.location,
            "operation": context.operation.rawValue,
            "scheduler": context.scheduler.rawValue,
            "runner": context.runnerPath,
            "template": sources[name] ?? name,
            "environment": context.environment.map { ["name": $0.name, "value": $0.value] },
        ]
        guard let script = library.render(values, withTemplate: name) else {
            throw JobScriptError(description: "template \(name) is missing")
        }
        return script
    }
}
