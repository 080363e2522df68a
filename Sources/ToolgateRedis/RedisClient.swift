import Logging
import Synchronization

/// The Redis client every toolgate request shares: a few pipelined connections, each on its own thread.
///
/// Commands from concurrent callers are batched onto the connection with the fewest unanswered commands and
/// written together; replies come back in order and resume their callers. Nothing here blocks a Swift
/// concurrency thread. Connections reconnect in the background; while none is up, calls fail fast with
/// `.connectionFailed` instead of queueing, so a fail-closed or fail-open decision is taken at once.
public final class RedisClient: Sendable {
    public struct Configuration: Sendable {
        public var url: RedisURL
        /// A small number, shared by all callers: pipelining, not connection count, gives throughput.
        public var connections: Int
        /// The Redis round trip of one command, from the moment its bytes are handed to the socket.
        public var operationTimeout: Duration
        /// TCP connect plus the handshake (AUTH, SELECT, PING).
        public var connectTimeout: Duration
        /// The first delay before reconnecting ... the cap; the delay doubles after each failed attempt.
        public var reconnectBackoff: ClosedRange<Duration>
        /// How often each connection sends its background PING, which keeps `isHealthy` current.
        public var healthCheckInterval: Duration
        /// TLS settings for `rediss://` URLs; nil there means verification against the system CA store.
        public var tls: RedisTLSContext?
        /// `CLIENT SETNAME` on every connection (see `RedisClientName`), so `CLIENT LIST` shows who is who.
        public var clientName: String?
        /// How long a connection may owe its oldest reply before it is dropped as stuck; nil: four operation timeouts.
        public var stuckAfter: Duration?

        public init(
            url: RedisURL,
            connections: Int = 2,
            operationTimeout: Duration = .milliseconds(100),
            connectTimeout: Duration = .seconds(1),
            reconnectBackoff: ClosedRange<Duration> = .milliseconds(50) ... .seconds(1),
            healthCheckInterval: Duration = .milliseconds(250)
        ) {
            self.url = url
            self.connections = connections
            self.operationTimeout = operationTimeout
            self.connectTimeout = connectTimeout
            self.reconnectBackoff = reconnectBackoff
            self.healthCheckInterval = healthCheckInterval
        }
    }

    /// Counters since the client started, summed over its connections; for metrics, benchmarks and tests.
    public struct Statistics: Sendable, Equatable {
        /// Commands appended to hiredis's output buffers, the client's own PINGs and handshakes included.
        public var commands: Int
        /// `write()` calls on Redis sockets: `commands / writes` is the average batch.
        public var writes: Int
        /// Successful handshakes, the first ones included.
        public var connects: Int
        public var timeouts: Int
        /// Replies that arrived after their caller failed with `.timeout`.
        public var lateReplies: Int
        /// `commands` per connection, in connection order: shows how the load was spread.
        public var commandsPerConnection: [Int]
    }

    public let configuration: Configuration
    private let connections: [RedisConnection]
    /// Where the search for the least busy connection starts, rotated so that ties are spread too.
    private let nextStart = Atomic<UInt>(0)

    /// Starts connecting at once, in the background. Calls made while the first attempt is in flight wait for it
    /// (at most the connect timeout); after a failure they fail fast until a connection is back.
    public init(configuration: Configuration, logger: Logger) {
        precondition(configuration.connections >= 1, "a Redis client needs at least one connection")
        precondition(configuration.operationTimeout > .zero, "the Redis operation timeout must be positive")
        precondition(configuration.reconnectBackoff.lowerBound > .zero, "the reconnect backoff must be positive")
        self.configuration = configuration
        let settings = RedisConnection.Settings(
            url: configuration.url,
            operationTimeout: configuration.operationTimeout,
            connectTimeout: configuration.connectTimeout,
            reconnectBackoff: configuration.reconnectBackoff,
            healthCheckInterval: configuration.healthCheckInterval,
            stuckAfter: configuration.stuckAfter ?? configuration.operationTimeout * 4,
            tls: configuration.url.usesTLS ? configuration.tls ?? RedisTLSContext.systemDefault : nil,
            clientName: configuration.clientName)
        connections = (0..<configuration.connections).map { RedisConnection(index: $0, settings: settings, logger: logger) }
    }

    deinit {
        shutdown()
    }

    /// One command, pipelined with other callers' commands on a shared connection. Arguments are binary-safe.
    /// A Redis error reply is returned as `.error`, not thrown.
    ///
    /// `onLateReply` is called (on an arbitrary thread; keep it short, it runs on the connection's loop) if the
    /// reply arrives after this call already failed with `.timeout`: the command ran after all. If the connection
    /// is lost instead (or dropped as stuck), nothing is called: whether a written command ran is then unknown,
    /// both for a timed-out call and for one that fails with `.connectionFailed`.
    ///
    /// Commands that would break a shared connection (MULTI/EXEC, SELECT, AUTH, SUBSCRIBE, ...) fail with
    /// `.protocolError` without being sent. Cancelling the calling task does not cut the call short; the
    /// operation timeout bounds it.
    ///
    /// `asking`: written right after `ASKING` on the same connection, as a cluster's `ASK` redirect requires.
    public func send(
        _ arguments: [[UInt8]], asking: Bool = false, onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(RedisError) -> RedisValue {
        let command = try RedisCommand(arguments)
        let connection = try route()
        connection.pending.add(1, ordering: .relaxed)
        let result = await withCheckedContinuation { continuation in
            let caller = RedisConnection.Caller(continuation: continuation, onLateReply: onLateReply)
            connection.submit(asking ? .askingCommand(command, caller) : .command(command, caller))
        }
        return try result.get()
    }

    /// `arguments`, then `WAIT replicas timeout` written right behind it on the same connection, nothing between:
    /// `WAIT` counts the writes of the connection it runs on. The first reply is returned; the `WAIT` reply comes
    /// through the promise, which only a caller that wrote something needs to read. `WAIT` blocks its connection on
    /// the server for up to `timeout`, so its own deadline is `timeout` plus the operation timeout.
    public func send(
        _ arguments: [[UInt8]], thenWaitFor replicas: Int, timeout: Duration, asking: Bool = false,
        onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(RedisError) -> (reply: RedisValue, replicated: ReplyPromise) {
        let command = try RedisCommand(arguments)
        let milliseconds = max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let wait = RedisCommand(internal: ["WAIT", String(replicas), String(milliseconds)])
        let connection = try route()
        let promise = ReplyPromise()
        connection.pending.add(2, ordering: .relaxed)
        let result = await withCheckedContinuation { continuation in
            let pair = RedisConnection.Machine.Pair(
                first: command, firstCaller: RedisConnection.Caller(continuation: continuation, onLateReply: onLateReply),
                second: wait, secondCaller: RedisConnection.Caller(handler: { promise.fulfil($0) }),
                secondTimeout: timeout + configuration.operationTimeout, asking: asking)
            connection.submit(.pair(pair))
        }
        return (try result.get(), promise)
    }

    /// The same, with each argument sent as its UTF-8 bytes.
    public func send(
        _ arguments: [String], asking: Bool = false, onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(RedisError) -> RedisValue {
        try await send(arguments.map { Array($0.utf8) }, asking: asking, onLateReply: onLateReply)
    }

    /// True while at least one connection is up and its last health check (PING) answered within the operation
    /// timeout. A stopped Redis still accepts TCP connections, so being connected alone proves nothing.
    public var isHealthy: Bool {
        connections.contains { $0.isHealthy }
    }

    /// Why no connection can serve calls, when none can: the last failure of a connection that is down (refused,
    /// AUTH refused, a handshake that timed out), or an unanswered health check.
    public var unavailableReason: String? {
        guard !isHealthy else { return nil }
        return connections.first { $0.status == .down }?.lastFailure
            ?? "Redis at \(configuration.url.host):\(configuration.url.port) did not answer a health check (PING) in time"
    }

    /// Sends PING on every connection and waits for the answers (bounded by the operation timeout). True if at
    /// least one connection got PONG in time: then calls can be served.
    public func ping() async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            for connection in connections {
                group.addTask {
                    await withCheckedContinuation { continuation in
                        connection.submit(.ping { answered in continuation.resume(returning: answered) })
                    }
                }
            }
            var answered = false
            for await result in group { answered = answered || result }
            return answered
        }
    }

    /// Fails every waiting call with `.closed`, closes the connections and ends their threads. Later calls fail
    /// with `.closed`. Idempotent.
    public func shutdown() {
        for connection in connections { connection.shutdown() }
    }

    public var statistics: Statistics {
        Statistics(
            commands: connections.reduce(0) { $0 + $1.commandsAppended.load(ordering: .relaxed) },
            writes: connections.reduce(0) { $0 + $1.socketWrites.load(ordering: .relaxed) },
            connects: connections.reduce(0) { $0 + $1.connects.load(ordering: .relaxed) },
            timeouts: connections.reduce(0) { $0 + $1.timeouts.load(ordering: .relaxed) },
            lateReplies: connections.reduce(0) { $0 + $1.lateReplies.load(ordering: .relaxed) },
            commandsPerConnection: connections.map { $0.commandsAppended.load(ordering: .relaxed) })
    }

    /// hiredis contexts not yet freed, for tests: 0 after shutdown means every context was freed.
    var openContexts: Int {
        connections.reduce(0) { $0 + $1.openContexts.load(ordering: .relaxed) }
    }

    /// The up connection with the fewest unanswered commands; else one still making its first attempt; else fail
    /// fast with the most recent reason.
    private func route() throws(RedisError) -> RedisConnection {
        let start = nextStart.wrappingAdd(1, ordering: .relaxed).oldValue
        var best: RedisConnection?
        var bestPending = Int.max
        var starting: RedisConnection?
        for offset in 0..<connections.count {
            let connection = connections[Int((start &+ UInt(offset)) % UInt(connections.count))]
            switch connection.status {
            case .up:
                let pending = connection.pending.load(ordering: .relaxed)
                if pending < bestPending {
                    best = connection
                    bestPending = pending
                }
            case .starting:
                if starting == nil { starting = connection }
            case .down, .closed:
                break
            }
        }
        if let connection = best ?? starting { return connection }
        if connections.allSatisfy({ $0.status == .closed }) { throw .closed }
        let reason = connections.first { $0.status == .down }?.lastFailure ?? "no connection is up"
        throw .connectionFailed(configuration.url, reason)
    }
}
