import Logging
import ServiceLifecycle
import Synchronization
import ToolgateCore

/// Redis as `/readyz` sees it: reachable when a PING answers within the timeout, and with a warning when
/// Redis may evict keys, because an evicted counter is a limit silently reset. As a service it also finds out
/// whether a single `--redis` is a cluster node, and keeps a cluster's slot map fresh.
public final class RedisStoreStatus: StoreStatus, Service {
    let deployment: RedisDeployment
    let logger: Logger
    /// How often Redis's settings (`maxmemory-policy`) are read again while nothing reconnects: an operator may
    /// change them on a running Redis (`CONFIG SET`), and an evicting Redis silently resets limits.
    let settingsRefreshInterval: Duration
    private let found = Mutex<[String]>([])

    public init(deployment: RedisDeployment, logger: Logger, settingsRefreshInterval: Duration = .seconds(300)) {
        precondition(settingsRefreshInterval > .zero, "the settings refresh interval must be positive")
        self.deployment = deployment
        self.logger = logger
        self.settingsRefreshInterval = settingsRefreshInterval
    }

    public convenience init(client: RedisClient, logger: Logger, settingsRefreshInterval: Duration = .seconds(300)) {
        self.init(
            deployment: RedisDeployment(client: client, logger: logger), logger: logger,
            settingsRefreshInterval: settingsRefreshInterval)
    }

    public var kind: String { "redis" }
    public var isConnected: Bool { deployment.isHealthy }
    public var warnings: [String] { found.withLock { $0 } }
    public var problem: String? { deployment.problem }

    public var cluster: ClusterSummary? {
        guard let cluster = deployment.cluster else { return nil }
        guard let map = cluster.map else { return ClusterSummary(nodes: 0, masters: 0, slotsCovered: 0) }
        return ClusterSummary(
            nodes: cluster.reachableNodes ?? map.nodeCount, masters: map.masters.count, slotsCovered: map.slotsCovered)
    }

    /// How often a cluster's slot map is reloaded even when nothing failed (resharding moves slots quietly).
    static let mapRefreshInterval = Duration.seconds(1)
    /// How often the loop looks for a reconnect (a new handshake) when there is no cluster map to refresh.
    static let reconnectCheckInterval = Duration.milliseconds(500)

    /// Finds out whether Redis is a cluster; then reads the eviction policy, again after every reconnect (a new
    /// handshake: possibly another server, after a failover or restart) and every `settingsRefreshInterval`,
    /// retrying until Redis answers; on a cluster it also keeps reloading the slot map.
    public func run() async throws {
        while !Task.isCancelledOrShuttingDown, await deployment.detectCluster() == nil {
            try? await Task.sleep(for: .milliseconds(250))
        }
        var readAt: ContinuousClock.Instant?
        var readAtConnects = -1
        while !Task.isCancelledOrShuttingDown {
            let connects = deployment.statistics.connects
            let due = readAt.map { ContinuousClock.now - $0 >= settingsRefreshInterval } ?? true
            if due || connects != readAtConnects, let warnings = await checkEviction() {
                found.withLock { $0 = warnings }
                readAt = .now
                readAtConnects = connects
            }
            if let cluster = deployment.cluster {
                cluster.requestRefresh()
                try? await Task.sleep(for: Self.mapRefreshInterval)
            } else {
                try? await Task.sleep(for: readAt == nil ? .milliseconds(500) : Self.reconnectCheckInterval)
            }
        }
    }

    /// Nil when Redis could not be asked; otherwise the warnings (empty when eviction cannot happen).
    /// Logs a warning only when it differs from the one in force, so a periodic re-read does not repeat it.
    func checkEviction() async -> [String]? {
        let before = warnings
        let reply: RedisValue
        do {
            reply = try await deployment.send(["CONFIG", "GET", "maxmemory-policy"], slotKey: nil)
        } catch {
            return nil
        }
        guard case .array(let items?) = reply, items.count == 2, case .bulkString(let bytes?) = items[1] else {
            // A managed service or an ACL without +config|get refuses CONFIG: a warning, never a failure.
            let why = if case .error(let message) = reply { "CONFIG GET refused: \(message.prefix(200))" } else { "\(reply)" }
            let warning = "could not read maxmemory-policy (\(why)); make sure Redis runs with maxmemory-policy noeviction, or limits may silently reset"
            if before != [warning] { logger.warning("\(warning)") }
            return [warning]
        }
        let policy = String(decoding: bytes, as: UTF8.self)
        guard policy != "noeviction" else {
            if !before.isEmpty { logger.notice("Redis maxmemory-policy is noeviction now; limit counters are safe from eviction") }
            return []
        }
        let warning = "Redis maxmemory-policy is \(policy): Redis may evict limit counters under memory pressure, which silently resets limits. Set maxmemory-policy noeviction."
        if before != [warning] { logger.critical("\(warning)") }
        return [warning]
    }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { Task.isCancelled || Task.isShuttingDownGracefully }
}
