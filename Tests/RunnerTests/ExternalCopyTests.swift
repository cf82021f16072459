import Foundation
import OpsDB
import Testing
@testable import Runner

/// The command lines of rsync and bbcp (pure logic; the copies themselves run in PipelineTests).
@Suite("rsync and bbcp command lines")
struct ExternalCopyArgumentTests {
    func copy(_ method: TransferMethod, remote: Bool) throws -> ExternalCopy {
        ExternalCopy(method: method, source: "/buffer/bundles/b.tar", target: remote ? "dtn.example:/lta/bundles/b.tar" : "/lta/bundles/b.tar",
                     log: try OperationLog(path: "/dev/null"), stop: StopSignal(), remote: remote)
    }

    @Test func localCopiesNameOnlyTheTwoPaths() throws {
        #expect(try copy(.rsync, remote: false).arguments(sshOptions: ["-o", "BatchMode=yes"]) ==
                ["--partial", "--partial-dir=.ccat-rsync-partial", "--times", "--", "/buffer/bundles/b.tar", "/lta/bundles/b.tar"])
        #expect(try copy(.bbcp, remote: false).arguments(sshOptions: ["-o", "BatchMode=yes"]) ==
                ["-f", "-P", "10", "/buffer/bundles/b.tar", "/lta/bundles/b.tar"])
    }

    @Test func remoteRsyncGetsTheQuotedSSHCommand() throws {
        let arguments = try copy(.rsync, remote: true).arguments(sshOptions: ["-F", "/etc/ccat/ssh config", "-o", "BatchMode=yes"])
        #expect(arguments == ["--partial", "--partial-dir=.ccat-rsync-partial", "--times", "--mkpath",
                              "-e", "'ssh' '-F' '/etc/ccat/ssh config' '-o' 'BatchMode=yes'", "--", "/buffer/bundles/b.tar", "dtn.example:/lta/bundles/b.tar"])
    }

    @Test func remoteBBCPStartsTheTargetThroughSSH() throws {
        let arguments = try copy(.bbcp, remote: true).arguments(sshOptions: ["-F", "/etc/ccat/ssh_config", "-o", "BatchMode=yes"],
                                                               remoteBBCP: "/opt/bbcp/bin/bbcp")
        #expect(arguments == ["-f", "-P", "10", "-z", "-T", "ssh -x -a -F /etc/ccat/ssh_config -o BatchMode=yes %H /opt/bbcp/bin/bbcp",
                              "/buffer/bundles/b.tar", "dtn.example:/lta/bundles/b.tar"])
        // bbcp splits -T on blanks: a path with one would silently become two words.
        let error = #expect(throws: UnsupportedOperation.self) {
            try copy(.bbcp, remote: true).arguments(sshOptions: ["-F", "/etc/ccat/ssh config"], remoteBBCP: "bbcp")
        }
        #expect(error?.description.contains("'/etc/ccat/ssh config'") == true)
    }
}

/// What counts as the link being down (outage-like: no attempt spent within the grace) and what as
/// a problem of keys or configuration, which counts at once.
@Suite("Unreachable peers")
struct LinkUnreachableTests {
    @Test func sshNetworkFailuresAreOutagesAndKeyProblemsAreNot() {
        for outage in ["ssh: connect to host 10.77.0.20 port 22: No route to host", "ssh: connect to host dtn port 22: Connection timed out",
                       "Connection closed by 10.77.0.20 port 22", "Timeout, server dtn not responding.",
                       "ssh: connect to host dtn port 22: Connection refused"] {
            #expect(LinkUnreachable.isNetworkFailure(outage), "\(outage)")
        }
        for configuration in ["root@dtn: Permission denied (publickey).", "Host key verification failed.",
                              "ssh: Could not resolve hostname dtn-typo: Name or service not known"] {
            #expect(!LinkUnreachable.isNetworkFailure(configuration), "\(configuration)")
        }
        #expect(LinkUnreachable.rsyncNetworkStatuses.isSuperset(of: [12, 255]) && !LinkUnreachable.rsyncNetworkStatuses.contains(23))
    }
}
