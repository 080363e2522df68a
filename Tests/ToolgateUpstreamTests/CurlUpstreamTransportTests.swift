import Foundation
import Testing
import ToolgateCore
@testable import ToolgateUpstream

/// The libcurl transport against a real HTTP/1.1 server (`Support/upstream_test_server.py`), one per test.
@Suite(.timeLimit(.minutes(2)))
struct CurlUpstreamTransportTests {
    /// Short enough that a bug fails a test instead of hanging it, long enough never to trip on a busy machine.
    static let quick = CurlUpstreamTransport.Configuration(
        connectTimeout: .seconds(2), headersTimeout: .seconds(20), idleTimeout: .seconds(20))

    static func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    static func receivedHeaders(_ echo: [String: Any]) -> [(String, String)] {
        (echo["headers"] as? [[String]] ?? []).map { ($0[0], $0[1]) }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func expectError(
        _ code: UpstreamError.Code, _ operation: () async throws -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async -> UpstreamError? {
        do {
            try await operation()
            Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
            return nil
        } catch let error as UpstreamError {
            #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
            return error
        } catch {
            Issue.record("expected an UpstreamError, got \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    // MARK: Requests and responses

    @Test func postSendsTheGivenHeadersAndTheBodyByteForByte() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let body = [UInt8](0...255) + [0, 13, 10, 0]
            let headers = [
                HTTPHeader("Content-Type", "application/json"), HTTPHeader("Accept", "application/json, text/event-stream"),
                HTTPHeader("Mcp-Session-Id", "s-1"), HTTPHeader("MCP-Protocol-Version", "2025-06-18"), HTTPHeader("X-Empty", ""),
            ]
            let response = try await transport.send(UpstreamRequest(method: .post, url: server.url("/echo"), headers: headers, body: body))
            #expect(response.status == 200)
            let echo = try Self.json(try await readAll(response.body))
            #expect(echo["method"] as? String == "POST")
            #expect(echo["body_hex"] as? String == Self.hex(body))
            let received = Self.receivedHeaders(echo)
            // Exactly what was given, plus the framing curl must add; no Expect, Accept-Encoding, User-Agent or form type.
            #expect(received.map(\.0).sorted() == [
                "Accept", "Content-Length", "Content-Type", "Host", "MCP-Protocol-Version", "Mcp-Session-Id", "X-Empty",
            ])
            for header in headers {
                #expect(received.contains { $0.0 == header.name && $0.1 == header.value }, "\(header.name)")
            }
            #expect(received.contains { $0.0 == "Content-Length" && $0.1 == "\(body.count)" })
            #expect(transport.openTransfers == 0)
        }
    }

    @Test func aLargePostIsSentWithoutWaitingForContinue() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            // curl would ask for `100 Continue` before a body this size if `Expect:` were not suppressed.
            let body = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let response = try await transport.send(
                UpstreamRequest(method: .post, url: server.url("/echo"), headers: [HTTPHeader("Content-Type", "application/octet-stream")], body: body))
            let echo = try Self.json(try await readAll(response.body))
            #expect(!Self.receivedHeaders(echo).contains { $0.0.lowercased() == "expect" })
            #expect(echo["body_hex"] as? String == Self.hex(body))
        }
    }

    @Test func postWithoutContentTypeGetsNoneFromCurl() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let response = try await transport.send(UpstreamRequest(method: .post, url: server.url("/echo"), headers: [], body: Array("a=b".utf8)))
            let received = Self.receivedHeaders(try Self.json(try await readAll(response.body)))
            #expect(!received.contains { $0.0.lowercased() == "content-type" })
            #expect(!received.contains { $0.0.lowercased() == "expect" })
        }
    }

    @Test(arguments: [UpstreamRequest.Method.get, .delete])
    func getAndDeleteSendNoBody(method: UpstreamRequest.Method) async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let request = UpstreamRequest(method: method, url: server.url("/echo?x=1"), headers: [HTTPHeader("Mcp-Session-Id", "s-2")])
            let response = try await transport.send(request)
            let echo = try Self.json(try await readAll(response.body))
            #expect(echo["method"] as? String == method.rawValue)
            #expect(echo["path"] as? String == "/echo?x=1")
            #expect(echo["body_hex"] as? String == "")
            // Without an Accept of its own the request carries curl's `*/*`, and nothing else of curl's.
            #expect(Self.receivedHeaders(echo).map(\.0).sorted() == ["Accept", "Host", "Mcp-Session-Id"])
        }
    }

    @Test func deleteCanCarryABody() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let response = try await transport.send(
                UpstreamRequest(method: .delete, url: server.url("/echo"), headers: [HTTPHeader("Content-Type", "text/plain")], body: [1, 2, 3]))
            let echo = try Self.json(try await readAll(response.body))
            #expect(echo["method"] as? String == "DELETE")
            #expect(echo["body_hex"] as? String == "010203")
        }
    }

    @Test func responseHeadersKeepTheirOrderAndSpelling() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/headers"), headers: []))
            let ours = response.headers.filter { !["Server", "Date", "Content-Length"].contains($0.name) }
            #expect(ours == [
                HTTPHeader("X-First", "1"), HTTPHeader("mcp-session-id", "session-42"), HTTPHeader("Set-Cookie", "a=1"),
                HTTPHeader("X-Mixed-CASE", "2"), HTTPHeader("Set-Cookie", "b=2"),
            ])
            #expect(response.header("MCP-SESSION-ID") == "session-42")
            #expect(try await readAll(response.body) == Array("ok".utf8))
        }
    }

    @Test func interimResponsesAreSkipped() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/interim"), headers: []))
            #expect(response.status == 200)
            #expect(response.header("X-Final") == "yes")
            #expect(response.header("Link") == nil)
            #expect(try await readAll(response.body) == Array("final".utf8))
        }
    }

    @Test func anUpstreamErrorStatusIsAResponseNotAnError() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let response = try await transport.send(UpstreamRequest(method: .post, url: server.url("/status?code=500"), headers: [], body: [1]))
            #expect(response.status == 500)
            #expect(try await readAll(response.body) == Array("upstream says no".utf8))
        }
    }

    @Test func aHeaderWithALineBreakIsRefusedBeforeAnythingIsSent() async throws {
        let transport = CurlUpstreamTransport(configuration: Self.quick)
        let error = await Self.expectError(.transport) {
            _ = try await transport.send(
                UpstreamRequest(method: .get, url: "http://127.0.0.1:1/mcp", headers: [HTTPHeader("X-Evil", "a\r\nHost: other")]))
        }
        #expect(error?.message.contains("X-Evil") == true)
        #expect(transport.openTransfers == 0)
    }

    // MARK: Streaming and backpressure

    @Test func eventsReachTheReaderWhileTheUpstreamIsStillSending() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/sse-gated?id=g1"), headers: []))
            #expect(response.header("Content-Type") == "text/event-stream")
            // The server sends the second event only after /release, so the first must arrive on its own.
            var received: [UInt8] = []
            while !String(decoding: received, as: UTF8.self).contains("\n\n") {
                guard let chunk = try await response.body.next() else { break }
                received += chunk
            }
            #expect(String(decoding: received, as: UTF8.self) == "id: 1\ndata: first\n\n")
            _ = try await server.control("/release?id=g1")
            let rest = String(decoding: try await readAll(response.body), as: UTF8.self)
            #expect(rest == "id: 2\ndata: second\n\n")
        }
    }

    @Test func aStreamLongerThanTheIdleTimeoutIsNotCutWhileEventsKeepComing() async throws {
        try await TestUpstreamServer.with { server in
            var configuration = Self.quick
            configuration.idleTimeout = .milliseconds(600)
            let transport = CurlUpstreamTransport(configuration: configuration)
            let start = ContinuousClock.now
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/sse?count=20&gap_ms=60&id=s"), headers: []))
            let text = String(decoding: try await readAll(response.body), as: UTF8.self)
            #expect(text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.count == 20)
            #expect(ContinuousClock.now - start > configuration.idleTimeout)
        }
    }

    @Test func aSlowReaderPausesTheTransferInsteadOfBuffering() async throws {
        try await TestUpstreamServer.with { server in
            var configuration = Self.quick
            // Longer than the pause below: a reader that comes back within the idle timeout gets everything.
            configuration.idleTimeout = .seconds(8)
            let transport = CurlUpstreamTransport(configuration: configuration)
            let total = 48 << 20
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/large?bytes=\(total)&id=big"), headers: []))
            let body = try #require(response.body as? StreamingBody)

            // Read nothing until the server can write no more: the buffers fill, then curl and the server stall.
            var written = -1
            let stalled = try await eventually(within: .seconds(20)) {
                let before = try await server.control("/progress?id=big")["written"] as? Int ?? -1
                try await Task.sleep(for: .milliseconds(200))
                let after = try await server.control("/progress?id=big")["written"] as? Int ?? -1
                written = after
                return after > 0 && after == before && body.isPausedByBackpressure
            }
            #expect(stalled)
            #expect(written < total / 2, "the server wrote \(written) of \(total) bytes to a reader that read nothing")
            #expect(body.bufferedBytes <= configuration.bodyBufferLimit)
            #expect(body.bufferedBytes > configuration.bodyBufferLimit / 2)
            try await Task.sleep(for: .seconds(1))

            var count = 0
            while let chunk = try await body.next() {
                #expect(chunk.first == UInt8(count % 251))
                #expect(chunk.last == UInt8((count + chunk.count - 1) % 251))
                count += chunk.count
            }
            #expect(count == total)
            #expect(body.peakBufferedBytes <= configuration.bodyBufferLimit)
            #expect(await eventually { transport.openTransfers == 0 })
        }
    }

    /// An agent that stops reading must not hold an upstream connection forever: a paused transfer that makes
    /// no progress for the idle timeout is cut, its connection closed, and the reader told why.
    @Test func aReaderThatStopsReadingIsCutAfterTheIdleTimeout() async throws {
        try await TestUpstreamServer.with { server in
            var configuration = Self.quick
            configuration.idleTimeout = .milliseconds(300)
            let transport = CurlUpstreamTransport(configuration: configuration)
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/large?bytes=\(48 << 20)&id=stop"), headers: []))
            let body = try #require(response.body as? StreamingBody)
            #expect(await eventually(within: .seconds(10)) { body.isPausedByBackpressure })
            // The slot is freed while the reader still reads nothing.
            #expect(await eventually(within: .seconds(10)) { transport.openTransfers == 0 })
            var failure: UpstreamError?
            do {
                while try await body.next() != nil {}
            } catch {
                failure = error as? UpstreamError
            }
            #expect(failure?.code == .idleTimeout)
            #expect(failure?.message.contains("stopped reading") == true)
        }
    }

    // MARK: Timeouts and failures

    @Test func noHeadInTimeIsAHeadersTimeout() async throws {
        try await TestUpstreamServer.with { server in
            var configuration = Self.quick
            configuration.headersTimeout = .milliseconds(150)
            let transport = CurlUpstreamTransport(configuration: configuration)
            let url = server.url("/hang")
            let error = await Self.expectError(.headersTimeout) {
                _ = try await transport.send(UpstreamRequest(method: .post, url: url, headers: [], body: [1]))
            }
            #expect(error?.message == "upstream \(url) sent no response headers within 150 ms")
            #expect(await eventually { transport.openTransfers == 0 })
        }
    }

    /// A request that went out whole may have run upstream, whether its connection was new or kept alive from an
    /// earlier request (which has no connect time of its own): it must never read as undelivered (a refund).
    @Test(arguments: [false, true])
    func aHeadersTimeoutAfterTheRequestWentOutCountsAsSent(reusingAConnection: Bool) async throws {
        try await TestUpstreamServer.with { server in
            var configuration = Self.quick
            configuration.headersTimeout = .milliseconds(300)
            let transport = CurlUpstreamTransport(configuration: configuration)
            if reusingAConnection {
                let response = try await transport.send(UpstreamRequest(method: .post, url: server.url("/echo"), headers: [], body: [1]))
                _ = try await readAll(response.body)
            }
            let error = await Self.expectError(.headersTimeout) {
                _ = try await transport.send(UpstreamRequest(method: .post, url: server.url("/hang"), headers: [], body: Array("{}".utf8)))
            }
            #expect(error?.requestSent == true)
        }
    }

    @Test func aSilentBodyIsAnIdleTimeoutAfterTheBytesThatCame() async throws {
        try await TestUpstreamServer.with { server in
            var configuration = Self.quick
            configuration.idleTimeout = .milliseconds(150)
            let transport = CurlUpstreamTransport(configuration: configuration)
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/silent-body"), headers: []))
            #expect(try await response.body.next() == Array("hello".utf8))
            let error = await Self.expectError(.idleTimeout) { _ = try await response.body.next() }
            #expect(error?.message.contains(server.url("/silent-body")) == true)
            #expect(await eventually { transport.openTransfers == 0 })
        }
    }

    @Test func aRefusedConnectionIsUnreachable() async throws {
        let port = try Self.closedPort()
        let transport = CurlUpstreamTransport(configuration: Self.quick)
        let url = "http://127.0.0.1:\(port)/mcp"
        let error = await Self.expectError(.unreachable) {
            _ = try await transport.send(UpstreamRequest(method: .post, url: url, headers: [], body: [1]))
        }
        #expect(error?.message == "upstream \(url) unreachable: Connection refused")
        #expect(transport.openTransfers == 0)
    }

    @Test func aConnectTimeoutIsUnreachable() async throws {
        try await TestUpstreamServer.with { server in
            var configuration = Self.quick
            configuration.connectTimeout = .milliseconds(200)
            let transport = CurlUpstreamTransport(configuration: configuration)
            let started = ContinuousClock.now
            _ = await Self.expectError(.unreachable) {
                _ = try await transport.send(UpstreamRequest(method: .get, url: "http://127.0.0.1:\(server.blackholePort)/mcp", headers: []))
            }
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test func anUnresolvableHostIsUnreachable() async throws {
        let transport = CurlUpstreamTransport(configuration: .init(connectTimeout: .seconds(2)))
        _ = await Self.expectError(.unreachable) {
            _ = try await transport.send(UpstreamRequest(method: .get, url: "http://toolgate-upstream.invalid/mcp", headers: []))
        }
    }

    @Test func aBodyCutShortIsATransportError() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/truncated"), headers: []))
            var received: [UInt8] = []
            let error = await Self.expectError(.transport) {
                while let chunk = try await response.body.next() { received += chunk }
            }
            #expect(received == Array("0123456789".utf8))
            #expect(error?.message.hasPrefix("upstream \(server.url("/truncated")) transport error: ") == true)
        }
    }

    @Test func aResponseThatIsNotHTTPIsATransportError() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            _ = await Self.expectError(.transport) {
                _ = try await transport.send(UpstreamRequest(method: .get, url: server.url("/garbage"), headers: []))
            }
        }
    }

    // MARK: Cancellation

    @Test func cancellingTheBodyMidStreamClosesTheConnection() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/sse?count=100000&gap_ms=5&id=c1"), headers: []))
            #expect(try await response.body.next() != nil)
            response.body.cancel()
            #expect(try await response.body.next() == nil)
            #expect(await eventually { transport.openTransfers == 0 })
            let aborted = try await eventually { try await server.control("/stream-status?id=c1")["state"] as? String == "aborted" }
            #expect(aborted)
        }
    }

    @Test func droppingAnUnreadBodyCancelsItsTransfer() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            do {
                let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/sse?count=100000&gap_ms=5&id=d1"), headers: []))
                #expect(response.status == 200)
            }
            #expect(await eventually { transport.openTransfers == 0 })
            let aborted = try await eventually { try await server.control("/stream-status?id=d1")["state"] as? String == "aborted" }
            #expect(aborted)
        }
    }

    @Test func cancellingTheTaskAwaitingTheHeadCancelsTheRequest() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let url = server.url("/hang")
            let task = Task { () async throws(UpstreamError) -> UpstreamResponse in
                try await transport.send(UpstreamRequest(method: .get, url: url, headers: []))
            }
            #expect(await eventually { transport.openTransfers == 1 })
            try await Task.sleep(for: .milliseconds(50))
            task.cancel()
            let error = await Self.expectError(.cancelled) { _ = try await task.value }
            #expect(error?.message.contains(url) == true)
            #expect(await eventually { transport.openTransfers == 0 })
        }
    }

    @Test func cancellingTheTaskAwaitingTheBodyCancelsTheTransfer() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/silent-body"), headers: []))
            #expect(try await response.body.next() == Array("hello".utf8))
            let body = response.body
            let task = Task { () async throws(UpstreamError) -> [UInt8]? in try await body.next() }
            try await Task.sleep(for: .milliseconds(50))
            task.cancel()
            _ = await Self.expectError(.cancelled) { _ = try await task.value }
            #expect(await eventually { transport.openTransfers == 0 })
        }
    }

    @Test func shutdownCancelsWhatIsInFlightAndRefusesNewRequests() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let url = server.url("/hang")
            let task = Task { () async throws(UpstreamError) -> UpstreamResponse in
                try await transport.send(UpstreamRequest(method: .get, url: url, headers: []))
            }
            #expect(await eventually { transport.openTransfers == 1 })
            transport.shutdown()
            _ = await Self.expectError(.cancelled) { _ = try await task.value }
            _ = await Self.expectError(.cancelled) {
                _ = try await transport.send(UpstreamRequest(method: .get, url: url, headers: []))
            }
            #expect(await eventually { transport.openTransfers == 0 })
        }
    }

    // MARK: Concurrency and connection reuse

    @Test func sequentialRequestsReuseOneKeepAliveConnection() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            func connections() async throws -> Int {
                let response = try await transport.send(UpstreamRequest(method: .get, url: server.url("/connections"), headers: []))
                return try Self.json(try await readAll(response.body))["count"] as? Int ?? -1
            }
            let before = try await connections()
            for i in 0..<50 {
                let response = try await transport.send(UpstreamRequest(method: .post, url: server.url("/echo"), headers: [], body: Array("\(i)".utf8)))
                _ = try await readAll(response.body)
            }
            let after = try await connections()
            #expect(before >= 1)
            #expect(after - before <= 2, "50 requests opened \(after - before) new connections")
        }
    }

    @Test func manyConcurrentRequestsAllCompleteWithTheirOwnAnswers() async throws {
        try await TestUpstreamServer.with { server in
            let transport = CurlUpstreamTransport(configuration: Self.quick)
            let url = server.url("/echo")
            let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<64 {
                    group.addTask {
                        let body = Array("request \(i) ".utf8) + [UInt8](repeating: UInt8(i), count: i * 100)
                        let response = try await transport.send(
                            UpstreamRequest(method: .post, url: url, headers: [HTTPHeader("X-Index", "\(i)")], body: body))
                        let echo = try Self.json(try await readAll(response.body))
                        return response.status == 200 && echo["body_hex"] as? String == Self.hex(body)
                            && Self.receivedHeaders(echo).contains { $0.0 == "X-Index" && $0.1 == "\(i)" }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(ok == 64)
            #expect(await eventually { transport.openTransfers == 0 })
            // A second wave finds the first wave's connections in the cache.
            let countBefore = try await server.control("/connections")["count"] as? Int ?? 0
            for i in 0..<8 {
                let response = try await transport.send(UpstreamRequest(method: .get, url: url, headers: [HTTPHeader("X-Index", "\(i)")]))
                _ = try await readAll(response.body)
            }
            let countAfter = try await server.control("/connections")["count"] as? Int ?? 0
            #expect(countAfter - countBefore <= 2, "8 requests after the wave opened \(countAfter - countBefore - 1) new connections")
        }
    }

    /// A port that nothing listens on: bound once to learn a free number, then closed.
    static func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ServerError(message: "could not bind a probe socket") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
