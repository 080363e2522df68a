import CHiredis
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One non-blocking hiredis context and the thread that owns it, for its whole life across reconnects.
///
/// hiredis contexts are not thread-safe and Redis I/O must never block a Swift concurrency thread, so one
/// plain thread per connection does all of it: callers hand requests over through a mutex-protected inbox and
/// a wakeup pipe; the thread appends everything waiting (`redisAppendCommandArgv`), writes the whole buffer at
/// once (`redisBufferWrite`), `poll()`s the socket and the pipe, reads, and resumes callers in reply order.
/// Deadlines, health checks and reconnects are all driven from that loop.
///
/// `@unchecked Sendable`: the state under "Owned by the connection thread" is touched by that thread alone;
/// whatever other threads read or write is a `Mutex` or an `Atomic`.
final class RedisConnection: @unchecked Sendable {
    /// What callers may do with this connection, published for the client's routing.
    enum Status: Int {
        /// The first connect attempt is in flight: requests wait for it (bounded by the connect timeout).
        case starting
        /// Handshake done: requests are written at once.
        case up
        /// Between attempts after a failure: requests fail fast.
        case down
        case closed
    }

    struct Settings: Sendable {
        var url: RedisURL
        var operationTimeout: Duration
        var connectTimeout: Duration
        var reconnectBackoff: ClosedRange<Duration>
        var healthCheckInterval: Duration
        /// How long the oldest reply may be owed before the connection counts as stuck and is replaced.
        var stuckAfter: Duration
    }

    typealias LateReplyHandler = @Sendable (RedisValue) -> Void

    struct Caller: Sendable {
        let continuation: CheckedContinuation<Result<RedisValue, RedisError>, Never>
        let onLateReply: LateReplyHandler?
    }

    enum Request: Sendable {
        case command(RedisCommand, Caller)
        /// The same, written right after `ASKING` with nothing between (a cluster's `ASK` redirect).
        case askingCommand(RedisCommand, Caller)
        /// An explicit health check; the probe learns whether PONG came back within the operation timeout.
        case ping(@Sendable (Bool) -> Void)
    }

    /// Who gets the reply of a command in the queue.
    private enum Waiter {
        case caller(Caller)
        /// The caller already failed with `.timeout`; the reply goes to its handler, if it gave one.
        case late(LateReplyHandler?)
        /// `probe` is nil for the background check, which the loop sends itself.
        case healthCheck(probe: (@Sendable (Bool) -> Void)?)
        case expiredHealthCheck(background: Bool)
        case handshake(step: String, last: Bool)
        /// The reply to `ASKING`, which only prepares the command after it.
        case discarded
    }

    private enum Phase {
        /// No socket; the next attempt starts at `until`.
        case waiting(until: ContinuousClock.Instant)
        /// TCP connect in flight.
        case connecting(deadline: ContinuousClock.Instant)
        /// AUTH / SELECT / PING written, replies awaited; the connect deadline still applies.
        case handshaking(deadline: ContinuousClock.Instant)
        case ready
    }

    private struct Inbox {
        var requests: [Request] = []
        /// Once set, nobody wakes the thread any more, so it may close the pipe.
        var closing = false
        /// A wakeup byte is already on its way: later requests need not write another.
        var wakeupPending = false
    }

    let index: Int
    let settings: Settings
    private let logger: Logger
    private let inbox = Mutex(Inbox())
    private let wakeup = WakeupPipe()
    private let statusValue = Atomic<Int>(Status.starting.rawValue)
    private let healthyValue = Atomic<Bool>(false)
    /// Why the last attempt or connection failed, for the fail-fast error.
    private let lastFailureValue = Mutex("no connection attempt has finished yet")

    /// Caller commands handed to this connection and not yet answered or failed, timed-out ones included: the
    /// client sends new commands to the connection with the fewest.
    let pending = Atomic<Int>(0)
    let commandsAppended = Atomic<Int>(0)
    let socketWrites = Atomic<Int>(0)
    let connects = Atomic<Int>(0)
    let timeouts = Atomic<Int>(0)
    let lateReplies = Atomic<Int>(0)
    /// hiredis contexts allocated and not yet freed: at most 1, and 0 once the thread has ended.
    let openContexts = Atomic<Int>(0)

    // MARK: Owned by the connection thread

    /// Ownership: created by `redisConnectNonBlock` on the connection thread and used only there; freed with
    /// `redisFree` exactly once, in `disconnect` or when the thread ends, which also sets it back to nil.
    private var context: UnsafeMutablePointer<redisContext>?
    /// The reader's constructor table (see `RedisValue.installNullKindMarker`). Ownership: allocated here,
    /// used by the thread's successive contexts, deallocated by the thread after its last `redisFree`.
    private let replyFunctions = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
    private var phase: Phase
    private var queue = ReplyQueue<Waiter>()
    /// Requests that arrived during the first connect attempt.
    private var held: [Request] = []
    private var backoff: Duration
    private var nextHealthCheck = ContinuousClock.now
    private var backgroundCheckOutstanding = false
    private var failuresInARow = 0

    init(index: Int, settings: Settings, logger: Logger) {
        self.index = index
        self.settings = settings
        var logger = logger
        logger[metadataKey: "redis"] = "\(settings.url.host):\(settings.url.port)"
        logger[metadataKey: "redis.connection"] = "\(index)"
        self.logger = logger
        backoff = settings.reconnectBackoff.lowerBound
        phase = .waiting(until: .now)
        let thread = Thread { [self] in run() }
        thread.start()
    }

    var status: Status { Status(rawValue: statusValue.load(ordering: .acquiring))! }
    /// Up, and the last health check came back in time.
    var isHealthy: Bool { status == .up && healthyValue.load(ordering: .relaxed) }
    var lastFailure: String { lastFailureValue.withLock { $0 } }

    /// Hands a request to the thread; a request that arrives after shutdown fails with `.closed` at once.
    func submit(_ request: Request) {
        let accepted = inbox.withLock { inbox in
            guard !inbox.closing else { return false }
            inbox.requests.append(request)
            if !inbox.wakeupPending {
                inbox.wakeupPending = true
                wakeup.wake()
            }
            return true
        }
        if !accepted { reject(request, with: .closed) }
    }

    /// Fails every request with `.closed` and ends the thread.
    func shutdown() {
        inbox.withLock { inbox in
            guard !inbox.closing else { return }
            inbox.closing = true
            wakeup.wake()
        }
    }

    // MARK: The connection thread

    private func run() {
        // Set from inside: on Linux that is what names the OS thread (15 characters at most), for top and gdb.
        Thread.current.name = "tg-redis-\(index)"
        Self.blockSIGPIPE()
        while let requests = takeRequests() {
            var now = ContinuousClock.now
            if case .waiting(let until) = phase, until <= now { startConnecting(now: now) }
            for request in requests { accept(request) }
            sendBackgroundHealthCheckIfDue(now: now)
            flush()

            let events = poll(timeout: pollTimeout(now: now))
            now = .now
            if events.wakeup { wakeup.drain() }
            if let socket = events.socket { handleSocket(socket, now: now) }
            // Replies are read before deadlines are judged: a reply that arrived while this thread was
            // starved of CPU is still a reply in time.
            enforceDeadlines(now: .now)
        }
        close()
    }

    private func takeRequests() -> [Request]? {
        inbox.withLock { inbox in
            guard !inbox.closing else { return nil }
            inbox.wakeupPending = false
            defer { inbox.requests = [] }
            return inbox.requests
        }
    }

    private func accept(_ request: Request) {
        switch (phase, request) {
        case (.ready, .command(let command, let caller)):
            append(command, for: .caller(caller), timeout: settings.operationTimeout)
        case (.ready, .askingCommand(let command, let caller)):
            append(RedisCommand(internal: ["ASKING"]), for: .discarded, timeout: nil)
            append(command, for: .caller(caller), timeout: settings.operationTimeout)
        case (.ready, .ping(let probe)):
            append(RedisCommand(internal: ["PING"]), for: .healthCheck(probe: probe), timeout: settings.operationTimeout)
        case (.connecting, .command), (.handshaking, .command), (.connecting, .askingCommand), (.handshaking, .askingCommand):
            if status == .starting {
                held.append(request)
            } else {
                reject(request, with: .connectionFailed(settings.url, lastFailure))
            }
        default:
            reject(request, with: .connectionFailed(settings.url, lastFailure))
        }
    }

    private func reject(_ request: Request, with error: RedisError) {
        switch request {
        case .command(_, let caller), .askingCommand(_, let caller):
            pending.subtract(1, ordering: .relaxed)
            caller.continuation.resume(returning: .failure(error))
        case .ping(let probe):
            probe(false)
        }
    }

    /// Formats a command into hiredis's output buffer and gives it a place in the reply queue.
    private func append(_ command: RedisCommand, for waiter: Waiter, timeout: Duration?) {
        guard let context else { return }
        let before = sdslen(context.pointee.obuf)
        guard command.append(to: context) else {
            // Only out of memory. Queued first, so that dropping the connection fails this waiter too.
            queue.append(waiter, bytes: 0, timeout: timeout)
            disconnect(.connectionFailed, "hiredis ran out of memory formatting a command", now: .now)
            return
        }
        queue.append(waiter, bytes: sdslen(context.pointee.obuf) - before, timeout: timeout)
        commandsAppended.add(1, ordering: .relaxed)
    }

    /// Writes as much of the output buffer as the socket takes, one `write()` per `redisBufferWrite`, and
    /// starts the clock of every command it completes.
    private func flush() {
        guard let context else { return }
        switch phase {
        case .handshaking, .ready: break
        case .waiting, .connecting: return
        }
        while sdslen(context.pointee.obuf) > 0 {
            let before = sdslen(context.pointee.obuf)
            var done: Int32 = 0
            let result = redisBufferWrite(context, &done)
            socketWrites.add(1, ordering: .relaxed)
            guard result == REDIS_OK else {
                Self.consumePendingSIGPIPE()
                disconnect(.connectionFailed, "writing to Redis failed: \(Self.errorText(context))", now: .now)
                return
            }
            let remaining = sdslen(context.pointee.obuf)
            queue.markSent(writtenBytes: queue.appendedBytes - remaining, at: .now)
            if remaining == before { return }  // the socket is full: poll() reports when it drains
        }
    }

    private struct PollEvents {
        var wakeup = false
        var socket: Int16?
    }

    private func poll(timeout milliseconds: Int32) -> PollEvents {
        var descriptors = [pollfd(fd: wakeup.readEnd, events: Int16(POLLIN), revents: 0)]
        if let context {
            var interest = Int16(POLLIN)
            if case .connecting = phase {
                interest = Int16(POLLOUT)
            } else if sdslen(context.pointee.obuf) > 0 {
                interest |= Int16(POLLOUT)
            }
            descriptors.append(pollfd(fd: context.pointee.fd, events: interest, revents: 0))
        }
        let ready = Glibc.poll(&descriptors, nfds_t(descriptors.count), milliseconds)
        guard ready > 0 else { return PollEvents() }
        var events = PollEvents()
        events.wakeup = descriptors[0].revents != 0
        if descriptors.count > 1, descriptors[1].revents != 0 { events.socket = descriptors[1].revents }
        return events
    }

    /// How long poll() may sleep: until the nearest deadline, retry or health check, and never more than 1 s.
    private func pollTimeout(now: ContinuousClock.Instant) -> Int32 {
        var nearest = now + .seconds(1)
        func consider(_ instant: ContinuousClock.Instant?) {
            if let instant, instant < nearest { nearest = instant }
        }
        switch phase {
        case .waiting(let until): consider(until)
        case .connecting(let deadline), .handshaking(let deadline): consider(deadline)
        case .ready:
            consider(nextHealthCheck)
            consider(queue.nextDeadline)
            consider(queue.oldestSentAt.map { $0 + settings.stuckAfter })
        }
        guard nearest > now else { return 0 }
        // Round up, so the loop does not wake a hair early and spin until the deadline.
        let duration = now.duration(to: nearest)
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return Int32(milliseconds + 1)
    }

    private func handleSocket(_ revents: Int16, now: ContinuousClock.Instant) {
        switch phase {
        case .connecting(let deadline):
            finishConnecting(deadline: deadline, now: now)
        case .handshaking, .ready:
            if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readReplies(now: now) }
        case .waiting:
            break
        }
    }

    /// Reads until the socket has nothing left (a read that does not fill hiredis's 16 KiB buffer), so that no
    /// reply already waiting in the kernel is judged late by the deadline check that follows.
    private func readReplies(now: ContinuousClock.Instant) {
        while let context, let reader = context.pointee.reader {
            let buffered = reader.pointee.len
            guard redisBufferRead(context) == REDIS_OK else {
                disconnect(.connectionFailed, "reading from Redis failed: \(Self.errorText(context))", now: now)
                return
            }
            let received = reader.pointee.len - buffered
            takeReplies(now: now)
            if received < 16 * 1024 { return }
        }
    }

    private func takeReplies(now: ContinuousClock.Instant) {
        // `deliver` may drop the connection (a refused handshake), so the context is looked up each time.
        while let context {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(context, &raw) == REDIS_OK else {
                disconnect(.protocolError, "Redis sent a reply hiredis cannot parse: \(Self.errorText(context))", now: now)
                return
            }
            guard let raw else { return }
            let value = RedisValue(reply: raw.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            guard let entry = queue.popFirst() else {
                disconnect(.protocolError, "Redis sent a reply to no command", now: now)
                return
            }
            deliver(value, to: entry, now: now)
        }
    }

    private func deliver(_ value: RedisValue, to entry: ReplyQueue<Waiter>.Entry, now: ContinuousClock.Instant) {
        switch entry.waiter {
        case .caller(let caller):
            pending.subtract(1, ordering: .relaxed)
            caller.continuation.resume(returning: .success(value))
        case .late(let handler):
            pending.subtract(1, ordering: .relaxed)
            lateReplies.add(1, ordering: .relaxed)
            handler?(value)
        case .healthCheck(let probe):
            let answered = value == .simpleString("PONG")
            healthyValue.store(answered, ordering: .relaxed)
            if probe == nil { backgroundCheckOutstanding = false }
            probe?(answered)
        case .expiredHealthCheck(let background):
            if background { backgroundCheckOutstanding = false }
        case .discarded:
            break
        case .handshake(let step, let last):
            if case .error(let message) = value {
                disconnect(.connectionFailed, Self.handshakeFailure(step: step, message: message), now: now)
            } else if last {
                // The handshake's PING is the first health check: healthy only if it came back within the
                // operation timeout, though the connect timeout bounds it.
                becomeReady(healthy: entry.sentAt.map { $0 + settings.operationTimeout >= now } ?? true, now: now)
            }
        }
    }

    private func enforceDeadlines(now: ContinuousClock.Instant) {
        switch phase {
        case .waiting:
            break
        case .connecting(let deadline) where deadline <= now:
            disconnect(.connectionFailed, "connecting timed out after \(RedisError.format(settings.connectTimeout))", now: now)
        case .handshaking(let deadline) where deadline <= now:
            disconnect(
                .connectionFailed,
                "Redis accepted the connection but did not answer the handshake (AUTH, SELECT, PING) within "
                    + "\(RedisError.format(settings.connectTimeout)): is it stopped or overloaded?",
                now: now)
        case .connecting, .handshaking:
            break
        case .ready:
            queue.expire(now: now) { waiter in
                switch waiter {
                case .caller(let caller):
                    timeouts.add(1, ordering: .relaxed)
                    waiter = .late(caller.onLateReply)
                    caller.continuation.resume(returning: .failure(.timeout(settings.url, after: settings.operationTimeout)))
                case .healthCheck(let probe):
                    healthyValue.store(false, ordering: .relaxed)
                    waiter = .expiredHealthCheck(background: probe == nil)
                    probe?(false)
                case .late, .expiredHealthCheck, .handshake, .discarded:
                    break
                }
            }
            if let oldest = queue.oldestSentAt, oldest + settings.stuckAfter <= now {
                disconnect(
                    .connectionFailed,
                    "Redis owed a reply for more than \(RedisError.format(settings.stuckAfter)); the connection was "
                        + "dropped as stuck",
                    now: now)
            }
        }
    }

    private func sendBackgroundHealthCheckIfDue(now: ContinuousClock.Instant) {
        guard case .ready = phase, nextHealthCheck <= now else { return }
        nextHealthCheck = now + settings.healthCheckInterval
        // One at a time: while Redis is silent, checks would only pile up behind each other.
        guard !backgroundCheckOutstanding else { return }
        backgroundCheckOutstanding = true
        append(RedisCommand(internal: ["PING"]), for: .healthCheck(probe: nil), timeout: settings.operationTimeout)
    }

    // MARK: Connecting

    private func startConnecting(now: ContinuousClock.Instant) {
        // Name resolution inside happens on this thread; it blocks nothing but this connection.
        // Ownership (see `context`): this thread alone uses the new context and frees it exactly once.
        guard let context = redisConnectNonBlock(settings.url.host, Int32(settings.url.port)) else {
            disconnect(.connectionFailed, "hiredis could not allocate a context", now: now)
            return
        }
        self.context = context
        openContexts.add(1, ordering: .relaxed)
        guard context.pointee.err == 0 else {
            disconnect(.connectionFailed, Self.errorText(context), now: now)
            return
        }
        RedisValue.installNullKindMarker(on: context, functions: replyFunctions)
        _ = redisEnableKeepAlive(context)
        phase = .connecting(deadline: now + settings.connectTimeout)
    }

    /// The socket became writable: the TCP connect finished, well or not.
    private func finishConnecting(deadline: ContinuousClock.Instant, now: ContinuousClock.Instant) {
        guard let context else { return }
        var socketError: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(context.pointee.fd, SOL_SOCKET, SO_ERROR, &socketError, &length) != 0 { socketError = errno }
        guard socketError == 0 else {
            disconnect(.connectionFailed, String(cString: strerror(socketError)), now: now)
            return
        }
        // Pipelined, but no caller command goes out before the last of these is answered.
        var steps: [[String]] = []
        let url = settings.url
        if let password = url.password {
            steps.append(url.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if url.database != 0 { steps.append(["SELECT", String(url.database)]) }
        steps.append(["PING"])
        phase = .handshaking(deadline: deadline)
        for (position, step) in steps.enumerated() {
            let label = step[0] == "AUTH" ? "AUTH" : step.joined(separator: " ")
            append(RedisCommand(internal: step), for: .handshake(step: label, last: position == steps.count - 1), timeout: nil)
        }
    }

    private func becomeReady(healthy: Bool, now: ContinuousClock.Instant) {
        phase = .ready
        healthyValue.store(healthy, ordering: .relaxed)
        statusValue.store(Status.up.rawValue, ordering: .releasing)
        connects.add(1, ordering: .relaxed)
        backoff = settings.reconnectBackoff.lowerBound
        nextHealthCheck = now + settings.healthCheckInterval
        if failuresInARow > 0 {
            logger.info("Redis connection is back", metadata: ["failed_attempts": "\(failuresInARow)"])
        } else {
            logger.debug("Redis connection is up")
        }
        failuresInARow = 0
        let waiting = held
        held = []
        for request in waiting { accept(request) }
    }

    /// Frees the context, fails everything that waited on it, and schedules the next attempt.
    private func disconnect(_ code: RedisError.Code, _ reason: String, now: ContinuousClock.Instant) {
        if let context {
            redisFree(context)
            self.context = nil
            openContexts.subtract(1, ordering: .relaxed)
        }
        let wasUp = status == .up
        lastFailureValue.withLock { $0 = reason }
        // Published before anyone is failed, so a caller that retries at once is refused without queueing here.
        statusValue.store(Status.down.rawValue, ordering: .releasing)
        healthyValue.store(false, ordering: .relaxed)
        backgroundCheckOutstanding = false
        phase = .waiting(until: now + backoff)
        let delay = backoff
        backoff = min(backoff * 2, settings.reconnectBackoff.upperBound)
        failuresInARow += 1

        let error = code == .protocolError ? RedisError.protocolError(reason) : .connectionFailed(settings.url, reason)
        let waiting = held
        held = []
        for request in waiting { reject(request, with: error) }
        failQueued(with: error)

        let metadata: Logger.Metadata = ["reason": "\(reason)", "retry_in": "\(RedisError.format(delay))"]
        if wasUp {
            logger.warning("Redis connection lost; reconnecting in the background", metadata: metadata)
        } else if failuresInARow == 1 {
            logger.warning("cannot connect to Redis; retrying in the background", metadata: metadata)
        } else {
            logger.debug("Redis connect attempt failed", metadata: metadata)
        }
    }

    /// Every command written but unanswered fails with `error`; nothing after this reads their replies.
    private func failQueued(with error: RedisError) {
        for entry in queue.removeAll() {
            switch entry.waiter {
            case .caller(let caller):
                pending.subtract(1, ordering: .relaxed)
                caller.continuation.resume(returning: .failure(error))
            case .late:
                pending.subtract(1, ordering: .relaxed)
            case .healthCheck(let probe):
                probe?(false)
            case .expiredHealthCheck, .handshake, .discarded:
                break
            }
        }
    }

    private func close() {
        statusValue.store(Status.closed.rawValue, ordering: .releasing)
        healthyValue.store(false, ordering: .relaxed)
        let leftovers = inbox.withLock { inbox in
            defer { inbox.requests = [] }
            return inbox.requests
        }
        for request in held + leftovers { reject(request, with: .closed) }
        held = []
        failQueued(with: .closed)
        if let context {
            redisFree(context)
            self.context = nil
            openContexts.subtract(1, ordering: .relaxed)
        }
        replyFunctions.deallocate()
        wakeup.closeBothEnds()
    }

    // MARK: C details

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "error \(context.pointee.err)" : text
    }

    private static func handshakeFailure(step: String, message: String) -> String {
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

    /// hiredis writes with `write()`, which raises SIGPIPE on a connection the server closed; the default action
    /// would kill the process. Blocked on this thread only, the signal stays pending and `write()` returns EPIPE.
    private static func blockSIGPIPE() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
    }

    /// Takes the pending SIGPIPE a failed write left on this thread, so it is never delivered later.
    private static func consumePendingSIGPIPE() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGPIPE)
        var noWait = timespec(tv_sec: 0, tv_nsec: 0)
        while sigtimedwait(&signals, nil, &noWait) == SIGPIPE {}
    }
}
