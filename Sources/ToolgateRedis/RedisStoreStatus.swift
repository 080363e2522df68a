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
    private let found = Mutex<[String]>([])

    public init(deployment: RedisDeployment, logger: Logger) {
        self.deployment = deployment
        self.logger = logger
    }

    public convenience init(client: RedisClient, logger: Logger) {
        self.init(deployment: RedisDeployment(client: client, logger: logger), logger: logger)
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

    /// Finds out whether Redis is a cluster, then reads the eviction policy, retrying each until Redis answers;
    /// then, on a cluster, keeps reloading the slot map.
    public func run() async throws {
        while !Task.isCancelledOrShuttingDown, await deployment.detectCluster() == nil {
            try? await Task.sleep(for: .milliseconds(250))
        }
        while !Task.isCancelledOrShuttingDown {
            if let warnings = await checkEviction() {
                found.withLock { $0 = warnings }
                break
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        while !Task.isCancelledOrShuttingDown, let cluster = deployment.cluster {
            cluster.requestRefresh()
            try? await Task.sleep(for: Self.mapRefreshInterval)
        }
    }

    /// Nil when Redis could not be asked; otherwise the warnings (empty when eviction cannot happen).
    func checkEviction() async -> [String]? {
        let reply: RedisValue
        do {
            reply = try await deployment.send(["CONFIG", "GET", "maxmemory-policy"], slotKey: nil)
        } catch {
            return nil
        }
        guard case .array(let items?) = reply, items.count == 2, case .bulkString(let bytes?) = items[1] else {
            let warning = "could not read maxmemory-policy (\(reply)); make sure Redis runs with maxmemory-policy noeviction, or limits may silently reset"
            logger.warning("\(warning)")
            return [warning]
        }
        let policy = String(decoding: bytes, as: UTF8.self)
        guard policy != "noeviction" else { return [] }
        let warning = "Redis maxmemory-policy is \(policy): Redis may evict limit counters under memory pressure, which silently resets limits. Set maxmemory-policy noeviction."
        logger.critical("\(warning)")
        return [warning]
    }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { Task.isCancelled || Task.isShuttingDownGracefully }
}
