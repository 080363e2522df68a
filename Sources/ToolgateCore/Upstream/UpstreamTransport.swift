/// The upstream MCP server as the proxy sees it: one HTTP exchange at a time, body streamed.
///
/// The libcurl adapter (`ToolgateUpstream`) is the real implementation; unit tests of the proxy use fakes.
public protocol UpstreamTransport: Sendable {
    /// Sends the request and returns once the response head (status and headers) has arrived.
    /// Throws when the upstream cannot be reached or does not answer within the headers timeout.
    func send(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse
}

public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

public struct UpstreamRequest: Sendable {
    public enum Method: String, Sendable {
        case get = "GET"
        case post = "POST"
        case delete = "DELETE"
    }

    public var method: Method
    /// The full upstream URL (`--upstream`).
    public var url: String
    /// Sent as given: the caller has already removed hop-by-hop headers, `Authorization` and `Accept-Encoding`.
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// The agent waiting for the answer: when it leaves, the transport stops the exchange.
    public var agent: (any AgentPresence)?
    /// The caller's grant. Never sent upstream; a transport that serves several clients over one connection of its
    /// own (the stdio upstream) tells them apart by it.
    public var grant: String?

    public init(
        method: Method, url: String, headers: [HTTPHeader], body: [UInt8] = [], agent: (any AgentPresence)? = nil,
        grant: String? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.agent = agent
        self.grant = grant
    }
}

public struct UpstreamResponse: Sendable {
    public let status: Int
    /// In the order received; header names as the upstream wrote them.
    public let headers: [HTTPHeader]
    public let body: any UpstreamBody

    public init(status: Int, headers: [HTTPHeader], body: any UpstreamBody) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// First value of a header, compared case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.equalsIgnoringASCIICase(name) }?.value
    }
}

/// A response body arriving in chunks. Reading slowly is what slows the upstream down (backpressure):
/// the transport buffers only a bounded amount before it pauses the transfer.
public protocol UpstreamBody: Sendable {
    /// The next chunk, or nil at the end of the body.
    func next() async throws(UpstreamError) -> [UInt8]?
    /// Stops the transfer, for example because the agent went away. Further `next()` calls return nil.
    func cancel()
}

public struct UpstreamError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// No connection: refused, unresolvable, or the connect timeout passed.
        case unreachable
        /// Connected, but no response head within the headers timeout.
        case headersTimeout
        /// The body went silent for longer than the idle timeout.
        case idleTimeout
        /// The connection broke, or the response was not valid HTTP.
        case transport
        case cancelled
    }

    public let code: Code
    /// Says which upstream failed and how, for logs and the agent's `-32603` message.
    public let message: String
    /// False only when the upstream provably did not get the whole request (no connection, or the body was not
    /// completely sent): the one transport failure after which a call's limits are refunded. Anything
    /// uncertain counts as sent, since the tool may have run.
    public let requestSent: Bool

    public init(code: Code, message: String, requestSent: Bool = true) {
        self.code = code
        self.message = message
        self.requestSent = requestSent
    }

    /// The same failure, with what is known about delivery.
    public func with(requestSent: Bool) -> UpstreamError {
        UpstreamError(code: code, message: message, requestSent: requestSent)
    }

    public var description: String { message }
}
