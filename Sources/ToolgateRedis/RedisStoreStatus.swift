import Logging
import ServiceLifecycle
import Synchronization
import ToolgateCore

/// Redis as `/readyz` sees it: reachable when a PING answers within the timeout, and with a warning when
/// Redis may evict keys, because an evicted counter is a limit silently reset.
public final class RedisStoreStatus: StoreStatus, Service {
    let client: RedisClient
    let logger: Logger
    private let found = Mutex<[String]>([])

    public init(client: RedisClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public var kind: String { "redis" }
    public var isConnected: Bool { client.isHealthy }
    public var warnings: [String] { found.withLock { $0 } }

    /// Reads the eviction policy once Redis answers, retrying until it does.
    public func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            if let warnings = await checkEviction() {
                found.withLock { $0 = warnings }
                return
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Nil when Redis could not be asked; otherwise the warnings (empty when eviction cannot happen).
    func checkEviction() async -> [String]? {
        let reply: RedisValue
        do {
            reply = try await client.send(["CONFIG", "GET", "maxmemory-policy"])
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
