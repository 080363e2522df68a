import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import ToolgateCore
@testable import ToolgateServer

/// A multi-round call is one call for approvals too: approved once, its remembered follow-up does not wait for a
/// second approval, while a replayed state or other arguments need one again.
@Suite struct MultiRoundProxyTests {
    typealias P = MCPProxyTests

    static let policy = #"""
        {"version":"1","default":"deny","tools":{"wizard":{"action":"approve","approval":{"wait":"0s","ttl":"1h"}}}}
        """#

    static func call(_ id: Int, arguments: String, state: String? = nil) -> String {
        let tail = state.map { #","requestState":"\#($0)""# } ?? ""
        return #"{"jsonrpc":"2.0","id":\#(id),"method":"tools/call","params":{"name":"wizard","arguments":\#(arguments)\#(tail)}}"#
    }

    static func reason(_ response: TestResponse) -> String? {
        P.json(response)["result"]?["_meta"]?["toolgate/denial"]?["reason"]?.stringValue
    }

    @Test func anApprovedCallsFollowUpNeedsNoSecondApproval() async throws {
        let upstream = FakeUpstream { request in
            let body = (try? JSONParser.parse(request.body)) ?? .null
            let id = body["id"].map(JSONWriter.string) ?? "null"
            let result =
                body["params"]?["requestState"] == nil
                ? #"{"resultType":"input_required","requestState":"S1","inputRequests":{}}"#
                : #"{"resultType":"complete","content":[]}"#
            return FakeUpstream.response(200, contentType: "application/json", chunks: [#"{"jsonrpc":"2.0","id":\#(id),"result":\#(result)}"#])
        }
        let approvals = InMemoryApprovalStore(clock: SystemWallClock())
        let metrics = ToolgateMetrics(version: "test")
        let app = ToolgateServer.makeApplication(
            configuration: ServerConfiguration(upstreamURL: "http://upstream.test/mcp", agentID: "test-host"),
            policy: PolicyState(policy: try Policy.parse(Self.policy, file: "policy.json"), keyPrefix: "tg"),
            store: InMemoryLimitStore(clock: SystemWallClock()), storeStatus: MemoryStoreStatus(), upstream: upstream, metrics: metrics,
            readiness: .init(), logger: Logger(label: "test"), approvals: approvals)
        let a = #"{"amount":1}"#
        try await app.test(.router) { client in
            func post(_ body: String) async throws -> TestResponse {
                try await client.execute(uri: "/mcp", method: .post, headers: P.jsonHeaders, body: ByteBuffer(string: body))
            }
            let asked = try await post(Self.call(1, arguments: a))
            #expect(Self.reason(asked) == "approval_required")
            let id = try #require(P.json(asked)["result"]?["_meta"]?["toolgate/denial"]?["approvalId"]?.stringValue)
            _ = try await approvals.decide(id: id, approve: true)

            let first = try await post(Self.call(2, arguments: a))
            #expect(P.json(first)["result"]?["requestState"] == "S1")
            let other = try await post(Self.call(3, arguments: #"{"amount":1000}"#, state: "S1"))
            #expect(Self.reason(other) == "approval_required", "the state was relayed for other arguments")
            let followUp = try await post(Self.call(4, arguments: a, state: "S1"))
            #expect(P.json(followUp)["result"]?["resultType"] == "complete", "approved once, in the first round")
            #expect(Self.reason(try await post(Self.call(5, arguments: a, state: "S1"))) == "approval_required", "replayed")
        }
        #expect(upstream.requests.count == 2)
    }
}
