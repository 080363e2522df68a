import Logging
import ServiceLifecycle
import Synchronization
import ToolgateCore
import ToolgateServer
import ToolgateUpstream

/// A reloaded servers file (DESIGN.md section 10), made real: a server the new file keeps as it was keeps its
/// transport and sessions; a new or changed one gets a new transport (a stdio server started and answering
/// `initialize` before anything is swapped); a removed or changed one is stopped after the swap, so its open requests
/// end with an error. As a service it stops, at shutdown, the stdio servers reloads started.
final class ServersReloader: ServersReloading, Service {
    /// One server in force.
    struct Entry: Sendable {
        let definition: ServerDefinition
        let server: UpstreamServer
        let curl: CurlUpstreamTransport?
        let stdio: StdioUpstreamTransport?
    }

    private struct State: Sendable {
        var file: ServersFile
        var entries: [String: Entry]
        var routes: ServerRoutes?
        /// Stdio servers started by reloads, supervised (restarted when they exit) until stopped.
        var supervised: [ObjectIdentifier: Task<Void, Never>] = [:]
    }

    let path: String
    private let environment: [String: String]
    private let listener: ServerConfiguration
    private let defaults: CurlUpstreamTransport.Configuration
    private let inheritedEnvironment: [String: String]
    private let metrics: ToolgateMetrics
    private let logger: Logger
    private let state: Mutex<State>

    init(
        path: String, file: ServersFile, entries: [Entry], environment: [String: String], listener: ServerConfiguration,
        defaults: CurlUpstreamTransport.Configuration, inheritedEnvironment: [String: String], metrics: ToolgateMetrics,
        logger: Logger
    ) {
        self.path = path
        self.environment = environment
        self.listener = listener
        self.defaults = defaults
        self.inheritedEnvironment = inheritedEnvironment
        self.metrics = metrics
        self.logger = logger
        state = Mutex(State(file: file, entries: Dictionary(uniqueKeysWithValues: entries.map { ($0.definition.name, $0) })))
    }

    /// The routes `makeApplication` made: what a reload swaps.
    func attach(_ routes: ServerRoutes) { state.withLock { $0.routes = routes } }

    var inForce: ServersFile { state.withLock { $0.file } }

    /// The servers routed to now, for `--metrics-listen`'s `/readyz`.
    var routesServers: [UpstreamServer]? { state.withLock { $0.routes?.servers } }

    func read() -> Result<ServersFile, PolicyValidationError> {
        PolicyFile.loadServers(path, environment: environment)
    }

    func prepare(_ file: ServersFile) async throws(ServersReloadFailure) -> PreparedServers {
        let current = state.withLock { $0.entries }
        var next: [Entry] = []
        var started: [Entry] = []
        for definition in file.servers {
            if let kept = current[definition.name], kept.definition == definition {
                next.append(kept)
                continue
            }
            let launch = ServerLaunch(
                definition, listener: listener, defaults: defaults, environment: inheritedEnvironment,
                maximumLineBytes: ServeSettings.maximumStdioLine)
            let observation = UpstreamObservation()
            let entry: Entry
            if let stdio = launch.stdio {
                do {
                    let transport = try await ToolgateProcess.startStdioUpstream(
                        stdio, server: definition.name, observation: observation, metrics: metrics, logger: logger)
                    entry = Entry(
                        definition: definition,
                        server: UpstreamServer(configuration: launch.configuration, upstream: transport, observation: observation),
                        curl: nil, stdio: transport)
                } catch {
                    await Self.stop(started)
                    throw ServersReloadFailure(server: definition.name, message: error.description)
                }
            } else {
                let transport = CurlUpstreamTransport(configuration: launch.http ?? defaults)
                entry = Entry(
                    definition: definition,
                    server: UpstreamServer(configuration: launch.configuration, upstream: transport, observation: observation),
                    curl: transport, stdio: nil)
            }
            started.append(entry)
            next.append(entry)
        }
        let startedNow = started
        let nextNow = next
        return PreparedServers(
            commit: { [self] in await commit(file, nextNow) },
            abandon: { await Self.stop(startedNow) })
    }

    private func commit(_ file: ServersFile, _ next: [Entry]) async {
        let keptIDs = Set(next.map(\.server.id))
        let (routes, gone) = state.withLock { state in
            let gone = state.entries.values.filter { !keptIDs.contains($0.server.id) }
            state.file = file
            state.entries = Dictionary(uniqueKeysWithValues: next.map { ($0.definition.name, $0) })
            return (state.routes, gone)
        }
        routes?.replace(with: next.map(\.server))
        for entry in next where entry.stdio != nil {
            supervise(entry.stdio!)
        }
        for entry in gone {
            logger.info(
                "servers file reloaded: server stopped (its open requests end with an error)",
                metadata: ["server": "\(entry.definition.name)"])
        }
        await Self.stop(gone)
        for entry in gone {
            if let stdio = entry.stdio { _ = state.withLock { $0.supervised.removeValue(forKey: ObjectIdentifier(stdio)) } }
        }
    }

    /// Keeps a stdio server a reload started running (restarting it when it exits) until it is stopped.
    private func supervise(_ transport: StdioUpstreamTransport) {
        state.withLock { state in
            let key = ObjectIdentifier(transport)
            guard state.supervised[key] == nil else { return }
            state.supervised[key] = Task { await transport.superviseUntilStopped() }
        }
    }

    private static func stop(_ entries: [Entry]) async {
        for entry in entries {
            entry.curl?.shutdown()
            await entry.stdio?.stop()
        }
    }

    func run() async throws {
        try? await gracefulShutdown()
        // The stdio servers of the start are stopped by their own services; those reloads started, here.
        let (supervised, entries) = state.withLock { state in (state.supervised, Array(state.entries.values)) }
        let reloaded = entries.filter { entry in entry.stdio.map { supervised[ObjectIdentifier($0)] != nil } ?? false }
        await Self.stop(reloaded)
    }
}
