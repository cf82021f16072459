/// How a batch job's runner proves which job it runs (see `RunnerSecret` in Scheduling, which
/// makes the secret): the job's environment carries it in `variable`, and a runner connecting with
/// a role in `ccat_runner` presents it as the session setting `setting`. The database keeps only
/// its SHA-256 (`batch_job.runner_secret_digest`) and honours it while the job lives.
public enum JobSecret {
    public static let variable = "CCAT_JOB_SECRET"
    public static let setting = "ccat.job_secret"

    /// 64 lowercase hex digits, as the daemon makes them: anything else is refused before it
    /// reaches a connection's options.
    public static func isWellFormed(_ value: String) -> Bool {
        value.utf8.count == 64 && value.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}
