import Hummingbird

/// Hummingbird's basic context plus the agent's connection, so the proxy can stop work for an agent that left.
struct ProxyRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Nil only for contexts built without a watched channel (none in the server).
    let client: ClientConnection?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        client = ClientConnection.of(source.channel)
    }
}
