#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import ToolgateUpstream

/// The stdio upstream's process handling against real processes: lines both ways, a program that cannot start,
/// the stop sequence, and the guardian that ends the whole process group when toolgate goes.
@Suite struct ChildProcessTests {
    static let environment = ["PATH": "/usr/bin:/bin"]

    /// Whether any live process is in process group `pgid`.
    static func groupAlive(_ pgid: Int32) -> Bool {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return false }
        for entry in entries where Int32(entry) != nil {
            guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.range(of: ") ", options: .backwards)
            else { continue }
            let fields = stat[close.upperBound...].split(separator: " ")
            if fields.count > 2, fields[0] != "Z", Int32(fields[2]) == pgid { return true }
        }
        return false
    }

    static func waitUntil(_ timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test func linesGoBothWays() async throws {
        let child = try ChildProcess.launch(["/bin/sh", "-c", "while read line; do echo \"got $line\"; echo err >&2; done"], environment: Self.environment)
        try child.write(line: Array("one".utf8))
        try child.write(line: Array("two".utf8))
        var iterator = child.outputLines.makeAsyncIterator()
        #expect(await iterator.next() == Array("got one".utf8))
        #expect(await iterator.next() == Array("got two".utf8))
        var errors = child.errorLines.makeAsyncIterator()
        #expect(await errors.next() == Array("err".utf8))
        await child.stop(grace: .seconds(2))
        #expect(child.hasExited)
        #expect(ChildProcess.describe(status: child.exitStatus!) == "exited with status 0", "stdin closed: the loop ends")
    }

    @Test func aProgramThatDoesNotExistIsAnErrorAtOnce() {
        #expect {
            _ = try ChildProcess.launch(["/nonexistent/program"], environment: Self.environment)
        } throws: { error in
            (error as? ChildProcess.LaunchError)?.description == "cannot start /nonexistent/program: No such file or directory"
        }
    }

    @Test func onlyTheGivenEnvironmentReachesTheProgram() async throws {
        setenv("TOOLGATE_TEST_SECRET", "leaked", 1)
        let child = try ChildProcess.launch(["/bin/sh", "-c", "echo \"[$TOOLGATE_TEST_SECRET][$GIVEN]\""], environment: Self.environment.merging(["GIVEN": "yes"]) { $1 })
        var iterator = child.outputLines.makeAsyncIterator()
        #expect(await iterator.next() == Array("[][yes]".utf8))
        await child.stop(grace: .seconds(1))
    }

    @Test func aProgramThatIgnoresSIGTERMIsKilled() async throws {
        let child = try ChildProcess.launch(["/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"], environment: Self.environment)
        var iterator = child.outputLines.makeAsyncIterator()
        #expect(await iterator.next() == Array("ready".utf8))
        await child.stop(grace: .milliseconds(300))
        #expect(child.hasExited)
        #expect(ChildProcess.describe(status: child.exitStatus!) == "killed by signal 9")
        #expect(await Self.waitUntil(.seconds(5)) { !Self.groupAlive(child.pid) }, "its sleep went with it")
    }

    /// What happens when toolgate dies, even by SIGKILL: the guardian's pipe closes, and it ends the program's
    /// whole process group, children included (an `npx` and its `node`).
    @Test func theGuardianEndsTheWholeGroupWhenItsPipeCloses() async throws {
        let child = try ChildProcess.launch(
            ["/bin/sh", "-c", "sleep 300 & sleep 300 & echo ready; wait"], environment: Self.environment)
        var iterator = child.outputLines.makeAsyncIterator()
        #expect(await iterator.next() == Array("ready".utf8))
        #expect(Self.groupAlive(child.pid))
        child.releaseGuardian()
        #expect(await Self.waitUntil(.seconds(10)) { !Self.groupAlive(child.pid) })
        #expect(await child.waitForExit(timeout: .seconds(5)))
    }

    @Test func anOverlongLineIsCutNotBuffered() async throws {
        let child = try ChildProcess.launch(
            ["/bin/sh", "-c", "head -c 200000 /dev/zero | tr '\\\\0' a; echo; echo next"], environment: Self.environment,
            maximumLineBytes: 1000)
        var iterator = child.outputLines.makeAsyncIterator()
        #expect(await iterator.next()?.count == 1000)
        #expect(await iterator.next() == Array("next".utf8))
        await child.stop(grace: .seconds(1))
    }
}
