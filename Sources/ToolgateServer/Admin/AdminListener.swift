import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import ToolgateCore

/// `--admin-listen HOST:PORT` (DESIGN.md section 6): `/admin` on a listener of its own, for example one the
/// agents' network cannot reach, and then not on `/mcp`'s. It gets the same guards as `/mcp`'s listener: Host and
/// Origin, the client idle timeout and request-head deadline, a cap on connections. `makeApplication` hands it the
/// admin API, which shares the approval gate with the proxy, so a decision here wakes the calls waiting there.
public final class AdminListener: Service, Sendable {
    let host: String
    let port: Int
    let onListening: @Sendable (String, Int) async -> Void
    private let installed = Mutex<(routes: AdminRoutes, idleTimeout: Duration)?>(nil)

    public init(host: String, port: Int, onListening: @escaping @Sendable (String, Int) async -> Void = { _, _ in }) {
        self.host = host
        self.port = port
        self.onListening = onListening
    }

    func install(_ api: AdminAPI, configuration: ServerConfiguration) {
        installed.withLock { $0 = (AdminRoutes(api: api, listenHost: host, configuration: configuration), configuration.clientIdleTimeout) }
    }

    public func run() async throws {
        guard let (routes, idle) = installed.withLock({ $0 }) else {
            // No admin token: nothing to serve (the CLI refuses --admin-listen without --admin-token-file).
            try? await gracefulShutdown()
            return
        }
        let logger = routes.api.logger
        let router = Router(context: ProxyRequestContext.self)
        routes.add(to: router)
        let app = Application(
            router: router,
            server: ToolgateServer.guardedHTTP1(idleTimeout: idle),
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: port), serverName: nil,
                availableConnectionsDelegate: ClientConnectionLimit(maximum: ConnectionBudget.adminConnections, logger: logger)),
            onServerRunning: { [host, port, onListening] channel in
                await ClientConnectionLimit.acceptOnePerRead(channel, logger: logger)
                let bound = channel.localAddress?.port ?? port
                logger.info("admin listening", metadata: ["address": "\(host):\(bound)"])
                await onListening(host, bound)
            },
            logger: logger)
        try await app.run()
    }
}
