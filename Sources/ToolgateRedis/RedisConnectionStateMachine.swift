/// The rules of one pipelined Redis connection, with no I/O: when to connect, what to write, whose reply is
/// next, when a command or the connection has waited too long, when to check health, and how long to back off.
/// `RedisConnection` is the thin loop that does the I/O (hiredis, `poll()`) and carries out the actions these
/// methods return, in order. A plain struct, tested directly with made-up instants and replies.
///
/// Generic over who waits for a reply (`Caller`) and who waits for a health check (`Probe`), so tests use plain
/// values where the loop uses continuations.
struct RedisConnectionStateMachine<Caller, Probe> {
    typealias Settings = RedisConnection.Settings

    enum Request {
        /// `asking`: written right after `ASKING`, with nothing between (a cluster's `ASK` redirect).
        case command(RedisCommand, Caller, asking: Bool)
        /// An explicit health check; the probe learns whether PONG came back within the operation timeout.
        case ping(Probe)
        /// Two commands appended back to back on this connection, nothing between them (`EVALSHA` then `WAIT`,
        /// which counts the writes of the connection it runs on).
        case pair(Pair)
    }

    struct Pair {
        var first: RedisCommand
        var firstCaller: Caller
        var second: RedisCommand
        var secondCaller: Caller
        /// The second command's own deadline: a `WAIT` blocks on the server for up to its timeout argument.
        var secondTimeout: Duration
        /// Both written right after `ASKING` (a cluster's `ASK` redirect).
        var asking: Bool
    }

    /// What callers may do with the connection, published for the client's routing.
    enum Status: Int {
        /// The first connect attempt is in flight: requests wait for it (bounded by the connect timeout).
        case starting
        /// Handshake done: requests are written at once.
        case up
        /// Between attempts after a failure: requests fail fast.
        case down
        case closed
    }

    /// What the loop must do, in the order given.
    enum Action {
        /// Open a non-blocking connection; report `connectStarted` or `failed`.
        case connect
        /// `rediss://`: start the TLS handshake on the connected socket; report `secured`.
        case startTLS
        /// Format the command into the output buffer (its bytes are already counted); on failure report `failed`.
        case append(RedisCommand)
        /// Free the connection's context: it is done.
        case closeContext
        case resume(Caller, Result<RedisValue, RedisError>)
        /// The reply is late: the caller fails with `.timeout`, and its entry stays for the reply that may come.
        case timedOut(Caller, RedisError)
        /// The caller already failed with `.timeout`: hand it the reply that came after all.
        case lateReply(Caller, RedisValue)
        /// A timed-out caller whose reply will never come (the connection went).
        case dropLate(Caller)
        case probe(Probe, Bool)
        case connected(afterFailures: Int)
        case disconnected(wasUp: Bool, failuresInARow: Int, reason: String, retryIn: Duration)
    }

    /// Who gets the reply of a command in the queue.
    enum Waiter {
        case caller(Caller)
        /// The caller already failed with `.timeout`; the reply goes to it as a late reply.
        case late(Caller)
        /// `probe` is nil for the background check, which the machine schedules itself.
        case healthCheck(probe: Probe?)
        case expiredHealthCheck(background: Bool)
        case handshake(step: String, last: Bool)
        /// The reply to `ASKING`, which only prepares the command after it.
        case discarded
    }

    enum Phase {
        /// No socket; the next attempt starts at `until`.
        case waiting(until: ContinuousClock.Instant)
        /// TCP connect in flight.
        case connecting(deadline: ContinuousClock.Instant)
        /// `rediss://`: TLS handshake in flight; nothing, not even AUTH, is written before it is done.
        case securing(deadline: ContinuousClock.Instant)
        /// AUTH / SELECT / PING written, replies awaited; the connect deadline still applies.
        case handshaking(deadline: ContinuousClock.Instant)
        case ready
        case closed
    }

    let settings: Settings
    private(set) var phase: Phase
    private(set) var status = Status.starting
    /// The last health check (PING) answered within the operation timeout.
    private(set) var isHealthy = false
    /// Why the last attempt or connection failed, for the fail-fast error.
    private(set) var lastFailure = "no connection attempt has finished yet"
    private(set) var queue = ReplyQueue<Waiter>()
    /// Requests that arrived during the first connect attempt.
    private var held: [Request] = []
    private var backoff: Duration
    private var nextHealthCheck: ContinuousClock.Instant
    private var backgroundCheckOutstanding = false
    private var failuresInARow = 0

    init(settings: Settings, now: ContinuousClock.Instant) {
        self.settings = settings
        backoff = settings.reconnectBackoff.lowerBound
        phase = .waiting(until: now)
        nextHealthCheck = now
    }

    // MARK: Events

    /// Time passed: start the next connect attempt if it is due.
    mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        guard case .waiting(let until) = phase, until <= now else { return [] }
        phase = .connecting(deadline: now + settings.connectTimeout)
        return [.connect]
    }

    mutating func accept(_ request: Request, now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        switch (phase, request) {
        case (.ready, .command(let command, let caller, let asking)):
            if asking { append(RedisCommand(internal: ["ASKING"]), for: .discarded, timeout: nil, into: &actions) }
            append(command, for: .caller(caller), timeout: settings.operationTimeout, into: &actions)
        case (.ready, .ping(let probe)):
            append(RedisCommand(internal: ["PING"]), for: .healthCheck(probe: probe), timeout: settings.operationTimeout, into: &actions)
        case (.ready, .pair(let pair)):
            if pair.asking { append(RedisCommand(internal: ["ASKING"]), for: .discarded, timeout: nil, into: &actions) }
            append(pair.first, for: .caller(pair.firstCaller), timeout: settings.operationTimeout, into: &actions)
            append(pair.second, for: .caller(pair.secondCaller), timeout: pair.secondTimeout, into: &actions)
        case (.connecting, .command), (.securing, .command), (.handshaking, .command), (.waiting, .command),
            (.connecting, .pair), (.securing, .pair), (.handshaking, .pair), (.waiting, .pair):
            if status == .starting {
                held.append(request)
            } else {
                reject(request, with: .connectionFailed(settings.url, lastFailure), into: &actions)
            }
        case (.closed, _):
            reject(request, with: .closed, into: &actions)
        default:
            reject(request, with: .connectionFailed(settings.url, lastFailure), into: &actions)
        }
        return actions
    }

    /// The TCP connect finished: `socketError` nil when it succeeded. The TLS handshake (`rediss://`) or the
    /// Redis handshake follows.
    mutating func connectFinished(socketError: String?, now: ContinuousClock.Instant) -> [Action] {
        guard case .connecting(let deadline) = phase else { return [] }
        if let socketError { return failed(.connectionFailed, socketError, now: now) }
        if settings.url.usesTLS {
            phase = .securing(deadline: deadline)
            return [.startTLS]
        }
        return startHandshake(deadline: deadline)
    }

    /// The TLS handshake finished: `failure` nil when it succeeded. There is no plaintext fallback: a failure is
    /// a failed attempt like any other.
    mutating func secured(failure: String?, now: ContinuousClock.Instant) -> [Action] {
        guard case .securing(let deadline) = phase else { return [] }
        if let failure { return failed(.connectionFailed, failure, now: now) }
        return startHandshake(deadline: deadline)
    }

    private mutating func startHandshake(deadline: ContinuousClock.Instant) -> [Action] {
        // Pipelined, but no caller command goes out before the last of these is answered.
        var steps: [[String]] = []
        let url = settings.url
        if let password = url.password {
            steps.append(url.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if url.database != 0 { steps.append(["SELECT", String(url.database)]) }
        steps.append(["PING"])
        phase = .handshaking(deadline: deadline)
        var actions: [Action] = []
        for (position, step) in steps.enumerated() {
            let label = step[0] == "AUTH" ? "AUTH" : step.joined(separator: " ")
            append(RedisCommand(internal: step), for: .handshake(step: label, last: position == steps.count - 1), timeout: nil, into: &actions)
        }
        return actions
    }

    /// The output buffer holds `remainingBytes` after a write: the commands fully written start their clocks.
    mutating func wrote(remainingBytes: Int, now: ContinuousClock.Instant) {
        queue.markSent(writtenBytes: queue.appendedBytes - remainingBytes, at: now)
    }

    /// One reply, in order.
    mutating func received(_ value: RedisValue, now: ContinuousClock.Instant) -> [Action] {
        guard let entry = queue.popFirst() else {
            return failed(.protocolError, "Redis sent a reply to no command", now: now)
        }
        switch entry.waiter {
        case .caller(let caller):
            return [.resume(caller, .success(value))]
        case .late(let caller):
            return [.lateReply(caller, value)]
        case .healthCheck(let probe):
            let answered = value == .simpleString("PONG")
            isHealthy = answered
            if probe == nil { backgroundCheckOutstanding = false }
            return probe.map { [.probe($0, answered)] } ?? []
        case .expiredHealthCheck(let background):
            if background { backgroundCheckOutstanding = false }
            return []
        case .discarded:
            return []
        case .handshake(let step, let last):
            if case .error(let message) = value {
                return failed(.connectionFailed, Self.handshakeFailure(step: step, message: message), now: now)
            }
            guard last else { return [] }
            // The handshake's PING is the first health check: healthy only if it came back within the operation
            // timeout, though the connect timeout bounds it.
            return becomeReady(healthy: entry.sentAt.map { $0 + settings.operationTimeout >= now } ?? true, now: now)
        }
    }

    /// Sends the background health check when it is due, one at a time: while Redis is silent, checks would only
    /// pile up behind each other.
    mutating func healthCheckIfDue(now: ContinuousClock.Instant) -> [Action] {
        guard case .ready = phase, nextHealthCheck <= now else { return [] }
        nextHealthCheck = now + settings.healthCheckInterval
        guard !backgroundCheckOutstanding else { return [] }
        backgroundCheckOutstanding = true
        var actions: [Action] = []
        append(RedisCommand(internal: ["PING"]), for: .healthCheck(probe: nil), timeout: settings.operationTimeout, into: &actions)
        return actions
    }

    /// Callers whose reply is late fail with `.timeout` (their entry stays, for the reply that may still come); a
    /// connect or handshake past its deadline, or a reply owed for longer than `stuckAfter`, drops the connection.
    mutating func enforceDeadlines(now: ContinuousClock.Instant) -> [Action] {
        switch phase {
        case .waiting, .closed, .connecting, .securing, .handshaking:
            if case .connecting(let deadline) = phase, deadline <= now {
                return failed(.connectionFailed, "connecting timed out after \(RedisError.format(settings.connectTimeout))", now: now)
            }
            if case .securing(let deadline) = phase, deadline <= now {
                return failed(
                    .connectionFailed,
                    "the TLS handshake did not finish within \(RedisError.format(settings.connectTimeout)): is this a TLS "
                        + "port? (a plaintext Redis does not answer rediss://)",
                    now: now)
            }
            if case .handshaking(let deadline) = phase, deadline <= now {
                return failed(
                    .connectionFailed,
                    "Redis accepted the connection but did not answer the handshake (AUTH, SELECT, PING) within "
                        + "\(RedisError.format(settings.connectTimeout)): is it stopped or overloaded?",
                    now: now)
            }
            return []
        case .ready:
            var actions: [Action] = []
            let url = settings.url, timeout = settings.operationTimeout
            var unhealthy = false
            queue.expire(now: now) { waiter in
                switch waiter {
                case .caller(let caller):
                    waiter = .late(caller)
                    actions.append(.timedOut(caller, .timeout(url, after: timeout)))
                case .healthCheck(let probe):
                    unhealthy = true
                    waiter = .expiredHealthCheck(background: probe == nil)
                    if let probe { actions.append(.probe(probe, false)) }
                case .late, .expiredHealthCheck, .handshake, .discarded:
                    break
                }
            }
            if unhealthy { isHealthy = false }
            if let oldest = queue.oldestSentAt, oldest + settings.stuckAfter <= now {
                actions += failed(
                    .connectionFailed,
                    "Redis owed a reply for more than \(RedisError.format(settings.stuckAfter)); the connection was "
                        + "dropped as stuck",
                    now: now)
            }
            return actions
        }
    }

    /// The connection failed (or could not be made): everything that waited on it fails, and the next attempt
    /// is scheduled with backoff doubling from its lower bound to its cap.
    mutating func failed(_ code: RedisError.Code, _ reason: String, now: ContinuousClock.Instant) -> [Action] {
        if case .closed = phase { return [] }
        var actions: [Action] = [.closeContext]
        let wasUp = status == .up
        lastFailure = reason
        status = .down
        isHealthy = false
        backgroundCheckOutstanding = false
        phase = .waiting(until: now + backoff)
        let delay = backoff
        backoff = min(backoff * 2, settings.reconnectBackoff.upperBound)
        failuresInARow += 1
        let error = code == .protocolError ? RedisError.protocolError(reason) : .connectionFailed(settings.url, reason)
        let waiting = held
        held = []
        for request in waiting { reject(request, with: error, into: &actions) }
        failQueued(with: error, into: &actions)
        actions.append(.disconnected(wasUp: wasUp, failuresInARow: failuresInARow, reason: reason, retryIn: delay))
        return actions
    }

    /// The connection ends for good: everything waiting fails with `.closed`.
    mutating func close() -> [Action] {
        if case .closed = phase { return [] }
        phase = .closed
        status = .closed
        isHealthy = false
        var actions: [Action] = [.closeContext]
        let waiting = held
        held = []
        for request in waiting { reject(request, with: .closed, into: &actions) }
        failQueued(with: .closed, into: &actions)
        return actions
    }

    // MARK: Questions

    /// The loop's next wakeup: the nearest deadline, retry or health check.
    func nextWakeup(now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        var nearest = now + .seconds(1)
        func consider(_ instant: ContinuousClock.Instant?) {
            if let instant, instant < nearest { nearest = instant }
        }
        switch phase {
        case .waiting(let until): consider(until)
        case .connecting(let deadline), .securing(let deadline), .handshaking(let deadline): consider(deadline)
        case .ready:
            consider(nextHealthCheck)
            consider(queue.nextDeadline)
            consider(queue.oldestSentAt.map { $0 + settings.stuckAfter })
        case .closed: break
        }
        return nearest
    }

    /// Whether output may be written: during the handshake and when ready (not before the TCP connect is done).
    var mayWrite: Bool {
        switch phase {
        case .handshaking, .ready: true
        case .waiting, .connecting, .securing, .closed: false
        }
    }

    var isConnecting: Bool { if case .connecting = phase { true } else { false } }

    var isSecuring: Bool { if case .securing = phase { true } else { false } }

    /// A plaintext (`redis://`) connection that failed before Redis answered the handshake: a TLS-only port closes
    /// such a connection (or answers with a TLS alert hiredis cannot parse), so the failure gets a hint.
    var isPlaintextHandshake: Bool { !settings.url.usesTLS && isHandshaking }

    /// AUTH / SELECT / PING written, not all answered yet.
    var isHandshaking: Bool { if case .handshaking = phase { true } else { false } }

    // MARK: Helpers

    private mutating func append(_ command: RedisCommand, for waiter: Waiter, timeout: Duration?, into actions: inout [Action]) {
        queue.append(waiter, bytes: command.encodedLength, timeout: timeout)
        actions.append(.append(command))
    }

    private func reject(_ request: Request, with error: RedisError, into actions: inout [Action]) {
        switch request {
        case .command(_, let caller, _): actions.append(.resume(caller, .failure(error)))
        case .ping(let probe): actions.append(.probe(probe, false))
        case .pair(let pair):
            actions.append(.resume(pair.firstCaller, .failure(error)))
            actions.append(.resume(pair.secondCaller, .failure(error)))
        }
    }

    private mutating func becomeReady(healthy: Bool, now: ContinuousClock.Instant) -> [Action] {
        phase = .ready
        isHealthy = healthy
        status = .up
        backoff = settings.reconnectBackoff.lowerBound
        nextHealthCheck = now + settings.healthCheckInterval
        var actions: [Action] = [.connected(afterFailures: failuresInARow)]
        failuresInARow = 0
        if let name = settings.clientName {
            // Not part of the handshake: a managed service or an ACL may refuse it, which must not stop toolgate.
            append(RedisCommand(internal: ["CLIENT", "SETNAME", name]), for: .discarded, timeout: nil, into: &actions)
        }
        let waiting = held
        held = []
        for request in waiting { actions += accept(request, now: now) }
        return actions
    }

    /// Every command written but unanswered fails with `error`; nothing after this reads their replies.
    private mutating func failQueued(with error: RedisError, into actions: inout [Action]) {
        for entry in queue.removeAll() {
            switch entry.waiter {
            case .caller(let caller): actions.append(.resume(caller, .failure(error)))
            case .late(let caller): actions.append(.dropLate(caller))
            case .healthCheck(let probe): if let probe { actions.append(.probe(probe, false)) }
            case .expiredHealthCheck, .handshake, .discarded: break
            }
        }
    }

    static func handshakeFailure(step: String, message: String) -> String {
        if message.hasPrefix("NOAUTH") {
            return "Redis requires a password (\(message)): give it in the Redis URL, redis://:password@host or "
                + "redis://user:password@host"
        }
        if step == "AUTH" {
            return "Redis refused AUTH (\(message)): check the user name and password in the Redis URL"
        }
        if step.hasPrefix("SELECT") {
            return "Redis refused \(step) (\(message)): check the database number in the Redis URL"
        }
        return "Redis refused \(step) (\(message))"
    }
}

extension RedisConnectionStateMachine.Pair: Sendable where Caller: Sendable {}
