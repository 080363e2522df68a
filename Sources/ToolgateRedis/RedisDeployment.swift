import Logging
import RedisScripts
import Synchronization

/// The Redis toolgate talks to: one standalone server, a Redis Cluster, or a master found through Sentinel. Several
/// `--redis` URLs are seeds of a cluster; one URL is found out: a standalone client is used until the server says it
/// is a cluster node (`cluster_enabled:1` in `INFO cluster`, or a `MOVED`/`CROSSSLOT` reply), then toolgate switches
/// to cluster mode. A `redis+sentinel://` URL is Sentinel's.
public final class RedisDeployment: Sendable {
    enum Mode {
        case standalone(RedisClient)
        case cluster(RedisClusterClient)
        case sentinel(RedisSentinelClient)
    }

    private let mode: Mutex<Mode>
    /// `--redis-wait-replicas`: the connections that carry `EVALSHA` + `WAIT` pairs, apart from `mode`'s.
    ///
    /// `WAIT` blocks the connection it runs on, on the server, until the replicas answer or its timeout passes, and
    /// every command pipelined behind it waits as long. Kept on connections of their own, a stalled replica delays
    /// only other waited decisions (each bounded by its own deadline), never the health checks, refunds, approvals
    /// or multi-round states, so the refund of a decision whose `WAIT` failed is not stuck behind the next `WAIT`.
    private let waiting: Mutex<Mode?>
    public let replicaWait: ReplicaWait?
    /// The last error reply to one of `lua/`'s scripts, and when it came: a reachable Redis can still refuse every
    /// call (a full Redis under `noeviction` answers OOM), which PING never shows.
    private let lastScriptError = Mutex<(message: String, at: ContinuousClock.Instant)?>(nil)
    /// How long a script's error reply keeps `problem` set. Successes meanwhile do not clear it: under OOM, counters
    /// that already exist keep working while new ones fail.
    public static let scriptErrorMemory = Duration.seconds(30)
    let configuration: RedisClient.Configuration
    let seeds: [RedisURL]
    let logger: Logger

    /// `--redis-wait-replicas N`: a decision that consumed is admitted only once `WAIT N timeout` says N replicas
    /// hold its write (DESIGN.md section 7).
    public struct ReplicaWait: Sendable {
        public var replicas: Int
        /// `WAIT`'s own timeout argument (toolgate uses `--redis-timeout`).
        public var timeout: Duration
        /// `--fail-mode open`: a decision whose write did not reach enough replicas keeps its charge (the call is
        /// admitted anyway, and on the master it counts); under `closed` the charge is refunded and the call refused.
        public var keepUnreplicatedCharges: Bool
        /// Connections per Redis node for the `EVALSHA` + `WAIT` pairs. Each `WAIT` holds its connection for one
        /// master-to-replica round trip (or until its timeout), so these connections carry one waited decision per
        /// round trip each: more of them than the client's usual two, for throughput, and so a stalled replica
        /// queues fewer decisions behind each `WAIT`.
        public var connections: Int

        public init(replicas: Int, timeout: Duration, keepUnreplicatedCharges: Bool = false, connections: Int = 4) {
            precondition(replicas >= 1, "waiting for replicas needs at least one")
            precondition(connections >= 1, "waiting for replicas needs at least one connection")
            self.replicas = replicas
            self.timeout = timeout
            self.keepUnreplicatedCharges = keepUnreplicatedCharges
            self.connections = connections
        }
    }

    /// `configuration.url` is ignored in favour of `seeds` (`configuration` gives timeouts and connection counts).
    public init(seeds: [RedisURL], configuration: RedisClient.Configuration, logger: Logger, replicaWait: ReplicaWait? = nil) {
        precondition(!seeds.isEmpty, "--redis needs at least one URL")
        var template = configuration
        template.url = seeds[0]
        self.configuration = template
        self.seeds = seeds
        self.logger = logger
        self.replicaWait = replicaWait
        func make(_ template: RedisClient.Configuration) -> Mode {
            seeds.count > 1
                ? .cluster(RedisClusterClient(seeds: seeds, template: template, logger: logger))
                : .standalone(RedisClient(configuration: template, logger: logger))
        }
        mode = Mutex(make(template))
        waiting = Mutex(replicaWait.map { make(Self.waitingTemplate(template, $0)) })
    }

    /// A master found through Sentinel (`redis+sentinel://`). `configuration` gives timeouts and connection counts.
    /// With `replicaWait`, the master's waited decisions go on connections of their own to the same master
    /// (`RedisSentinelClient` makes both whenever the master changes).
    public init(
        sentinel url: RedisSentinelURL, configuration: RedisClient.Configuration, sentinelUsername: String? = nil,
        sentinelPassword: String?, logger: Logger, replicaWait: ReplicaWait? = nil
    ) {
        var template = configuration
        template.url = url.master
        self.configuration = template
        seeds = url.sentinels.map { RedisURL(host: $0.host, port: $0.port) }
        self.logger = logger
        self.replicaWait = replicaWait
        let sentinel = RedisSentinelClient(
            url: url, template: template, waitingTemplate: replicaWait.map { Self.waitingTemplate(template, $0) },
            sentinelUsername: sentinelUsername, sentinelPassword: sentinelPassword, logger: logger)
        mode = Mutex(.sentinel(sentinel))
        waiting = Mutex(replicaWait.map { _ in .sentinel(sentinel) })
    }

    /// A standalone Redis reached through this client, never switched to cluster mode (tests and benchmarks).
    /// With `replicaWait`, waited decisions get a second client of the same configuration.
    public init(client: RedisClient, logger: Logger, replicaWait: ReplicaWait? = nil) {
        configuration = client.configuration
        seeds = [client.configuration.url]
        self.logger = logger
        self.replicaWait = replicaWait
        mode = Mutex(.standalone(client))
        waiting = Mutex(
            replicaWait.map { .standalone(RedisClient(configuration: Self.waitingTemplate(client.configuration, $0), logger: logger)) })
    }

    static func waitingTemplate(_ template: RedisClient.Configuration, _ wait: ReplicaWait) -> RedisClient.Configuration {
        var configuration = template
        configuration.connections = wait.connections
        // While a replica stalls, pairs queue behind one another's WAIT, each holding the connection up to its
        // timeout: a reply owed for four operation timeouts is then expected, not a stuck Redis. Dropping the
        // connection would lose the late replies that refund what those decisions consumed. Each caller still
        // fails at its own deadline; the main connections' health checks still notice a stopped Redis.
        configuration.stuckAfter = max(template.operationTimeout * 4, (wait.timeout + template.operationTimeout) * 10)
        return configuration
    }

    private var current: Mode { mode.withLock { $0 } }

    public var isCluster: Bool { if case .cluster = current { true } else { false } }

    public var cluster: RedisClusterClient? { if case .cluster(let c) = current { c } else { nil } }

    /// A command for the node that owns `slotKey`'s slot (any node when nil; on standalone Redis, the server).
    public func send(
        _ arguments: [String], slotKey: String?, onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(RedisError) -> RedisValue {
        switch current {
        case .standalone(let client):
            let reply = try await client.send(arguments, onLateReply: onLateReply)
            if case .error(let message) = reply,
                message.hasPrefix("MOVED ") || message.hasPrefix("ASK ") || message.hasPrefix("CROSSSLOT")
            {
                becomeCluster(because: message)
                throw RedisError(
                    code: .connectionFailed, message: "Redis at \(seeds[0].host):\(seeds[0].port) is a cluster node; switching to cluster mode")
            }
            return reply
        case .cluster(let cluster):
            return try await cluster.send(
                arguments.map { Array($0.utf8) }, slot: slotKey.map { ClusterSlot.of($0) }, onLateReply: onLateReply)
        case .sentinel(let sentinel):
            return try await sentinel.send(arguments, onLateReply: onLateReply)
        }
    }

    /// One of `lua/`'s scripts on the node that owns `keys[0]`'s slot: `EVALSHA`, and on `NOSCRIPT` (a restarted or
    /// flushed Redis) `EVAL`, which runs the script and loads it. Error replies come back as `.error`.
    public func evaluate(
        _ script: RedisScript, keys: [String], arguments: [String], onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(RedisError) -> RedisValue {
        let tail = [String(keys.count)] + keys + arguments
        var reply = try await send(["EVALSHA", script.sha1] + tail, slotKey: keys.first, onLateReply: onLateReply)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            logger.info("loading Redis script", metadata: ["script": "\(script.fileName)"])
            reply = try await send(["EVAL", String(decoding: script.bytes, as: UTF8.self)] + tail, slotKey: keys.first, onLateReply: onLateReply)
        }
        if case .error(let message) = reply {
            lastScriptError.withLock { $0 = (String(message.prefix(300)), .now) }
        }
        return reply
    }

    /// `evaluate`, with `WAIT` (see `replicaWait`) right behind the script on the connection that ran it; on a
    /// cluster, on the master of the script's slot. Without `replicaWait`, plain `evaluate` and no promise.
    public func evaluateReplicated(
        _ script: RedisScript, keys: [String], arguments: [String], onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(RedisError) -> (reply: RedisValue, replicated: ReplyPromise?) {
        guard let replicaWait, let waiting = waiting.withLock({ $0 }) else {
            return (try await evaluate(script, keys: keys, arguments: arguments, onLateReply: onLateReply), nil)
        }
        let tail = [String(keys.count)] + keys + arguments
        func send(_ arguments: [String]) async throws(RedisError) -> (reply: RedisValue, replicated: ReplyPromise) {
            let bytes = arguments.map { Array($0.utf8) }
            switch waiting {
            case .standalone(let client):
                let sent = try await client.send(
                    bytes, thenWaitFor: replicaWait.replicas, timeout: replicaWait.timeout, onLateReply: onLateReply)
                if case .error(let message) = sent.reply,
                    message.hasPrefix("MOVED ") || message.hasPrefix("ASK ") || message.hasPrefix("CROSSSLOT")
                {
                    becomeCluster(because: message)
                    throw RedisError(
                        code: .connectionFailed,
                        message: "Redis at \(seeds[0].host):\(seeds[0].port) is a cluster node; switching to cluster mode")
                }
                return sent
            case .cluster(let cluster):
                return try await cluster.send(
                    bytes, slot: keys.first.map { ClusterSlot.of($0) }, thenWaitFor: replicaWait.replicas,
                    timeout: replicaWait.timeout, onLateReply: onLateReply)
            case .sentinel(let sentinel):
                return try await sentinel.send(
                    bytes, thenWaitFor: replicaWait.replicas, timeout: replicaWait.timeout, onLateReply: onLateReply)
            }
        }
        var sent = try await send(["EVALSHA", script.sha1] + tail)
        if case .error(let message) = sent.reply, message.hasPrefix("NOSCRIPT") {
            logger.info("loading Redis script", metadata: ["script": "\(script.fileName)"])
            sent = try await send(["EVAL", String(decoding: script.bytes, as: UTF8.self)] + tail)
        }
        if case .error(let message) = sent.reply {
            lastScriptError.withLock { $0 = (String(message.prefix(300)), .now) }
        }
        return (sent.reply, sent.replicated)
    }

    /// Why calls cannot be served now, or nil: no healthy connection (with the last connection failure), or an error
    /// reply to a script within the last `scriptErrorMemory`.
    public var problem: String? {
        let unavailable: String? =
            switch current {
            case .standalone(let client): client.unavailableReason
            case .cluster(let cluster): cluster.unavailableReason
            case .sentinel(let sentinel): sentinel.unavailableReason
            }
        if let unavailable { return unavailable }
        guard let error = lastScriptError.withLock({ $0 }) else { return nil }
        let age = ContinuousClock.now - error.at
        guard age < Self.scriptErrorMemory else { return nil }
        return "Redis answered a limit script with an error \(age.components.seconds) s ago: \(error.message)"
    }

    /// Asks a standalone server whether it is a cluster node. Nil when it did not answer (ask again later).
    public func detectCluster() async -> Bool? {
        if case .sentinel = current { return false }
        guard case .standalone(let client) = current else { return true }
        guard let reply = try? await client.send(["INFO", "cluster"]) else { return nil }
        // A managed service or an ACL may refuse INFO: then a cluster is found out from its first MOVED reply.
        if case .error(let message) = reply {
            logger.debug("INFO refused; a cluster will be detected from a MOVED reply", metadata: ["reply": "\(message.prefix(200))"])
            return false
        }
        guard let text = reply.string else { return nil }
        if text.contains("cluster_enabled:1") {
            becomeCluster(because: "INFO cluster says cluster_enabled:1")
            return true
        }
        return false
    }

    private func becomeCluster(because reason: String) {
        let old = mode.withLock { mode -> RedisClient? in
            guard case .standalone(let client) = mode else { return nil }
            mode = .cluster(RedisClusterClient(seeds: seeds, template: configuration, logger: logger))
            return client
        }
        let oldWaiting = waiting.withLock { waiting -> RedisClient? in
            guard case .standalone(let client) = waiting, let replicaWait else { return nil }
            waiting = .cluster(
                RedisClusterClient(seeds: seeds, template: Self.waitingTemplate(configuration, replicaWait), logger: logger))
            return client
        }
        guard old != nil || oldWaiting != nil else { return }
        if old != nil { logger.info("Redis is a cluster: using cluster mode", metadata: ["reason": "\(reason)"]) }
        // Calls already on the old clients finish first (bounded by the operation timeout).
        Task {
            try? await Task.sleep(for: .seconds(2))
            old?.shutdown()
            oldWaiting?.shutdown()
        }
    }

    public var isHealthy: Bool {
        switch current {
        case .standalone(let client): client.isHealthy
        case .cluster(let cluster): cluster.isHealthy
        case .sentinel(let sentinel): sentinel.isHealthy
        }
    }

    public func ping() async -> Bool {
        switch current {
        case .standalone(let client): await client.ping()
        case .cluster(let cluster): await cluster.ping()
        case .sentinel(let sentinel): await sentinel.ping()
        }
    }

    public func shutdown() {
        // A sentinel client serves both (its waiting connections are its own): shut it down once.
        for mode in [current, waiting.withLock({ $0 })].compactMap({ $0 }) {
            switch mode {
            case .standalone(let client): client.shutdown()
            case .cluster(let cluster): cluster.shutdown()
            case .sentinel(let sentinel): sentinel.shutdown()
            }
        }
    }

    public var statistics: RedisClient.Statistics {
        switch current {
        case .standalone(let client): client.statistics
        case .cluster(let cluster): cluster.statistics
        case .sentinel(let sentinel): sentinel.statistics
        }
    }

    /// Where a message should say Redis is.
    public var description: String {
        if case .sentinel(let sentinel) = current {
            return "master \"\(sentinel.url.masterName)\" of sentinels "
                + seeds.map { "\($0.host):\($0.port)" }.joined(separator: ",")
                + (sentinel.masterAddress.map { " (now \($0))" } ?? "")
        }
        return seeds.map { "\($0.host):\($0.port)" }.joined(separator: ",") + (isCluster ? " (cluster)" : "")
    }
}
