import Synchronization
import ToolgateCore

/// An upstream at the adapter boundary, for testing the proxy's own logic without sockets.
final class FakeUpstream: UpstreamTransport {
    typealias Handler = @Sendable (UpstreamRequest) throws(UpstreamError) -> UpstreamResponse
    private let handler: Handler
    private let seen = Mutex<[UpstreamRequest]>([])

    init(_ handler: @escaping Handler) { self.handler = handler }

    var requests: [UpstreamRequest] { seen.withLock { $0 } }

    func send(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        seen.withLock { $0.append(request) }
        return try handler(request)
    }

    static func response(_ status: Int, contentType: String, chunks: [String], headers: [HTTPHeader] = []) -> UpstreamResponse {
        UpstreamResponse(
            status: status, headers: [HTTPHeader("Content-Type", contentType)] + headers,
            body: ChunkedBody(chunks.map { Array($0.utf8) }))
    }
}

final class ChunkedBody: UpstreamBody {
    private let chunks: Mutex<[[UInt8]]>

    init(_ chunks: [[UInt8]]) { self.chunks = Mutex(chunks) }

    func next() async throws(UpstreamError) -> [UInt8]? {
        chunks.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }

    func cancel() { chunks.withLock { $0 = [] } }
}
