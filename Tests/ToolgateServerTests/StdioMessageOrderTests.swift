import Testing
import ToolgateCore
@testable import ToolgateServer

/// Issue 23 item 2: which order each stdin message needs, and the signals the stdio front waits on.
@Suite struct StdioMessageOrderTests {
    static func order(_ json: String) -> StdioMessageOrder {
        StdioMessageOrder(try? JSONParser.parse(Array(json.utf8)))
    }

    @Test func initializeHoldsEverythingAfterIt() {
        #expect(Self.order(#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#) == .initialize)
    }

    @Test func requestsAndAnswersRunSideBySide() {
        #expect(Self.order(#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#) == .concurrent(requestID: .number(JSONNumber(7))))
        #expect(Self.order(#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#) == .concurrent(requestID: .string("a")))
        #expect(Self.order(#"{"jsonrpc":"2.0","id":3,"result":{}}"#) == .concurrent(requestID: nil))
    }

    @Test func notificationsAndBatchesAreBarriers() {
        #expect(Self.order(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#) == .barrier)
        #expect(Self.order(#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#) == .barrier)
        #expect(Self.order(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#) == .barrier)
    }

    @Test func aCancellationWaitsOnlyForItsRequest() {
        #expect(
            Self.order(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}"#)
                == .cancellation(of: .number(JSONNumber(4))))
    }

    @Test func whatIsNotJSONRPCIsUnordered() {
        #expect(Self.order("not json") == .unordered)
        #expect(Self.order("42") == .unordered)
    }

    @Test func aSignalWakesWhoWaitsAndStaysOpen() async {
        let signal = StdioSignal()
        #expect(!signal.isOpen)
        async let woken: Void = signal.wait()
        signal.open()
        await woken
        #expect(signal.isOpen)
        await signal.wait()  // already open: returns at once
    }

    @Test func theOrderedUpstreamReportsHandoverAndReceipt() async throws {
        struct Answering: UpstreamTransport {
            let progress: StdioMessageProgress
            func send(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
                #expect(progress.handedOver.isOpen)
                #expect(!progress.received.isOpen)
                return UpstreamResponse(status: 202, headers: [], body: ChunkedBody([]))
            }
        }
        let progress = StdioMessageProgress()
        let upstream = StdioOrderedUpstream(upstream: Answering(progress: progress))
        let request = UpstreamRequest(method: .post, url: "http://127.0.0.1/mcp", headers: [], body: [])
        _ = try await StdioMessageProgress.$current.withValue(progress) { try await upstream.send(request) }
        #expect(progress.handedOver.isOpen && progress.received.isOpen)
    }
}
