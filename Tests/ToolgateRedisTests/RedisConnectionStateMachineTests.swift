import Testing
@testable import ToolgateRedis

/// The connection's rules, driven directly: made-up instants and replies, plain strings as callers and probes.
@Suite struct RedisConnectionStateMachineTests {
    typealias Machine = RedisConnectionStateMachine<String, String>
    let t0 = ContinuousClock.now

    static func settings(password: String? = nil, database: Int = 0, tls: Bool = false) -> RedisConnection.Settings {
        RedisConnection.Settings(
            url: RedisURL(host: "h", port: 1, password: password, database: database, usesTLS: tls), operationTimeout: .milliseconds(100),
            connectTimeout: .seconds(1), reconnectBackoff: .milliseconds(50) ... .milliseconds(400),
            healthCheckInterval: .milliseconds(250), stuckAfter: .milliseconds(400))
    }

    static func command(_ words: String...) -> RedisCommand { RedisCommand(internal: words) }

    /// Actions as text, to compare whole sequences.
    static func describe(_ actions: [Machine.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .connect: "connect"
            case .startTLS: "startTLS"
            case .append(let command): "append " + command.argumentTexts.joined(separator: " ")
            case .closeContext: "closeContext"
            case .resume(let caller, .success(let value)): "resume \(caller) \(value)"
            case .resume(let caller, .failure(let error)): "fail \(caller) \(error.code)"
            case .timedOut(let caller, _): "timedOut \(caller)"
            case .lateReply(let caller, let value): "late \(caller) \(value)"
            case .dropLate(let caller): "dropLate \(caller)"
            case .probe(let probe, let answered): "probe \(probe) \(answered)"
            case .connected(let failures): "connected after \(failures)"
            case .disconnected(let wasUp, let failures, _, let retry): "disconnected up=\(wasUp) n=\(failures) retry=\(retry)"
            }
        }
    }

    /// A machine whose first connection is up at `t0 + 10 ms`, the handshake's PING written at `t0 + 5 ms`.
    func connected(_ settings: RedisConnection.Settings = settings()) -> Machine {
        var m = Machine(settings: settings, now: t0)
        #expect(Self.describe(m.tick(now: t0)) == ["connect"])
        #expect(Self.describe(m.connectFinished(socketError: nil, now: t0)) == ["append PING"])
        m.wrote(remainingBytes: 0, now: t0 + .milliseconds(5))
        #expect(Self.describe(m.received(.simpleString("PONG"), now: t0 + .milliseconds(10))) == ["connected after 0"])
        #expect(m.status == .up)
        #expect(m.isHealthy)
        return m
    }

    @Test func requestsDuringTheFirstAttemptWaitForIt() {
        var m = Machine(settings: Self.settings(), now: t0)
        _ = m.tick(now: t0)
        #expect(m.status == .starting)
        #expect(Self.describe(m.accept(.command(Self.command("GET", "k"), "a", asking: false), now: t0)).isEmpty)
        _ = m.connectFinished(socketError: nil, now: t0)
        m.wrote(remainingBytes: 0, now: t0)
        #expect(Self.describe(m.received(.simpleString("PONG"), now: t0)) == ["connected after 0", "append GET k"])
    }

    @Test func theHandshakeLogsInAndSelectsTheDatabase() {
        var m = Machine(settings: Self.settings(password: "pw", database: 3), now: t0)
        _ = m.tick(now: t0)
        #expect(Self.describe(m.connectFinished(socketError: nil, now: t0)) == ["append AUTH pw", "append SELECT 3", "append PING"])
        m.wrote(remainingBytes: 0, now: t0)
        #expect(Self.describe(m.received(.simpleString("OK"), now: t0)).isEmpty)
        let refused = m.received(.error("ERR DB index is out of range"), now: t0)
        #expect(Self.describe(refused) == ["closeContext", "disconnected up=false n=1 retry=0.05 seconds"])
        #expect(m.status == .down)
        #expect(m.lastFailure.contains("Redis refused SELECT 3"))
    }

    @Test func afterAFailureRequestsFailFastAndBackoffDoublesToItsCap() {
        var m = Machine(settings: Self.settings(), now: t0)
        var now = t0
        var delays: [Duration] = []
        for _ in 0..<5 {
            #expect(Self.describe(m.tick(now: now)) == ["connect"])
            let actions = m.connectFinished(socketError: "Connection refused", now: now)
            guard case .disconnected(_, _, _, let delay) = actions.last else {
                Issue.record("no disconnect")
                return
            }
            delays.append(delay)
            #expect(Self.describe(m.accept(.command(Self.command("GET", "k"), "x", asking: false), now: now)) == ["fail x connectionFailed"])
            #expect(m.tick(now: now + delay - .milliseconds(1)).isEmpty)
            now = now + delay
        }
        #expect(delays == [.milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(400)])
    }

    @Test func repliesGoToCallersInOrderAndALateReplyToItsTimedOutCaller() {
        var m = connected()
        let at = t0 + .milliseconds(20)
        _ = m.accept(.command(Self.command("GET", "a"), "a", asking: false), now: at)
        _ = m.accept(.command(Self.command("GET", "b"), "b", asking: false), now: at)
        m.wrote(remainingBytes: 0, now: at)
        #expect(Self.describe(m.enforceDeadlines(now: at + .milliseconds(99))).isEmpty)
        #expect(Self.describe(m.enforceDeadlines(now: at + .milliseconds(100))) == ["timedOut a", "timedOut b"])
        #expect(Self.describe(m.received(.integer(1), now: at + .milliseconds(150))) == ["late a integer(1)"])
        #expect(Self.describe(m.received(.integer(2), now: at + .milliseconds(150))) == ["late b integer(2)"])
    }

    @Test func aCommandsClockStartsWhenItIsWrittenNotWhenItIsQueued() {
        var m = connected()
        let command = Self.command("GET", "a")
        _ = m.accept(.command(command, "a", asking: false), now: t0)
        // Still in the output buffer a whole second later: not Redis being slow.
        #expect(m.enforceDeadlines(now: t0 + .seconds(1)).isEmpty)
        m.wrote(remainingBytes: 0, now: t0 + .seconds(1))
        #expect(Self.describe(m.enforceDeadlines(now: t0 + .milliseconds(1100))) == ["timedOut a"])
    }

    @Test func aStuckConnectionIsDroppedAndItsLateCallersForgotten() {
        var m = connected()
        let at = t0 + .milliseconds(20)
        _ = m.accept(.command(Self.command("GET", "a"), "a", asking: false), now: at)
        m.wrote(remainingBytes: 0, now: at)
        _ = m.enforceDeadlines(now: at + .milliseconds(100))
        _ = m.accept(.command(Self.command("GET", "b"), "b", asking: false), now: at + .milliseconds(300))
        let actions = Self.describe(m.enforceDeadlines(now: at + .milliseconds(400)))
        #expect(actions == ["closeContext", "dropLate a", "fail b connectionFailed", "disconnected up=true n=1 retry=0.05 seconds"])
        #expect(m.lastFailure.contains("stuck"))
        #expect(!m.isHealthy)
    }

    @Test func askingIsWrittenRightBeforeItsCommandAndItsReplyIsDropped() {
        var m = connected()
        let actions = m.accept(.command(Self.command("EVALSHA", "x", "1", "k"), "a", asking: true), now: t0)
        #expect(Self.describe(actions) == ["append ASKING", "append EVALSHA x 1 k"])
        #expect(Self.describe(m.received(.simpleString("OK"), now: t0)).isEmpty)
        #expect(Self.describe(m.received(.integer(7), now: t0)) == ["resume a integer(7)"])
    }

    @Test func backgroundHealthChecksGoOneAtATimeAndAnUnansweredOneMarksTheConnectionUnhealthy() {
        var m = connected()
        let due = t0 + .milliseconds(260)
        #expect(Self.describe(m.healthCheckIfDue(now: due)) == ["append PING"])
        m.wrote(remainingBytes: 0, now: due)
        // Due again, but the first is still owed: none is added.
        #expect(m.healthCheckIfDue(now: due + .milliseconds(260)).isEmpty)
        _ = m.enforceDeadlines(now: due + .milliseconds(100))
        #expect(!m.isHealthy)
        _ = m.received(.simpleString("PONG"), now: due + .milliseconds(150))
        // The late PONG does not make it healthy again; the next check does.
        #expect(!m.isHealthy)
        #expect(Self.describe(m.healthCheckIfDue(now: due + .milliseconds(520))) == ["append PING"])
        m.wrote(remainingBytes: 0, now: due + .milliseconds(520))
        _ = m.received(.simpleString("PONG"), now: due + .milliseconds(530))
        #expect(m.isHealthy)
    }

    @Test func anExplicitPingTellsItsProbe() {
        var m = connected()
        #expect(Self.describe(m.accept(.ping("p"), now: t0)) == ["append PING"])
        #expect(Self.describe(m.received(.simpleString("PONG"), now: t0)) == ["probe p true"])
        var down = Machine(settings: Self.settings(), now: t0)
        _ = down.tick(now: t0)
        _ = down.connectFinished(socketError: "refused", now: t0)
        #expect(Self.describe(down.accept(.ping("q"), now: t0)) == ["probe q false"])
    }

    @Test func connectAndHandshakeDeadlines() {
        var m = Machine(settings: Self.settings(), now: t0)
        _ = m.tick(now: t0)
        #expect(m.enforceDeadlines(now: t0 + .milliseconds(999)).isEmpty)
        #expect(m.lastFailure == "no connection attempt has finished yet")
        #expect(Self.describe(m.enforceDeadlines(now: t0 + .seconds(1))).first == "closeContext")
        #expect(m.lastFailure.contains("connecting timed out"))
        let retry = t0 + .seconds(1) + .milliseconds(50)
        _ = m.tick(now: retry)
        _ = m.connectFinished(socketError: nil, now: retry)
        m.wrote(remainingBytes: 0, now: retry)
        _ = m.enforceDeadlines(now: retry + .seconds(1))
        #expect(m.lastFailure.contains("did not answer the handshake"))
    }

    @Test func closingFailsEverythingWithClosed() {
        var m = Machine(settings: Self.settings(), now: t0)
        _ = m.tick(now: t0)
        _ = m.accept(.command(Self.command("GET", "held"), "held", asking: false), now: t0)
        #expect(Self.describe(m.close()) == ["closeContext", "fail held closed"])
        #expect(m.status == .closed)
        #expect(Self.describe(m.accept(.command(Self.command("GET", "k"), "late", asking: false), now: t0)) == ["fail late closed"])
        #expect(m.close().isEmpty)
    }

    @Test func aReplyToNoCommandDropsTheConnection() {
        var m = connected()
        #expect(Self.describe(m.received(.integer(1), now: t0)).first == "closeContext")
        #expect(m.lastFailure.contains("reply to no command"))
    }

    @Test(arguments: [
        (["PING"], "*1\r\n$4\r\nPING\r\n"),
        (["SET", "key", ""], "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n"),
        (["A", "B", "C", "D", "E", "F", "G", "H", "I", "0123456789"],
         "*10\r\n" + "ABCDEFGHI".map { "$1\r\n\($0)\r\n" }.joined() + "$10\r\n0123456789\r\n"),
    ])
    func encodedLengthIsTheRESPLength(words: [String], resp: String) {
        #expect(RedisCommand(internal: words).encodedLength == resp.utf8.count)
    }

    @Test func tlsComesBeforeAnyRedisBytesAndTheConnectDeadlineCoversIt() {
        var m = Machine(settings: Self.settings(password: "pw", tls: true), now: t0)
        #expect(Self.describe(m.tick(now: t0)) == ["connect"])
        // Nothing is written (AUTH least of all) until TLS is up.
        #expect(Self.describe(m.connectFinished(socketError: nil, now: t0)) == ["startTLS"])
        #expect(!m.mayWrite)
        #expect(m.isSecuring)
        #expect(Self.describe(m.accept(.command(Self.command("GET", "k"), "a", asking: false), now: t0)).isEmpty)
        #expect(Self.describe(m.secured(failure: nil, now: t0 + .milliseconds(5))) == ["append AUTH pw", "append PING"])
        #expect(m.mayWrite)

        var refused = Machine(settings: Self.settings(tls: true), now: t0)
        _ = refused.tick(now: t0)
        _ = refused.connectFinished(socketError: nil, now: t0)
        let actions = refused.secured(failure: "TLS handshake with Redis failed: certificate verify failed", now: t0)
        #expect(Self.describe(actions).first == "closeContext")
        #expect(refused.status == .down)
        #expect(refused.lastFailure.contains("certificate verify failed"))

        var silent = Machine(settings: Self.settings(tls: true), now: t0)
        _ = silent.tick(now: t0)
        _ = silent.connectFinished(socketError: nil, now: t0)
        #expect(silent.nextWakeup(now: t0) == t0 + .seconds(1))
        _ = silent.enforceDeadlines(now: t0 + .seconds(1))
        #expect(silent.lastFailure.contains("TLS handshake did not finish"))
    }

    @Test func aPlaintextHandshakeIsMarkedForTheTLSHint() {
        var m = Machine(settings: Self.settings(), now: t0)
        _ = m.tick(now: t0)
        _ = m.connectFinished(socketError: nil, now: t0)
        #expect(m.isPlaintextHandshake)
        var t = Machine(settings: Self.settings(tls: true), now: t0)
        _ = t.tick(now: t0)
        _ = t.connectFinished(socketError: nil, now: t0)
        _ = t.secured(failure: nil, now: t0)
        #expect(!t.isPlaintextHandshake)
    }
}

/// `--redis-wait-replicas`: a pair goes out back to back, the second with its own deadline; the connection's name.
extension RedisConnectionStateMachineTests {
    static func pair(asking: Bool = false) -> Machine.Pair {
        Machine.Pair(
            first: command("EVALSHA", "sha", "0"), firstCaller: "script", second: command("WAIT", "1", "100"),
            secondCaller: "wait", secondTimeout: .milliseconds(200), asking: asking)
    }

    @Test func aPairIsWrittenBackToBackAndEachReplyGoesToItsCaller() {
        var m = connected()
        #expect(Self.describe(m.accept(.pair(Self.pair()), now: t0)) == ["append EVALSHA sha 0", "append WAIT 1 100"])
        #expect(Self.describe(m.accept(.pair(Self.pair(asking: true)), now: t0)) == [
            "append ASKING", "append EVALSHA sha 0", "append WAIT 1 100",
        ])
        m.wrote(remainingBytes: 0, now: t0 + .milliseconds(20))
        #expect(Self.describe(m.received(.integer(7), now: t0 + .milliseconds(21))) == ["resume script integer(7)"])
        #expect(Self.describe(m.received(.integer(1), now: t0 + .milliseconds(22))) == ["resume wait integer(1)"])
        #expect(Self.describe(m.received(.simpleString("OK"), now: t0 + .milliseconds(23))).isEmpty)  // ASKING
    }

    @Test func theWaitHasItsOwnLongerDeadline() {
        var m = connected()
        _ = m.accept(.pair(Self.pair()), now: t0)
        m.wrote(remainingBytes: 0, now: t0 + .milliseconds(20))
        // The script is late after the operation timeout (100 ms); WAIT, blocking on the server, only after 200 ms.
        #expect(Self.describe(m.enforceDeadlines(now: t0 + .milliseconds(150))) == ["timedOut script"])
        #expect(Self.describe(m.enforceDeadlines(now: t0 + .milliseconds(230))) == ["timedOut wait"])
    }

    @Test func aPairWaitsForTheFirstConnectionAndFailsWholeWithIt() {
        var m = Machine(settings: Self.settings(), now: t0)
        _ = m.tick(now: t0)
        #expect(Self.describe(m.accept(.pair(Self.pair()), now: t0)).isEmpty)
        let failed = m.connectFinished(socketError: "Connection refused", now: t0)
        #expect(Self.describe(failed).filter { $0.hasPrefix("fail") } == ["fail script connectionFailed", "fail wait connectionFailed"])
    }

    @Test func theConnectionIsNamedOnceUpAndARefusalIsIgnored() {
        var settings = Self.settings()
        settings.clientName = "toolgate:a"
        var m = Machine(settings: settings, now: t0)
        _ = m.tick(now: t0)
        _ = m.connectFinished(socketError: nil, now: t0)
        m.wrote(remainingBytes: 0, now: t0)
        #expect(Self.describe(m.received(.simpleString("PONG"), now: t0)) == ["connected after 0", "append CLIENT SETNAME toolgate:a"])
        #expect(Self.describe(m.received(.error("NOPERM no permission"), now: t0)).isEmpty)
        #expect(m.status == .up)
    }
}
