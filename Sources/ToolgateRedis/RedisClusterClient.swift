import Logging
import Synchronization

/// A Redis Cluster, on hiredis: the slot map from `CLUSTER SLOTS`, one pipelined `RedisClient` (a small connection
/// set, each with its own timeouts and health) per master, `MOVED` and `ASK` followed, and the map refreshed when
/// a node is lost or a redirect shows it is stale, so a replica the cluster promotes is served without a restart.
public final class RedisClusterClient: Sendable {
    /// Where the map is first asked for, and asked again when every known node fails.
    public let seeds: [RedisURL]
    /// Each node's client is built from this, with the node's address.
    let template: RedisClient.Configuration
    let logger: Logger

    private struct State {
        var map: ClusterSlotMap?
        /// From `CLUSTER NODES` of the node that gave the map; nil if it did not answer.
        var reachableNodes: Int?
        var clients: [ClusterNode: RedisClient] = [:]
        var refreshing = false
        /// A refresh asked for too soon after the last one runs when the spacing has passed, not never.
        var followUpScheduled = false
        var lastRefresh: ContinuousClock.Instant?
        var lastFailure = "the slot map has not been loaded yet"
        var closed = false
    }

    private let state = Mutex(State())
    /// A refresh is not started sooner than this after the previous one: a lost node makes every call ask.
    static let refreshSpacing = Duration.milliseconds(100)
    /// Redirects followed for one command before giving up (a cluster mid-reshard may send a few in a row).
    static let maximumRedirects = 5

    public init(seeds: [RedisURL], template: RedisClient.Configuration, logger: Logger) {
        precondition(!seeds.isEmpty, "a cluster needs at least one seed node")
        self.seeds = seeds
        self.template = template
        self.logger = logger
        requestRefresh()
    }

    deinit { shutdown() }

    public func shutdown() {
        let clients = state.withLock { state -> [RedisClient] in
            state.closed = true
            defer { state.clients = [:] }
            return Array(state.clients.values)
        }
        for client in clients { client.shutdown() }
    }

    /// A command for the master of `slot` (any master when nil). A Redis error reply other than a redirect is
    /// returned as `.error`, as `RedisClient.send` does.
    public func send(
        _ arguments: [[UInt8]], slot: Int?, onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(RedisError) -> RedisValue {
        try await routed(slot: slot) { client, asking throws(RedisError) in
            (try await client.send(arguments, asking: asking, onLateReply: onLateReply), nil)
        }.reply
    }

    /// The same, with `WAIT replicas timeout` right behind it on the slot master's connection (see
    /// `RedisClient.send(_:thenWaitFor:timeout:)`): the master that took the write is the one asked.
    public func send(
        _ arguments: [[UInt8]], slot: Int?, thenWaitFor replicas: Int, timeout: Duration,
        onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(RedisError) -> (reply: RedisValue, replicated: ReplyPromise) {
        let result = try await routed(slot: slot) { client, asking throws(RedisError) in
            let sent = try await client.send(arguments, thenWaitFor: replicas, timeout: timeout, asking: asking, onLateReply: onLateReply)
            return (sent.reply, sent.replicated)
        }
        // `routed` returns only the reply of a command that was not redirected, which carried its WAIT.
        return (result.reply, result.replicated!)
    }

    /// Sends through `body` to the slot's master, following `MOVED` and `ASK`.
    private func routed(
        slot: Int?, _ body: (RedisClient, Bool) async throws(RedisError) -> (reply: RedisValue, replicated: ReplyPromise?)
    ) async throws(RedisError) -> (reply: RedisValue, replicated: ReplyPromise?) {
        var target = try await master(for: slot)
        var asking = false
        for _ in 0...Self.maximumRedirects {
            let client = client(for: target)
            let sent: (reply: RedisValue, replicated: ReplyPromise?)
            do {
                sent = try await body(client, asking)
            } catch {
                if error.code == .connectionFailed { requestRefresh() }
                throw error
            }
            asking = false
            guard case .error(let message) = sent.reply, let redirect = ClusterRedirect(error: message) else { return sent }
            switch redirect {
            case .moved(_, let node):
                requestRefresh()
                target = node
            case .ask(_, let node):
                target = node
                asking = true
            case .tryAgain:
                try? await Task.sleep(for: .milliseconds(5))
            case .clusterDown:
                requestRefresh()
                throw RedisError(code: .connectionFailed, message: "Redis Cluster is down: \(message)")
            }
        }
        throw .protocolError("Redis Cluster redirected a command more than \(Self.maximumRedirects) times")
    }

    /// What `/readyz` shows: the map as last loaded.
    public var map: ClusterSlotMap? { state.withLock { $0.map } }

    /// Masters and replicas the cluster lists as reachable, as last loaded.
    public var reachableNodes: Int? { state.withLock { $0.reachableNodes ?? $0.map?.nodeCount } }

    /// Every slot has a master, and every master's connection is healthy.
    public var isHealthy: Bool {
        let (map, clients) = state.withLock { ($0.map, $0.clients) }
        guard let map, map.slotsCovered == ClusterSlot.count else { return false }
        return map.masters.allSatisfy { clients[$0]?.isHealthy ?? false }
    }

    /// Why the cluster cannot serve every slot, when it cannot.
    public var unavailableReason: String? {
        let (map, clients, lastFailure) = state.withLock { ($0.map, $0.clients, $0.lastFailure) }
        guard let map else { return "Redis Cluster: \(lastFailure)" }
        if map.slotsCovered < ClusterSlot.count {
            return "Redis Cluster: \(ClusterSlot.count - map.slotsCovered) of \(ClusterSlot.count) slots have no master"
        }
        for master in map.masters {
            guard let client = clients[master] else { return "Redis Cluster: master \(master) is not connected yet" }
            if let reason = client.unavailableReason { return "Redis Cluster: master \(master): \(reason)" }
        }
        return nil
    }

    /// PING every master; true when all answer.
    public func ping() async -> Bool {
        guard let map else { return false }
        var all = !map.masters.isEmpty
        for node in map.masters { all = await client(for: node).ping() && all }
        return all
    }

    public var statistics: RedisClient.Statistics {
        let clients = state.withLock { Array($0.clients.values) }
        var total = RedisClient.Statistics(commands: 0, writes: 0, connects: 0, timeouts: 0, lateReplies: 0, commandsPerConnection: [])
        for client in clients {
            let s = client.statistics
            total.commands += s.commands
            total.writes += s.writes
            total.connects += s.connects
            total.timeouts += s.timeouts
            total.lateReplies += s.lateReplies
            total.commandsPerConnection += s.commandsPerConnection
        }
        return total
    }

    // MARK: Routing

    private func master(for slot: Int?) async throws(RedisError) -> ClusterNode {
        for attempt in 0..<2 {
            let (map, failure) = state.withLock { ($0.map, $0.lastFailure) }
            if let map {
                if let slot, let node = map.master(for: slot) { return node }
                if slot == nil, let node = map.masters.first { return node }
                requestRefresh()
                throw RedisError(code: .connectionFailed, message: "Redis Cluster: no master serves slot \(slot ?? -1)")
            }
            // No map yet: the first load is in flight (started at init); wait for it once, briefly.
            if attempt == 0 {
                await refreshNow()
                continue
            }
            throw RedisError(code: .connectionFailed, message: "Redis Cluster: \(failure)")
        }
        throw RedisError(code: .connectionFailed, message: "Redis Cluster: the slot map is not loaded")
    }

    private func client(for node: ClusterNode) -> RedisClient {
        state.withLock { state in
            if let client = state.clients[node] { return client }
            var configuration = template
            // The nodes a map names are reached as the seeds were: same credentials, same TLS settings.
            configuration.url = RedisURL(
                host: node.host, port: node.port, username: template.url.username, password: template.url.password,
                usesTLS: template.url.usesTLS)
            let client = RedisClient(configuration: configuration, logger: logger)
            if state.closed { client.shutdown() } else { state.clients[node] = client }
            return client
        }
    }

    // MARK: The slot map

    /// Starts a refresh in the background unless one is running or one ran within `refreshSpacing`.
    func requestRefresh() {
        enum Plan { case none, now, after(Duration) }
        let plan = state.withLock { state -> Plan in
            guard !state.closed, !state.refreshing else { return .none }
            if let last = state.lastRefresh, last + Self.refreshSpacing > .now {
                guard !state.followUpScheduled else { return .none }
                state.followUpScheduled = true
                return .after(ContinuousClock.now.duration(to: last + Self.refreshSpacing))
            }
            state.refreshing = true
            return .now
        }
        switch plan {
        case .none: return
        case .now: Task { await self.load() }
        case .after(let delay):
            Task {
                try? await Task.sleep(for: delay)
                self.state.withLock { $0.followUpScheduled = false }
                self.requestRefresh()
            }
        }
    }

    /// Refreshes at once (unless a refresh is already running, which it then waits for, bounded by the connect
    /// timeout).
    func refreshNow() async {
        let start = state.withLock { state -> Bool in
            guard !state.closed, !state.refreshing else { return false }
            state.refreshing = true
            return true
        }
        if start {
            await load()
            return
        }
        let deadline = ContinuousClock.now + template.connectTimeout
        while state.withLock({ $0.refreshing }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Asks the known masters, then the seeds, for `CLUSTER SLOTS`; the first valid answer becomes the map.
    private func load() async {
        let (known, existing) = state.withLock { ($0.map?.masters ?? [], $0.map) }
        let seedNodes = seeds.map { ClusterNode(host: $0.host, port: $0.port) }
        var candidates: [ClusterNode] = []
        for node in known + seedNodes where !candidates.contains(node) { candidates.append(node) }
        var failures: [String] = []
        var loaded: ClusterSlotMap?
        var reachable: Int?
        for node in candidates {
            do throws(RedisError) {
                let reply = try await client(for: node).send(["CLUSTER", "SLOTS"])
                if case .error(let message) = reply { throw RedisError.protocolError("CLUSTER SLOTS: \(message)") }
                let map = try ClusterSlotMap(parsing: reply, queried: node)
                guard !map.ranges.isEmpty else { throw RedisError.protocolError("CLUSTER SLOTS: no slot is assigned") }
                loaded = map
                if let text = try? await client(for: node).send(["CLUSTER", "NODES"]).string {
                    reachable = clusterNodesReachable(text)
                }
                break
            } catch {
                failures.append("\(node): \(error.message)")
            }
        }
        let retired = state.withLock { state -> [RedisClient] in
            state.refreshing = false
            state.lastRefresh = .now
            guard let loaded else {
                state.lastFailure = "could not load the slot map (" + failures.joined(separator: "; ") + ")"
                return []
            }
            state.map = loaded
            state.reachableNodes = reachable
            // Clients of nodes the cluster no longer lists are closed; the seeds' stay, to ask again later.
            let listed = Set(loaded.ranges.flatMap { [$0.master] + $0.replicas } + seedNodes)
            let gone = state.clients.filter { !listed.contains($0.key) }
            for node in gone.keys { state.clients[node] = nil }
            return Array(gone.values)
        }
        for client in retired { client.shutdown() }
        if let loaded {
            // Every master gets its connections (and health checks) now, not at its first call.
            for node in loaded.masters { _ = client(for: node) }
        }
        if let loaded, loaded != existing {
            logger.info(
                "Redis Cluster slot map loaded",
                metadata: [
                    "masters": "\(loaded.masters.map(\.description).joined(separator: ","))",
                    "nodes": "\(reachable ?? loaded.nodeCount)", "slotsCovered": "\(loaded.slotsCovered)",
                ])
        } else if loaded == nil {
            logger.warning("Redis Cluster slot map not loaded", metadata: ["failures": "\(failures.joined(separator: "; "))"])
        }
    }
}
