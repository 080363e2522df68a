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
    /// The last error reply to one of `lua/`'s scripts, and when it came: a reachable Redis can still refuse every
    /// call (a full Redis under `noeviction` answers OOM), which PING never shows.
    private let lastScriptError = Mutex<(message: String, at: ContinuousClock.Instant)?>(nil)
    /// How long a script's error reply keeps `problem` set. Successes meanwhile do not clear it: under OOM, counters
    /// that already exist keep working while new ones fail.
    public static let scriptErrorMemory = Duration.seconds(30)
    let configuration: RedisClient.Configuration
    let seeds: [RedisURL]
    let logger: Logger

    /// `configuration.url` is ignored in favour of `seeds` (`configuration` gives timeouts and connection counts).
    public init(seeds: [RedisURL], configuration: RedisClient.Configuration, logger: Logger) {
        precondition(!seeds.isEmpty, "--redis needs at least one URL")
        var template = configuration
        template.url = seeds[0]
        self.configuration = template
        self.seeds = seeds
        self.logger = logger
        if seeds.count > 1 {
            mode = Mutex(.cluster(RedisClusterClient(seeds: seeds, template: template, logger: logger)))
        } else {
            mode = Mutex(.standalone(RedisClient(configuration: template, logger: logger)))
        }
    }

    /// A master found through Sentinel (`redis+sentinel://`). `configuration` gives timeouts and connection counts.
    public init(
        sentinel url: RedisSentinelURL, configuration: RedisClient.Configuration, sentinelUsername: String? = nil,
        sentinelPassword: String?, logger: Logger
    ) {
        var template = configuration
        template.url = url.master
        self.configuration = template
        seeds = url.sentinels.map { RedisURL(host: $0.host, port: $0.port) }
        self.logger = logger
        mode = Mutex(
            .sentinel(
                RedisSentinelClient(
                    url: url, template: template, sentinelUsername: sentinelUsername, sentinelPassword: sentinelPassword,
                    logger: logger)))
    }

    /// A standalone Redis reached through this client, never switched to cluster mode (tests and benchmarks).
    public init(client: RedisClient, logger: Logger) {
        configuration = client.configuration
        seeds = [client.configuration.url]
        self.logger = logger
        mode = Mutex(.standalone(client))
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
        guard let reply = try? await client.send(["INFO", "cluster"]), let text = reply.string else { return nil }
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
        guard let old else { return }
        logger.info("Redis is a cluster: using cluster mode", metadata: ["reason": "\(reason)"])
        // Calls already on the old client finish first (bounded by the operation timeout).
        Task {
            try? await Task.sleep(for: .seconds(2))
            old.shutdown()
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
        switch current {
        case .standalone(let client): client.shutdown()
        case .cluster(let cluster): cluster.shutdown()
        case .sentinel(let sentinel): sentinel.shutdown()
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
