import Logging
import Synchronization

/// A Redis master found through Sentinel (DESIGN.md section 7): the sentinels are asked which server is the master
/// (`SENTINEL get-master-addr-by-name`), the server must say so itself (`ROLE`), and calls go to it. The sentinels
/// are asked again every `pollInterval` and at once when the master is lost or answers `READONLY` (it was demoted):
/// a failover is served again within the interval plus a connect of the promotion, with no restart.
///
/// The sentinels are polled rather than subscribed to (`+switch-master`): a poll needs no connection that only
/// listens, sees a switch that happened while it was disconnected, and its interval bounds how late it can be.
public final class RedisSentinelClient: Sendable {
    struct Master: Sendable {
        let host: String
        let port: Int
        let client: RedisClient
        /// `--redis-wait-replicas`: the connections for `EVALSHA` + `WAIT` pairs, to the same master.
        let waitingClient: RedisClient?
    }

    public static let pollInterval = Duration.milliseconds(250)

    public let url: RedisSentinelURL
    let template: RedisClient.Configuration
    let waitingTemplate: RedisClient.Configuration?
    let logger: Logger
    private let sentinels: [RedisClient]
    private let master = Mutex<Master?>(nil)
    /// Why no master can be used now (the sentinels' answer, or the server's role), for `/readyz`.
    private let lastProblem = Mutex<String?>("asking the sentinels for the master")
    private let watcher = Mutex<Task<Void, Never>?>(nil)
    /// Set to ask the sentinels before the next interval is over.
    private let askNow = Atomic<Bool>(false)

    /// `template`: timeouts and connection count for the master; its URL gives the master's login and database.
    /// `sentinelPassword` (and user): the sentinels' own login, which is not the master's.
    public init(
        url: RedisSentinelURL, template: RedisClient.Configuration, waitingTemplate: RedisClient.Configuration? = nil,
        sentinelUsername: String? = nil, sentinelPassword: String?, logger: Logger
    ) {
        self.url = url
        self.template = template
        self.waitingTemplate = waitingTemplate
        self.logger = logger
        sentinels = url.sentinels.map { sentinel in
            var configuration = template
            configuration.url = RedisURL(
                host: sentinel.host, port: sentinel.port, username: sentinelPassword == nil ? nil : sentinelUsername,
                password: sentinelPassword, database: 0, usesTLS: url.usesTLS)
            configuration.connections = 1
            return RedisClient(configuration: configuration, logger: logger)
        }
        let task = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                await self.refresh()
                let deadline = ContinuousClock.now + Self.pollInterval
                while ContinuousClock.now < deadline, !self.askNow.load(ordering: .relaxed), !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(25))
                }
                self.askNow.store(false, ordering: .relaxed)
            }
        }
        watcher.withLock { $0 = task }
    }

    deinit {
        shutdown()
    }

    /// The master's client, or nil while none is known.
    var current: RedisClient? { master.withLock { $0?.client } }

    /// Where the master is now, for messages.
    public var masterAddress: String? { master.withLock { $0.map { "\($0.host):\($0.port)" } } }

    /// A command for the master. A `READONLY` reply means the server was demoted: the sentinels are asked at once.
    func send(_ arguments: [String], onLateReply: (@Sendable (RedisValue) -> Void)?) async throws(RedisError) -> RedisValue {
        guard let client = current else {
            throw RedisError(code: .connectionFailed, message: unavailableReason ?? "no Redis master is known yet")
        }
        let reply = try await client.send(arguments, onLateReply: onLateReply)
        if case .error(let message) = reply, message.hasPrefix("READONLY") { masterLost() }
        return reply
    }

    /// A script and its `WAIT` on the master's waiting connections (`RedisDeployment.evaluateReplicated`).
    func send(
        _ arguments: [[UInt8]], thenWaitFor replicas: Int, timeout: Duration, onLateReply: (@Sendable (RedisValue) -> Void)?
    ) async throws(RedisError) -> (reply: RedisValue, replicated: ReplyPromise) {
        guard let client = master.withLock({ $0?.waitingClient }) else {
            throw RedisError(code: .connectionFailed, message: unavailableReason ?? "no Redis master is known yet")
        }
        let sent = try await client.send(arguments, thenWaitFor: replicas, timeout: timeout, onLateReply: onLateReply)
        if case .error(let message) = sent.reply, message.hasPrefix("READONLY") { masterLost() }
        return sent
    }

    /// Ask the sentinels now rather than at the next interval.
    func masterLost() { askNow.store(true, ordering: .relaxed) }

    /// Asks the sentinels; on a new address, connects, checks `ROLE`, and switches. Calls on the old master finish
    /// (bounded by the operation timeout) before it is closed.
    func refresh() async {
        guard let address = await askSentinels() else {
            if let client = current, !client.isHealthy { masterLost() }
            return
        }
        if let known = master.withLock({ $0 }), known.host == address.host, known.port == address.port {
            if !known.client.isHealthy {
                lastProblem.withLock { $0 = known.client.unavailableReason }
            } else {
                lastProblem.withLock { $0 = nil }
            }
            return
        }
        var configuration = template
        configuration.url = RedisURL(
            host: address.host, port: address.port, username: url.master.username, password: url.master.password,
            database: url.master.database, usesTLS: url.usesTLS)
        let client = RedisClient(configuration: configuration, logger: logger)
        let role: String?
        switch try? await client.send(["ROLE"]) {
        case .array(let items?)?: role = items.first?.string
        default: role = nil
        }
        guard role == "master" else {
            client.shutdown()
            let problem =
                "the sentinels name \(address.host):\(address.port) as master \"\(url.masterName)\", but it says its role is \(role ?? "unknown (no answer)")"
            lastProblem.withLock { $0 = problem }
            logger.warning("\(problem); asking again")
            return
        }
        let waitingClient = waitingTemplate.map { waiting in
            var configuration = waiting
            configuration.url = client.configuration.url
            return RedisClient(configuration: configuration, logger: logger)
        }
        let old = master.withLock { master -> Master? in
            let old = master
            master = Master(host: address.host, port: address.port, client: client, waitingClient: waitingClient)
            return old
        }
        lastProblem.withLock { $0 = nil }
        logger.notice(
            "Redis master found through Sentinel",
            metadata: ["master": "\(url.masterName)", "address": "\(address.host):\(address.port)"])
        if let old {
            Task {
                try? await Task.sleep(for: .seconds(2))
                old.client.shutdown()
                old.waitingClient?.shutdown()
            }
        }
    }

    /// The first sentinel that answers: the master's address, or nil (with the reason kept for `/readyz`).
    private func askSentinels() async -> (host: String, port: Int)? {
        var problems: [String] = []
        for (index, sentinel) in sentinels.enumerated() {
            let name = "\(url.sentinels[index].host):\(url.sentinels[index].port)"
            do {
                let reply = try await sentinel.send(["SENTINEL", "get-master-addr-by-name", url.masterName])
                switch reply {
                case .array(let items?) where items.count == 2:
                    if let host = items[0].string, let port = items[1].string.flatMap({ Int($0) }) { return (host, port) }
                    problems.append("\(name) answered \(reply)")
                case .array(nil), .bulkString(nil):
                    problems.append("\(name) knows no master named \"\(url.masterName)\"")
                case .error(let message):
                    problems.append("\(name): \(message)")
                default:
                    problems.append("\(name) answered \(reply)")
                }
            } catch {
                problems.append("\(name): \(error.message)")
            }
        }
        lastProblem.withLock { $0 = "no sentinel named the master: " + problems.joined(separator: "; ") }
        return nil
    }

    public var isHealthy: Bool { current?.isHealthy ?? false }

    public var unavailableReason: String? {
        if let client = current, client.isHealthy { return nil }
        return lastProblem.withLock { $0 } ?? current?.unavailableReason ?? "no Redis master is known yet"
    }

    public func ping() async -> Bool { await current?.ping() ?? false }

    public var statistics: RedisClient.Statistics {
        current?.statistics
            ?? RedisClient.Statistics(commands: 0, writes: 0, connects: 0, timeouts: 0, lateReplies: 0, commandsPerConnection: [])
    }

    public func shutdown() {
        watcher.withLock { task in
            task?.cancel()
            task = nil
        }
        for sentinel in sentinels { sentinel.shutdown() }
        master.withLock { master in
            master?.client.shutdown()
            master?.waitingClient?.shutdown()
        }
    }
}
