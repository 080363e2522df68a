import Synchronization
import ToolgateCore

/// One MCP server the sidecar guards (DESIGN.md section 10): where its requests go, and what `/readyz` says of it.
/// `configuration.serverName` is nil for the one unnamed upstream of `--upstream` / `--upstream-command`.
public struct UpstreamServer: Sendable {
    public let configuration: ServerConfiguration
    public let upstream: any UpstreamTransport
    public let observation: UpstreamObservation
    /// Tells this server from a later one of the same name: a reload keeps the proxy (and its sessions) of a server
    /// it keeps, and makes a new one for a server that changed.
    public let id: UInt64

    private static let nextID = Atomic<UInt64>(1)

    public init(configuration: ServerConfiguration, upstream: any UpstreamTransport, observation: UpstreamObservation) {
        self.configuration = configuration
        self.upstream = upstream
        self.observation = observation
        id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    public var name: String? { configuration.serverName }
}
