import ToolgateCore

/// The upstream MCP server reached over HTTP/1.1 with libcurl: one multi handle on its own thread, shared by
/// all requests so that they reuse keep-alive connections.
///
/// There is no total timeout: GET event streams and long-lived POST streams may run for hours. A request is
/// bounded instead by the connect timeout, the time to its response head, and the longest silence in its body.
public final class CurlUpstreamTransport: UpstreamTransport {
    public struct Configuration: Sendable {
        /// Includes name resolution; past it the upstream is `.unreachable`.
        public var connectTimeout: Duration
        /// From submission to the complete response head (`--upstream-headers-timeout`).
        public var headersTimeout: Duration
        /// The longest silence inside a body (`--upstream-idle-timeout`). Time the transfer spends paused
        /// because the reader is slow does not count.
        public var idleTimeout: Duration
        /// The most body bytes waiting for the reader; past it the transfer pauses.
        public var bodyBufferLimit: Int
        /// Each in-flight HTTP/1.1 request needs a connection of its own, and an event stream holds one for its
        /// whole life, so this is a guard against floods, not a pool size: requests over it wait inside curl for
        /// a free connection, with their headers timeout running.
        public var maxConnectionsPerHost: Int
        /// Connections kept open after use for the next requests; the one upstream rarely needs more.
        public var maxIdleConnections: Int

        public init(
            connectTimeout: Duration = .seconds(5),
            headersTimeout: Duration = .seconds(300),
            idleTimeout: Duration = .seconds(300),
            bodyBufferLimit: Int = 256 * 1024,
            maxConnectionsPerHost: Int = 256,
            maxIdleConnections: Int = 64
        ) {
            self.connectTimeout = connectTimeout
            self.headersTimeout = headersTimeout
            self.idleTimeout = idleTimeout
            self.bodyBufferLimit = bodyBufferLimit
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.maxIdleConnections = maxIdleConnections
        }
    }

    public let configuration: Configuration
    let multi: CurlMulti

    public init(configuration: Configuration = Configuration()) {
        precondition(configuration.bodyBufferLimit > 0, "bodyBufferLimit must be positive")
        self.configuration = configuration
        multi = CurlMulti(
            maxConnectionsPerHost: configuration.maxConnectionsPerHost, maxIdleConnections: configuration.maxIdleConnections)
    }

    deinit {
        multi.shutdown()
    }

    /// Cancels every transfer in flight and stops the multi thread; later requests fail with `.cancelled`.
    public func shutdown() {
        multi.shutdown()
    }

    /// curl easy handles not yet freed: requests in flight plus bodies not yet read to the end or cancelled.
    public var openTransfers: Int { multi.openHandles.load(ordering: .relaxed) }

    /// Returns when the response head has arrived. Cancelling the awaiting task cancels the request (`.cancelled`),
    /// and so does the agent's departure (`request.agent`), then or while the body is read; the caller clears the
    /// departure action when the exchange ends.
    public func send(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        guard !Task.isCancelled else { throw .cancelled(request.url) }
        let transfer = try CurlTransfer(request: request, configuration: configuration, multi: multi)
        guard multi.enqueue(.start(transfer)) else {
            throw .cancelled(request.url, "request not sent: the transport shut down")
        }
        let url = request.url
        request.agent?.onDeparture { transfer.cancel(.failure(.cancelled(url, "cancelled: the agent went away"))) }
        let head = try await transfer.awaitHead().get()
        return UpstreamResponse(status: head.status, headers: head.headers, body: StreamingBody(transfer))
    }
}
