import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MetricsTestKit
import NIOCore
import Synchronization
import Testing
import ToolgateCore
@testable import ToolgateServer

/// Issue 12 in the proxy itself: shadow mode, audit lines, drain, and metrics read back through swift-metrics'
/// test factory.
@Suite struct OperationsTests {
    typealias P = MCPProxyTests

    static let policy = #"""
        {"version":"1","default":"deny","tools":{
          "limited":{"limits":[{"counter":"limited_day","window":"day","max":1}]},
          "refused":{"action":"deny","reason":"never"},
          "checked":{"arguments":[{"path":"n","op":"lte","value":3}]},
          "approved":{"action":"approve","approval":{"wait":"10s"}}}}
        """#

    static func post(_ client: some TestClientProtocol, _ body: String) async throws -> TestResponse {
        try await client.execute(uri: "/mcp", method: .post, headers: P.jsonHeaders, body: ByteBuffer(string: body))
    }

    static func call(_ id: Int, _ name: String, _ arguments: String = "{}") -> String {
        #"{"jsonrpc":"2.0","id":\#(id),"method":"tools/call","params":{"name":"\#(name)","arguments":\#(arguments)}}"#
    }

    static func reason(_ response: TestResponse) -> String? {
        P.json(response)["result"]?["_meta"]?["toolgate/denial"]?["reason"]?.stringValue
    }

    @Test func shadowModeDeniesNothingAndCountsWhatItWouldHaveDenied() async throws {
        let upstream = FakeUpstream { request in P.okResult(request) }
        let recorded = TestMetrics()
        let store = InMemoryLimitStore(clock: SystemWallClock())
        let (app, _) = try P.app(upstream, store: store, policy: Self.policy, recorded: recorded) { $0.shadow = true }
        try await app.test(.router) { client in
            for (id, body) in [
                (1, Self.call(1, "limited")), (2, Self.call(2, "limited")), (3, Self.call(3, "refused")),
                (4, Self.call(4, "checked", #"{"n":9}"#)), (5, Self.call(5, "approved")), (6, Self.call(6, "unknown")),
            ] {
                let response = try await Self.post(client, body)
                #expect(response.status == .ok)
                #expect(P.json(response)["result"]?["content"] == [], "call \(id) was not forwarded: \(P.json(response))")
                #expect(Self.reason(response) == nil)
            }
        }
        #expect(upstream.requests.count == 6)
        func calls(_ tool: String, _ decision: String) -> Int64 {
            P.total(recorded, .toolCalls, [("tool", tool), ("decision", decision)])
        }
        #expect(calls("limited", "allowed") == 1)
        #expect(calls("limited", "shadow_denied") == 1)
        for tool in ["refused", "checked", "approved", "_other"] { #expect(calls(tool, "shadow_denied") == 1, "\(tool)") }
        // Counted all the same: the second call found the first one's use of the day's only call.
        #expect(store.keyCount == 1)
    }

    @Test func shadowModeListsEveryTool() async throws {
        let upstream = FakeUpstream { request in
            FakeUpstream.response(
                200, contentType: "application/json",
                chunks: [#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"limited"},{"name":"not_in_policy"}]}}"#])
        }
        for shadow in [false, true] {
            let (app, _) = try P.app(upstream, policy: Self.policy) { $0.shadow = shadow }
            try await app.test(.router) { client in
                let list = try await Self.post(client, #"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
                let names = P.json(list)["result"]?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
                #expect(names == (shadow ? ["limited", "not_in_policy"] : ["limited"]))
            }
        }
    }

    final class MemorySink: AuditSink, @unchecked Sendable {
        let lock = NSLock()
        var bytes: [UInt8] = []
        var reopened = 0
        /// While set, every write waits for it: a sink that cannot keep up.
        let gate = DispatchSemaphore(value: 0)
        let blocking: Bool

        init(blocking: Bool = false) { self.blocking = blocking }

        func write(_ bytes: [UInt8]) throws {
            if blocking { gate.wait() }
            lock.lock()
            self.bytes += bytes
            lock.unlock()
        }

        func reopen() throws {
            lock.lock()
            reopened += 1
            lock.unlock()
        }

        var lines: [JSONValue] {
            lock.lock()
            defer { lock.unlock() }
            return bytes.split(separator: 0x0A).compactMap { try? JSONParser.parse(Array($0)) }
        }
    }

    @Test func everyDecisionIsOneAuditLineWithoutTheArguments() async throws {
        let upstream = FakeUpstream { request in P.okResult(request) }
        let sink = MemorySink()
        let metrics = ToolgateMetrics(version: "test")
        let audit = AuditLog(sink: sink, metrics: metrics, logger: Logger(label: "test"))
        let (app, _) = try P.app(upstream, policy: Self.policy, auditLog: audit)
        let secret = "hunter2-\(UInt64.random(in: 0...UInt64.max))"
        try await app.test(.router) { client in
            _ = try await Self.post(client, Self.call(1, "limited", #"{"password":"\#(secret)"}"#))
            _ = try await Self.post(client, Self.call(2, "limited", #"{"password":"\#(secret)"}"#))
            _ = try await Self.post(client, Self.call(3, "refused"))
            _ = try await Self.post(client, "[" + Self.call(4, "checked", #"{"n":1}"#) + "," + Self.call(5, "checked", #"{"n":9}"#) + "]")
        }
        audit.close()
        let lines = sink.lines
        #expect(lines.count == 5)
        #expect(!String(decoding: sink.bytes, as: UTF8.self).contains(secret))
        let fields = [
            "time", "grant", "session", "agent", "tool", "rule", "decision", "reason", "counter", "remaining", "argumentsSha256",
            "upstreamStatus", "latencyMs", "policySha256",
        ]
        for line in lines {
            let keys = line.objectValue?.members.map(\.key) ?? []
            #expect(Set(keys).isSuperset(of: fields), "\(line)")
            #expect(line["time"]?.stringValue?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/) != nil)
            #expect(line["agent"] == "test-host" && line["grant"] == "default")
        }
        let byDecision = lines.map { ($0["tool"]?.stringValue ?? "", $0["decision"]?.stringValue ?? "") }
        #expect(byDecision.map(\.0) == ["limited", "limited", "refused", "checked", "checked"] || byDecision.count == 5)
        let first = try #require(lines.first { $0["decision"] == "allowed" && $0["tool"] == "limited" })
        #expect(first["counter"] == "limited_day" && first["remaining"] == 0 && first["upstreamStatus"] == 200)
        let limited = try #require(lines.first { $0["decision"] == "rate_limited" })
        #expect(limited["upstreamStatus"] == .null && limited["counter"] == "limited_day")
        // DESIGN.md section 8: `reason` says why in words, `detail` names what decided; neither repeats the decision.
        #expect(limited["detail"] == "limit limited_day")
        #expect(limited["reason"]?.stringValue?.hasPrefix("rate limit limited_day reached") == true)
        let refused = try #require(lines.first { $0["decision"] == "denied" && $0["tool"] == "refused" })
        #expect(refused["reason"] == "never" && refused["detail"] == "action deny" && refused["rule"] == "refused")
        let checked = try #require(lines.first { $0["decision"] == "invalid_arguments" && $0["tool"] == "checked" })
        #expect(checked["detail"] == "arguments[0]: n lte 3" && checked["reason"] == "argument n must be a number of at most 3")
        #expect(first["detail"] == .null && first["reason"] == .null)
        // Same arguments, same hash; the hash is of the canonical form.
        let hashes = lines.filter { $0["tool"] == "limited" }.map { $0["argumentsSha256"] }
        #expect(hashes.count == 2 && hashes[0] == hashes[1] && hashes[0]?.stringValue?.count == 64)
    }

    @Test func aSinkThatCannotKeepUpCostsLinesNeverCalls() async throws {
        let sink = MemorySink(blocking: true)
        let recorded = TestMetrics()
        let metrics = ToolgateMetrics(version: "test", factory: recorded)
        let audit = AuditLog(sink: sink, capacity: 10, metrics: metrics, logger: Logger(label: "test"))
        // Returning at all proves a call never waits for the sink: it stays blocked until the gate opens below.
        for i in 0..<100 { audit.record(Array("line \(i)\n".utf8)) }
        // The writer holds at most one batch while blocked; the queue holds ten; the rest were dropped.
        let dropped = P.total(recorded, .auditDropped)
        #expect(dropped >= 100 - 10 - 100 && dropped >= 80, "dropped \(dropped)")
        for _ in 0..<100 { sink.gate.signal() }
        audit.close()
        #expect(Int64(String(decoding: sink.bytes, as: UTF8.self).split(separator: "\n").count) == 100 - dropped)
    }

    @Test func reopenReachesTheSink() async throws {
        let sink = MemorySink()
        let audit = AuditLog(sink: sink, metrics: ToolgateMetrics(version: "test"), logger: Logger(label: "test"))
        audit.reopen()
        audit.record(Array("after\n".utf8))
        audit.close()
        #expect(sink.reopened == 1)
        #expect(sink.bytes == Array("after\n".utf8))
    }

    @Test func aFileSinkAppendsAndReopensAfterRotation() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tg-audit-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("audit.log").path
        let sink = try FileAuditSink(path: path)
        try sink.write(Array("one\n".utf8))
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try sink.write(Array("two\n".utf8))  // still the rotated file, as logrotate expects until told
        try sink.reopen()
        try sink.write(Array("three\n".utf8))
        #expect(try String(contentsOfFile: path + ".1", encoding: .utf8) == "one\ntwo\n")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "three\n")
        #expect(throws: FileAuditSink.Failure.self) { try FileAuditSink(path: directory.appendingPathComponent("no/such/dir").path) }
    }

    /// DESIGN.md section 2: a drain refuses only what starts new work; the rest of an agent's step is served.
    @Test func whileDrainingOnlyNewSessionsAreRefusedAndReadyzSays503() async throws {
        let upstream = FakeUpstream { request in P.okResult(request) }
        let readiness = ToolgateServer.Readiness()
        let (app, _) = try P.app(upstream, policy: Self.policy, readiness: readiness)
        try await app.test(.router) { client in
            #expect(try await Self.post(client, Self.call(1, "checked", #"{"n":1}"#)).status == .ok)
            readiness.startDraining()
            // The rest of a step: a call, a list, a session's end.
            #expect(try await Self.post(client, Self.call(2, "checked", #"{"n":1}"#)).status == .ok)
            #expect(try await Self.post(client, #"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#).status == .ok)
            var session = P.jsonHeaders
            session[HTTPField.Name("Mcp-Session-Id")!] = "s-1"
            #expect(try await client.execute(uri: "/mcp", method: .delete, headers: session).status == .ok)
            // New work: an initialize outside a session, server/discover, and a batch holding either.
            let initialize = #"{"jsonrpc":"2.0","id":4,"method":"initialize","params":{}}"#
            for body in [initialize, #"{"jsonrpc":"2.0","id":5,"method":"server/discover"}"#, "[\(Self.call(6, "checked", #"{"n":1}"#)),\(initialize)]"] {
                let refused = try await Self.post(client, body)
                #expect(refused.status == .serviceUnavailable, "\(body)")
                #expect(P.json(refused)["error"]?["code"] == -32603)
                #expect(refused.headers[.retryAfter] == "1")
            }
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .serviceUnavailable)
        }
        #expect(upstream.requests.count == 4)
    }

    @Test func aDrainWaitsForASecondWithNothingInFlightAndNotForListeningStreams() async throws {
        let inflight = InflightRequests(metrics: ToolgateMetrics(version: "test"))
        let listening = inflight.beginStream(.listening, cancel: {})
        // A GET stream is no work: quiet at once (the object was made more than `quiet` ago).
        try await Task.sleep(for: .milliseconds(30))
        #expect(await inflight.waitUntilQuiet(for: .milliseconds(20), until: .now + .seconds(60)))
        let working = inflight.beginStream(.work, cancel: {})
        #expect(inflight.work == 1)
        #expect(await inflight.waitUntilQuiet(for: .milliseconds(20), until: .now + .milliseconds(50)) == false)
        inflight.endStream(working)
        // Work that just ended restarts the quiet period: not quiet before `quiet` has passed since.
        #expect(await inflight.waitUntilQuiet(for: .seconds(3600), until: .now) == false)
        #expect(await inflight.waitUntilQuiet(for: .milliseconds(20), until: .now + .seconds(60)))
        inflight.endStream(listening)
        #expect(inflight.count == 0)
    }

    @Test func anAccessAuditLineNamesTheURIWithoutItsQueryAndHashesTheSession() throws {
        let line = AccessAudit(
            timeMicros: 0, grant: "g", session: "s", agent: "a", method: "resources/read", kind: .resource,
            name: "secret://alice/token?key=sk-live#f", decision: .denied, policySHA256: "p"
        ).line
        let value = try JSONParser.parse(line.dropLast())
        #expect(value["name"] == "secret://alice/token" && value["kind"] == "resource" && value["decision"] == "denied")
        #expect(value["detail"] == "hidden" && value["session"] != "s" && line.last == 0x0A)
        #expect(!String(decoding: line, as: UTF8.self).contains("sk-live"))
        let prompt = try JSONParser.parse(
            AccessAudit(
                timeMicros: 0, grant: "g", session: nil, agent: "a", method: "prompts/get", kind: .prompt, name: "p?x",
                decision: .allowed, policySHA256: "p"
            ).line.dropLast())
        #expect(prompt["name"] == "p?x" && prompt["detail"] == .null && prompt["session"] == .null)
    }

    @Test func everyMetricHasHelpTextAndOnlyKnownNames() async throws {
        let metrics = ToolgateMetrics(version: "test")
        metrics.toolCall(tool: "t", decision: .allowedStoreUnavailable)
        metrics.storeOperation(.ok)
        metrics.upstreamRequest(.failed(.unreachable))
        metrics.policyReload(.failure)
        metrics.policyInForce(sha256: "abc")
        metrics.round(.followUp)
        metrics.accessDecision(kind: .resource, decision: .denied)
        metrics.argumentCheckUndecided(tool: "t")
        metrics.upstreamAnswerNotJSONRPC(status: 404)
        metrics.upstreamEventsDropped(1)
        metrics.auditDropped(2)
        metrics.stdioResponseRefused(.otherClient)
        metrics.decisionDuration.recordNanoseconds(1_000)
        metrics.storeDuration.recordNanoseconds(1_000)
        metrics.upstreamDuration.recordNanoseconds(1_000)
        metrics.inflightRequests.increment()
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        let typed = Set(text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] })
        let described = Set(text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
        #expect(typed == Set(MetricName.allCases.map { Substring($0.rawValue) }))
        #expect(described == typed)
    }

    @Test func aDrainEndsStreamsThatOutliveItsTimeout() async throws {
        let inflight = InflightRequests(metrics: ToolgateMetrics(version: "test"))
        let cancelled = Mutex(false)
        let token = inflight.beginStream(cancel: { cancelled.withLock { $0 = true } })
        #expect(inflight.count == 1)
        #expect(await inflight.waitUntilIdle(until: .now + .milliseconds(50)) == false)
        inflight.cancelStreams()
        #expect(cancelled.withLock { $0 })
        inflight.endStream(token)
        inflight.endStream(token)  // twice is once
        #expect(inflight.count == 0)
        #expect(await inflight.waitUntilIdle(until: .now))
    }
}

/// The file watcher's decisions, from what each poll saw.
@Suite struct FileChangeDebouncerTests {
    typealias S = FileChangeDebouncer.Signature
    static func sig(_ inode: UInt64, _ size: Int64 = 10, _ mtime: Int64 = 1) -> S {
        S(device: 1, inode: inode, size: size, modifiedNanos: mtime, changedNanos: mtime)
    }

    /// What the debouncer says to each poll in turn.
    static func decisions(from initial: S?, _ polls: [S?]) -> [Bool] {
        var debouncer = FileChangeDebouncer(initial: initial)
        return polls.map { debouncer.observe($0) }
    }

    @Test func aChangeIsActedOnOnceItHasSettled() {
        // unchanged; changed (wait for it to settle); still being written; settled (act); acted on once
        let polls = [Self.sig(1), Self.sig(1, 20, 2), Self.sig(1, 30, 3), Self.sig(1, 30, 3), Self.sig(1, 30, 3)]
        #expect(Self.decisions(from: Self.sig(1), polls) == [false, false, false, true, false])
    }

    @Test func renameReplacementsSymlinkSwapsAndDeletionsCount() {
        // A new inode (an editor's rename, a ConfigMap's swapped ..data link); gone (acted on too: the reload fails
        // and says so, the old policy stays); back.
        let polls: [S?] = [Self.sig(2), Self.sig(2), nil, nil, Self.sig(3), Self.sig(3)]
        #expect(Self.decisions(from: Self.sig(1), polls) == [false, true, false, true, false, true])
    }

    @Test func aChangeUndoneBeforeItSettledIsNothing() {
        #expect(Self.decisions(from: Self.sig(1), [Self.sig(1, 20, 2), Self.sig(1), Self.sig(1)]) == [false, false, false])
    }
}
