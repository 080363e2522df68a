import ToolgateCore

/// One MCP server the sidecar guards (DESIGN.md section 10): where its requests go, and what `/readyz` says of it.
/// `configuration.serverName` is nil for the one unnamed upstream of `--upstream` / `--upstream-command`.
public struct UpstreamServer: Sendable {
    public let configuration: ServerConfiguration
    public let upstream: any UpstreamTransport
    public let observation: UpstreamObservation

    public init(configuration: ServerConfiguration, upstream: any UpstreamTransport, observation: UpstreamObservation) {
        self.configuration = configuration
        self.upstream = upstream
        self.observation = observation
    }

    public var name: String? { configuration.serverName }
}
