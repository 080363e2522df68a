#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
import ToolgateCore
@testable import ToolgateUpstream

/// `--upstream-isolation session` against real processes, with the idle clock injected: a session's process is
/// stopped after the idle limit without a request, and not before (no ten-minute sleep).
@Suite struct StdioUpstreamTransportTests {
    /// A stdio MCP server in a few lines of standard Python: answers `initialize`, and `tools/call` with its pid.
    static let server = """
        python3 -u -c '
        import json, os, sys
        for line in sys.stdin:
            m = json.loads(line)
            if "id" not in m or "method" not in m: continue
            r = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "t", "version": "1"}} \\
                if m["method"] == "initialize" else {"content": [{"type": "text", "text": str(os.getpid())}]}
            print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}), flush=True)
        '
        """

    final class ManualClock: Sendable {
        private let now = Mutex(ContinuousClock.now)
        func read() -> ContinuousClock.Instant { now.withLock { $0 } }
        func advance(_ by: Duration) { now.withLock { $0 += by } }
    }

    static func post(_ transport: StdioUpstreamTransport, _ body: String, session: String? = nil) async throws -> (UpstreamResponse, String) {
        var headers = [HTTPHeader("Content-Type", "application/json")]
        if let session { headers.append(HTTPHeader("Mcp-Session-Id", session)) }
        let response = try await transport.send(
            UpstreamRequest(method: .post, url: "stdio", headers: headers, body: Array(body.utf8), grant: "g"))
        var bytes: [UInt8] = []
        while let chunk = try await response.body.next() { bytes += chunk }
        return (response, String(decoding: bytes, as: UTF8.self))
    }

    static func alive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.range(of: ") ", options: .backwards)
        else { return false }
        return stat[close.upperBound...].first != "Z"
    }

    /// Issue 23: a program that never answers `initialize` is stopped by toolgate's start timeout; the error says so,
    /// and which flag sets it, rather than how toolgate's own SIGTERM ended it ("killed by signal 15").
    @Test func aProgramThatNeverAnswersIsNamedAsToolgatesStartTimeout() async throws {
        let transport = StdioUpstreamTransport(
            configuration: .init(
                command: "exec sleep 600", environment: ["PATH": "/usr/bin:/bin"], shutdownGrace: .milliseconds(200),
                initializeTimeout: .milliseconds(500)))
        let failure = try await #require(throws: StdioUpstreamFailure.self) { try await transport.start() }
        #expect(
            failure.message
                == "the upstream command (exec sleep 600) did not answer initialize within 0.5 s, toolgate's start timeout (--upstream-start-timeout), so toolgate stopped it",
            "\(failure.message)")
        await transport.stop()
        let died = StdioUpstreamTransport(configuration: .init(command: "echo gone >&2; exit 3", environment: ["PATH": "/usr/bin:/bin"]))
        let death = try await #require(throws: StdioUpstreamFailure.self) { try await died.start() }
        #expect(death.message == "the upstream command (echo gone >&2; exit 3) exited with status 3 before answering initialize; its stderr: gone")
        await died.stop()
    }

    @Test func aSessionsProcessIsStoppedAfterTheIdleLimitAndNotBefore() async throws {
        let clock = ManualClock()
        let transport = StdioUpstreamTransport(
            configuration: .init(
                command: Self.server, environment: ["PATH": "/usr/bin:/bin"], shutdownGrace: .milliseconds(500),
                isolation: .session, maximumProcesses: 4, sessionIdleLimit: .seconds(600)),
            clock: { clock.read() })
        let (initialized, _) = try await Self.post(
            transport, #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#)
        let session = try #require(initialized.header("mcp-session-id"))
        let (_, answer) = try await Self.post(
            transport, #"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami"}}"#, session: session)
        let pid = try #require(answer.split(separator: "\"").compactMap { Int32($0) }.first, "a pid in \(answer)")
        #expect(Self.alive(pid) && transport.processCount == 1)

        clock.advance(.seconds(599))
        await transport.reapIdle()
        #expect(Self.alive(pid) && transport.processCount == 1, "not idle long enough")

        clock.advance(.seconds(1))
        await transport.reapIdle()
        #expect(transport.processCount == 0)
        let deadline = ContinuousClock.now + .seconds(10)
        while Self.alive(pid), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!Self.alive(pid), "stopped after ten idle minutes")
        let (gone, _) = try await Self.post(
            transport, #"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami"}}"#, session: session)
        #expect(gone.status == 404, "its session is gone with it")
        await transport.stop()
    }
}
