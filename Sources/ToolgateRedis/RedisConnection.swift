import CHiredis
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One non-blocking hiredis context and the thread that owns it, for its whole life across reconnects: the thin
/// I/O loop that drives a `RedisConnectionStateMachine`, which decides everything else.
///
/// hiredis contexts are not thread-safe and Redis I/O must never block a Swift concurrency thread, so one
/// plain thread per connection does all of it: callers hand requests over through a mutex-protected inbox and
/// a wakeup pipe; the thread feeds them to the state machine, appends what it says to write
/// (`redisAppendCommandArgv`), writes the whole buffer at once (`redisBufferWrite`), `poll()`s the socket and the
/// pipe, reads, and hands each reply to the state machine, then carries out its actions (resuming callers in
/// reply order, reconnecting, failing what waited).
///
/// `rediss://`: hiredis still opens the socket, formats commands into its output buffer and parses replies, but the
/// bytes go through OpenSSL (`RedisTLSSession`) instead of `redisBufferWrite` / `redisBufferRead`, after a
/// non-blocking TLS handshake that the same `poll()` loop drives.
///
/// `@unchecked Sendable`: the state under "Owned by the connection thread" is touched by that thread alone;
/// whatever other threads read or write is a `Mutex` or an `Atomic`.
final class RedisConnection: @unchecked Sendable {
    typealias Status = Machine.Status

    struct Settings: Sendable {
        var url: RedisURL
        var operationTimeout: Duration
        var connectTimeout: Duration
        var reconnectBackoff: ClosedRange<Duration>
        var healthCheckInterval: Duration
        /// How long the oldest reply may be owed before the connection counts as stuck and is replaced.
        var stuckAfter: Duration
        /// The TLS settings for a `rediss://` URL (required then); unused for `redis://`.
        var tls: RedisTLSContext? = nil
        /// Sent with `CLIENT SETNAME` once each connection is up (its reply ignored: a refusal costs nothing).
        var clientName: String? = nil
    }

    typealias LateReplyHandler = @Sendable (RedisValue) -> Void

    struct Caller: Sendable {
        enum Receiver: Sendable {
            case continuation(CheckedContinuation<Result<RedisValue, RedisError>, Never>)
            /// The second command of a pair, whose reply its caller reads later (`ReplyPromise`).
            case handler(@Sendable (Result<RedisValue, RedisError>) -> Void)
        }
        let receiver: Receiver
        let onLateReply: LateReplyHandler?

        init(continuation: CheckedContinuation<Result<RedisValue, RedisError>, Never>, onLateReply: LateReplyHandler?) {
            receiver = .continuation(continuation)
            self.onLateReply = onLateReply
        }

        init(handler: @escaping @Sendable (Result<RedisValue, RedisError>) -> Void) {
            receiver = .handler(handler)
            onLateReply = nil
        }

        func resume(returning result: Result<RedisValue, RedisError>) {
            switch receiver {
            case .continuation(let continuation): continuation.resume(returning: result)
            case .handler(let handler): handler(result)
            }
        }
    }

    typealias Probe = @Sendable (Bool) -> Void
    typealias Machine = RedisConnectionStateMachine<Caller, Probe>

    enum Request: Sendable {
        case command(RedisCommand, Caller)
        /// The same, written right after `ASKING` with nothing between (a cluster's `ASK` redirect).
        case askingCommand(RedisCommand, Caller)
        /// An explicit health check; the probe learns whether PONG came back within the operation timeout.
        case ping(Probe)
        /// Two commands written back to back with nothing between, each with its own caller (see the machine's `.pair`).
        case pair(Machine.Pair)

        var forMachine: Machine.Request {
            switch self {
            case .command(let command, let caller): .command(command, caller, asking: false)
            case .askingCommand(let command, let caller): .command(command, caller, asking: true)
            case .ping(let probe): .ping(probe)
            case .pair(let pair): .pair(pair)
            }
        }
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
    /// `redisFree` exactly once, in `closeContext` or when the thread ends, which also sets it back to nil.
    private var context: UnsafeMutablePointer<redisContext>?
    /// `rediss://`: TLS on `context`'s socket. Ownership: made once the TCP connect is done, freed (set to nil) just
    /// before `context`, whose socket it uses.
    private var tls: RedisTLSSession?
    /// What the TLS handshake waits for: POLLIN or POLLOUT.
    private var tlsInterest = Int16(POLLOUT)
    /// `SSL_write` asked for a read first (a TLS record such as a key update must be read): until a read happens,
    /// waiting for POLLOUT would only spin.
    private var tlsWriteWaitsForRead = false
    /// Where TLS reads land before they are fed to hiredis's reader. Ownership: the thread's, deallocated at its end.
    private let tlsReadBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 1)
    /// The reader's constructor table (see `RedisValue.installNullKindMarker`). Ownership: allocated here,
    /// used by the thread's successive contexts, deallocated by the thread after its last `redisFree`.
    private let replyFunctions = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
    private var machine: Machine

    init(index: Int, settings: Settings, logger: Logger) {
        self.index = index
        self.settings = settings
        var logger = logger
        logger[metadataKey: "redis"] = "\(settings.url.host):\(settings.url.port)"
        logger[metadataKey: "redis.connection"] = "\(index)"
        self.logger = logger
        machine = Machine(settings: settings, now: .now)
        let thread = Thread { [self] in run() }
        thread.start()
    }

    var status: Status { Status(rawValue: statusValue.load(ordering: .acquiring)) ?? .closed }
    /// The last health check (PING) answered within the operation timeout.
    var isHealthy: Bool { healthyValue.load(ordering: .relaxed) }
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
        if !accepted { failClosed(request) }
    }

    /// A request that came after shutdown, or was still in the inbox when the thread ended.
    private func failClosed(_ request: Request) {
        switch request {
        case .command(_, let caller), .askingCommand(_, let caller):
            pending.subtract(1, ordering: .relaxed)
            caller.resume(returning: .failure(.closed))
        case .ping(let probe):
            probe(false)
        case .pair(let pair):
            pending.subtract(2, ordering: .relaxed)
            pair.firstCaller.resume(returning: .failure(.closed))
            pair.secondCaller.resume(returning: .failure(.closed))
        }
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
            perform(machine.tick(now: now))
            for request in requests { perform(machine.accept(request.forMachine, now: now)) }
            perform(machine.healthCheckIfDue(now: now))
            flush()

            let events = poll(timeout: pollTimeout(now: now))
            now = .now
            if events.wakeup { wakeup.drain() }
            if let socket = events.socket { handleSocket(socket, now: now) }
            // Replies are read before deadlines are judged: a reply that arrived while this thread was
            // starved of CPU is still a reply in time.
            perform(machine.enforceDeadlines(now: .now))
        }
        let leftovers = inbox.withLock { inbox in
            defer { inbox.requests = [] }
            return inbox.requests
        }
        perform(machine.close())
        for request in leftovers { failClosed(request) }
        replyFunctions.deallocate()
        tlsReadBuffer.deallocate()
        wakeup.closeBothEnds()
    }

    private func takeRequests() -> [Request]? {
        inbox.withLock { inbox in
            guard !inbox.closing else { return nil }
            inbox.wakeupPending = false
            defer { inbox.requests = [] }
            return inbox.requests
        }
    }

    /// Publishes what other threads read, then carries out the state machine's actions in order. Published first,
    /// so a caller failed here that retries at once already sees the connection down and is refused by the
    /// client's routing instead of queueing behind a dead connection.
    private func perform(_ actions: [Machine.Action]) {
        publish()
        for action in actions {
            switch action {
            case .connect:
                startConnecting()
            case .startTLS:
                startTLS()
            case .append(let command):
                guard let context else { continue }  // the connection failed earlier in this batch
                let before = sdslen(context.pointee.obuf)
                guard command.append(to: context) else {
                    perform(machine.failed(.connectionFailed, "hiredis ran out of memory formatting a command", now: .now))
                    continue
                }
                assert(sdslen(context.pointee.obuf) - before == command.encodedLength, "encodedLength differs from hiredis")
                commandsAppended.add(1, ordering: .relaxed)
            case .closeContext:
                freeContext()
            case .resume(let caller, let result):
                pending.subtract(1, ordering: .relaxed)
                caller.resume(returning: result)
            case .timedOut(let caller, let error):
                // Still pending: the command stays queued, now late.
                timeouts.add(1, ordering: .relaxed)
                caller.resume(returning: .failure(error))
            case .lateReply(let caller, let value):
                pending.subtract(1, ordering: .relaxed)
                lateReplies.add(1, ordering: .relaxed)
                caller.onLateReply?(value)
            case .dropLate:
                pending.subtract(1, ordering: .relaxed)
            case .probe(let probe, let answered):
                probe(answered)
            case .connected(let failures):
                connects.add(1, ordering: .relaxed)
                if failures > 0 {
                    logger.info("Redis connection is back", metadata: ["failed_attempts": "\(failures)"])
                } else {
                    logger.debug("Redis connection is up")
                }
            case .disconnected(let wasUp, let failuresInARow, let reason, let delay):
                let metadata: Logger.Metadata = ["reason": "\(reason)", "retry_in": "\(RedisError.format(delay))"]
                if wasUp {
                    logger.warning("Redis connection lost; reconnecting in the background", metadata: metadata)
                } else if failuresInARow == 1 {
                    logger.warning("cannot connect to Redis; retrying in the background", metadata: metadata)
                } else {
                    logger.debug("Redis connect attempt failed", metadata: metadata)
                }
            }
        }
        publish()
    }

    private func publish() {
        lastFailureValue.withLock { $0 = machine.lastFailure }
        healthyValue.store(machine.isHealthy, ordering: .relaxed)
        statusValue.store(machine.status.rawValue, ordering: .releasing)
    }

    /// Writes as much of the output buffer as the socket takes, one `write()` per `redisBufferWrite`, and
    /// starts the clock of every command it completes.
    private func flush() {
        guard machine.mayWrite else { return }
        if tls != nil { return flushTLS() }
        while let context, sdslen(context.pointee.obuf) > 0 {
            let before = sdslen(context.pointee.obuf)
            var done: Int32 = 0
            let result = redisBufferWrite(context, &done)
            socketWrites.add(1, ordering: .relaxed)
            guard result == REDIS_OK else {
                Self.consumePendingSIGPIPE()
                perform(machine.failed(.connectionFailed, "writing to Redis failed: \(Self.errorText(context))", now: .now))
                return
            }
            let remaining = sdslen(context.pointee.obuf)
            machine.wrote(remainingBytes: remaining, now: .now)
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
            if machine.isConnecting {
                interest = Int16(POLLOUT)
            } else if machine.isSecuring {
                interest = tlsInterest
            } else if sdslen(context.pointee.obuf) > 0, !tlsWriteWaitsForRead {
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

    /// How long poll() may sleep: until the machine's next wakeup, rounded up so the loop does not wake a hair
    /// early and spin until the deadline.
    private func pollTimeout(now: ContinuousClock.Instant) -> Int32 {
        let nearest = machine.nextWakeup(now: now)
        guard nearest > now else { return 0 }
        let duration = now.duration(to: nearest)
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return Int32(milliseconds + 1)
    }

    private func handleSocket(_ revents: Int16, now: ContinuousClock.Instant) {
        if machine.isConnecting {
            finishConnecting(now: now)
        } else if machine.isSecuring {
            continueTLSHandshake(now: now)
        } else if machine.mayWrite, revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            readReplies(now: now)
        }
    }

    /// Reads until the socket has nothing left (a read that does not fill hiredis's 16 KiB buffer), so that no
    /// reply already waiting in the kernel is judged late by the deadline check that follows.
    private func readReplies(now: ContinuousClock.Instant) {
        if tls != nil { return readRepliesTLS(now: now) }
        while let context, let reader = context.pointee.reader {
            let buffered = reader.pointee.len
            guard redisBufferRead(context) == REDIS_OK else {
                perform(machine.failed(.connectionFailed, withPlaintextHint("reading from Redis failed: \(Self.errorText(context))"), now: now))
                return
            }
            let received = reader.pointee.len - buffered
            takeReplies(now: now)
            if received < 16 * 1024 { return }
        }
    }

    private func takeReplies(now: ContinuousClock.Instant) {
        // A reply may drop the connection (a refused handshake), so the context is looked up each time.
        while let context {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(context, &raw) == REDIS_OK else {
                perform(machine.failed(.protocolError, withPlaintextHint("Redis sent a reply hiredis cannot parse: \(Self.errorText(context))"), now: now))
                return
            }
            guard let raw else { return }
            let value = RedisValue(reply: raw.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            perform(machine.received(value, now: now))
        }
    }

    // MARK: Connecting

    private func startConnecting() {
        // Name resolution inside happens on this thread; it blocks nothing but this connection.
        // Ownership (see `context`): this thread alone uses the new context and frees it exactly once.
        guard let context = redisConnectNonBlock(settings.url.host, Int32(settings.url.port)) else {
            perform(machine.failed(.connectionFailed, "hiredis could not allocate a context", now: .now))
            return
        }
        self.context = context
        openContexts.add(1, ordering: .relaxed)
        guard context.pointee.err == 0 else {
            perform(machine.failed(.connectionFailed, Self.errorText(context), now: .now))
            return
        }
        RedisValue.installNullKindMarker(on: context, functions: replyFunctions)
        _ = redisEnableKeepAlive(context)
    }

    /// The socket became writable: the TCP connect finished, well or not.
    private func finishConnecting(now: ContinuousClock.Instant) {
        guard let context else { return }
        var socketError: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(context.pointee.fd, SOL_SOCKET, SO_ERROR, &socketError, &length) != 0 { socketError = errno }
        perform(machine.connectFinished(socketError: socketError == 0 ? nil : String(cString: strerror(socketError)), now: now))
    }

    private func freeContext() {
        tls = nil
        tlsWriteWaitsForRead = false
        guard let context else { return }
        redisFree(context)
        self.context = nil
        openContexts.subtract(1, ordering: .relaxed)
    }

    // MARK: TLS

    /// The TCP connect is done: TLS goes on its socket, and the handshake starts at once.
    private func startTLS() {
        guard let context else { return }
        guard let tlsContext = settings.tls else {
            perform(machine.failed(.connectionFailed, "rediss:// needs TLS settings, and none were given", now: .now))
            return
        }
        do {
            tls = try RedisTLSSession(
                context: tlsContext, socket: context.pointee.fd, serverName: tlsContext.options.serverName ?? settings.url.host)
        } catch {
            perform(machine.failed(.connectionFailed, error.message, now: .now))
            return
        }
        continueTLSHandshake(now: .now)
    }

    private func continueTLSHandshake(now: ContinuousClock.Instant) {
        guard let tls else { return }
        switch tls.handshake() {
        case .done:
            perform(machine.secured(failure: nil, now: now))
        case .wantRead:
            tlsInterest = Int16(POLLIN)
        case .wantWrite:
            tlsInterest = Int16(POLLOUT)
        case .failed(let reason):
            Self.consumePendingSIGPIPE()
            perform(machine.secured(failure: reason, now: now))
        }
    }

    /// `flush()` over TLS: hiredis's output buffer goes through `SSL_write`, and what was written is cut from it.
    private func flushTLS() {
        while let context, let tls, sdslen(context.pointee.obuf) > 0 {
            let buffer = context.pointee.obuf!
            let result = tls.write(UnsafeRawPointer(buffer), count: sdslen(buffer))
            socketWrites.add(1, ordering: .relaxed)
            switch result {
            case .transferred(let count):
                sdsrange(buffer, Int32(count), -1)
                machine.wrote(remainingBytes: sdslen(buffer), now: .now)
            case .wantWrite:
                return  // poll() reports when the socket can take more
            case .wantRead:
                tlsWriteWaitsForRead = true  // poll() reports the bytes TLS needs first
                return
            case .closed(let reason), .failed(let reason):
                Self.consumePendingSIGPIPE()
                perform(machine.failed(.connectionFailed, withClientCertificateHint(reason), now: .now))
                return
            }
        }
    }

    /// `readReplies` over TLS: everything TLS has decrypted, until it would block, fed to hiredis's reader.
    private func readRepliesTLS(now: ContinuousClock.Instant) {
        while let context, let tls {
            let result = tls.read(into: tlsReadBuffer)
            tlsWriteWaitsForRead = false
            switch result {
            case .transferred(let count):
                guard redisReaderFeed(
                    context.pointee.reader, tlsReadBuffer.baseAddress!.assumingMemoryBound(to: CChar.self), count) == REDIS_OK else {
                    perform(machine.failed(.protocolError, "hiredis could not take the bytes Redis sent", now: now))
                    return
                }
                takeReplies(now: now)
            case .wantRead, .wantWrite:
                return
            case .closed(let reason), .failed(let reason):
                perform(machine.failed(.connectionFailed, withClientCertificateHint(reason), now: now))
                return
            }
        }
    }

    /// Under TLS 1.3 the client's handshake is done before the server has checked the client certificate, so a
    /// server that wants one (and got none) ends the connection during the Redis handshake, with an alert that a
    /// connection reset may swallow: such a failure gets the hint when toolgate sent no certificate.
    private func withClientCertificateHint(_ reason: String) -> String {
        guard machine.isHandshaking, settings.tls?.options.certificateFile == nil, !reason.contains("--redis-cert-file") else {
            return reason
        }
        return "\(reason) (the server may require a client certificate: give --redis-cert-file and --redis-key-file)"
    }

    /// A plaintext connection refused before the handshake was answered: perhaps the port is TLS-only.
    private func withPlaintextHint(_ reason: String) -> String {
        machine.isPlaintextHandshake ? "\(reason) (the server may want TLS: use rediss://)" : reason
    }

    // MARK: C details

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "error \(context.pointee.err)" : text
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
