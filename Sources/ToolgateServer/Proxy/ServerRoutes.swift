import HTTPTypes
import Hummingbird
import Synchronization
import ToolgateCore

/// Which proxy serves a request (DESIGN.md section 10): `/mcp/NAME` is server NAME alone, exactly as `/mcp` is for
/// a single upstream; `/mcp` is the one server when there is one. A swap (a reloaded servers file) replaces the
/// table whole: a request keeps the proxy it was routed to.
public final class ServerRoutes: Sendable {
    struct Route: Sendable {
        let server: UpstreamServer
        let proxy: MCPProxy
    }

    private struct Table: Sendable {
        /// In servers-file order.
        var routes: [Route]
        var byName: [String: Route]
        /// What the merged endpoint needs of them, made once per table rather than per request.
        var exchanges: [ServerExchange]
        var names: MergedNames
    }

    private let table: Mutex<Table>
    /// The Host and Origin guard every `/mcp` route has, applied before a name is looked up: an unknown name's answer
    /// lists the servers, which a page of another origin must not learn.
    let originGuard: RequestOriginGuard

    /// Makes the proxy of a server a reload adds.
    private let makeProxy: @Sendable (UpstreamServer) -> MCPProxy
    /// `/mcp` when there are several servers.
    let merged: MergedEndpoint?

    init(
        servers: [UpstreamServer], originGuard: RequestOriginGuard, merged: MergedEndpoint? = nil,
        makeProxy: @escaping @Sendable (UpstreamServer) -> MCPProxy
    ) {
        table = Mutex(Self.table(servers.map { Route(server: $0, proxy: makeProxy($0)) }, separator: merged?.separator ?? "__"))
        self.originGuard = originGuard
        self.merged = merged
        self.makeProxy = makeProxy
    }

    private static func table(_ routes: [Route], separator: String) -> Table {
        var byName: [String: Route] = [:]
        for route in routes { if let name = route.server.name { byName[name] = route } }
        let exchanges = routes.compactMap { route in route.server.name.map { ServerExchange(server: $0, proxy: route.proxy) } }
        return Table(
            routes: routes, byName: byName, exchanges: exchanges,
            names: MergedNames(servers: exchanges.map(\.server), separator: separator))
    }

    /// The servers in force, in file order.
    public var servers: [UpstreamServer] { table.withLock { $0.routes.map(\.server) } }

    /// A reloaded servers file: a server it keeps (the same `id`) keeps its proxy and sessions; the others get new
    /// ones. Requests already routed finish where they are.
    public func replace(with servers: [UpstreamServer]) {
        let kept = table.withLock { table in
            Dictionary(table.routes.map { ($0.server.id, $0) }, uniquingKeysWith: { first, _ in first })
        }
        let next = Self.table(servers.map { kept[$0.id] ?? Route(server: $0, proxy: makeProxy($0)) }, separator: merged?.separator ?? "__")
        table.withLock { $0 = next }
    }

    func proxy(named name: String) -> MCPProxy? { table.withLock { $0.byName[name]?.proxy } }

    /// `/mcp`: the server when there is exactly one.
    var onlyProxy: MCPProxy? {
        table.withLock { $0.routes.count == 1 ? $0.routes[0].proxy : nil }
    }

    var names: [String] { table.withLock { $0.routes.compactMap(\.server.name) } }

    /// `/mcp`: the one server, or every server merged.
    func handleRoot(_ request: Request, agent: (any AgentPresence)?) async -> Response {
        if let proxy = onlyProxy { return await proxy.handle(request, agent: agent) }
        if let refusal = guardRefusal(request) { return refusal }
        let (servers, merging) = table.withLock { ($0.exchanges, $0.names) }
        guard let merged else {
            return MCPProxy.httpError(
                .notFound, .invalidRequest,
                "this sidecar guards several MCP servers, each at its own route: \(names.map { "/mcp/" + $0 }.joined(separator: ", "))")
        }
        return await merged.handle(request, agent: agent, servers: servers, names: merging)
    }

    /// `/mcp/NAME`.
    func handle(_ request: Request, server name: String, agent: (any AgentPresence)?) async -> Response {
        if let proxy = proxy(named: name) { return await proxy.handle(request, agent: agent) }
        if let refusal = guardRefusal(request) { return refusal }
        let known = names
        let hint = NameSuggestion.closest(to: name, among: known).map { " (did you mean /mcp/\($0)?)" } ?? ""
        return MCPProxy.httpError(
            .notFound, .invalidRequest,
            "no MCP server named \"\(String(name.prefix(64)))\" here\(hint); this sidecar guards: \(known.isEmpty ? "one unnamed server at /mcp" : known.map { "/mcp/" + $0 }.joined(separator: ", "))")
    }

    private func guardRefusal(_ request: Request) -> Response? {
        switch originGuard.rejection(host: request.head.authority, origin: request.headers[.origin]) {
        case nil: nil
        case .badAuthority(let why): MCPProxy.httpError(.badRequest, .invalidRequest, why)
        case .forbidden(let why): MCPProxy.httpError(.forbidden, .invalidRequest, why)
        }
    }
}
