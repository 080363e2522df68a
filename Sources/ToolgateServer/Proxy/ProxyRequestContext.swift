import Hummingbird

/// Hummingbird's basic context plus the agent's connection, so the proxy can stop work for an agent that left.
struct ProxyRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Nil only for contexts built without a watched channel (none in the server).
    let client: ClientConnection?
    /// The peer's IP address (`unknown` when the channel has none): what admin sign-ins are throttled by.
    let clientAddress: String

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        client = ClientConnection.of(source.channel)
        clientAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
    }
}
