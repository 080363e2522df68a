import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import ToolgateCore
@testable import ToolgateServer

/// `/admin` through the router on a manual clock: sign-in secrets expire (idle, absolute) and are revoked without
/// any sleeping; failed sign-ins are throttled; no cookie opens anything.
@Suite struct AdminRoutesTests {
    static let token = "admin-token-0123456789abcdef"
    static let minute: Int64 = 60_000_000
    static let session = HTTPField.Name("X-Toolgate-Admin-Session")!

    static func app(clock: ManualWallClock) throws -> some ApplicationProtocol {
        var configuration = ServerConfiguration(upstreamURL: "http://upstream.test/mcp", agentID: "test-host")
        configuration.adminToken = token
        return ToolgateServer.makeApplication(
            configuration: configuration,
            policy: PolicyState(policy: try Policy.parse(#"{"version":"1","tools":{}}"#, file: "policy.json"), keyPrefix: "tg"),
            store: InMemoryLimitStore(clock: SystemWallClock()), storeStatus: MemoryStoreStatus(), upstream: FakeUpstream { _ in FakeUpstream.response(404, contentType: "text/plain", chunks: [""]) },
            metrics: ToolgateMetrics(version: "test"), readiness: .init(), logger: Logger(label: "test"), adminClock: clock)
    }

    static func signIn(_ client: some TestClientProtocol, _ token: String) async throws -> (HTTPResponse.Status, String?, String?) {
        try await client.execute(
            uri: "/admin/session", method: .post, headers: [.contentType: "application/json"],
            body: ByteBuffer(string: #"{"token":"\#(token)"}"#)
        ) { response in
            let body = try? JSONParser.parse(Array(response.body.readableBytesView))
            return (response.status, body?["session"]?.stringValue, response.headers[.retryAfter])
        }
    }

    static func list(_ client: some TestClientProtocol, _ headers: HTTPFields) async throws -> HTTPResponse.Status {
        try await client.execute(uri: "/admin/approvals", method: .get, headers: headers) { $0.status }
    }

    @Test func secretsExpireWhenIdleAndAtTwelveHoursAndOnSignOut() async throws {
        let clock = ManualWallClock(micros: 1_000_000)
        try await Self.app(clock: clock).test(.router) { client in
            let (status, secret, _) = try await Self.signIn(client, Self.token)
            #expect(status == .ok)
            let secretValue = try #require(secret)
            #expect(try await Self.list(client, [Self.session: secretValue]) == .ok)
            // Idle for 30 minutes: gone.
            clock.advance(micros: 30 * Self.minute)
            #expect(try await Self.list(client, [Self.session: secretValue]) == .unauthorized)

            // Used every 20 minutes, it lives 12 hours and no longer.
            let (_, second, _) = try await Self.signIn(client, Self.token)
            let busy = try #require(second)
            for _ in 0..<35 {
                clock.advance(micros: 20 * Self.minute)
                #expect(try await Self.list(client, [Self.session: busy]) == .ok)
            }
            clock.advance(micros: 20 * Self.minute)  // 12 h since sign-in
            #expect(try await Self.list(client, [Self.session: busy]) == .unauthorized)

            // Sign-out revokes at once.
            let (_, third, _) = try await Self.signIn(client, Self.token)
            let revoked = try #require(third)
            let signedOut = try await client.execute(uri: "/admin/session", method: .delete, headers: [Self.session: revoked]) { $0.status }
            #expect(signedOut == .noContent)
            #expect(try await Self.list(client, [Self.session: revoked]) == .unauthorized)
            // No cookie opens anything, whatever it holds.
            let (_, fourth, _) = try await Self.signIn(client, Self.token)
            let live = try #require(fourth)
            #expect(try await Self.list(client, [.cookie: "toolgate_admin=\(live)"]) == .unauthorized)
            #expect(try await Self.list(client, [.authorization: "Bearer \(Self.token)"]) == .ok)
        }
    }

    @Test func failedSignInsAreThrottledUntilTheWindowEnds() async throws {
        let clock = ManualWallClock(micros: 1_000_000)
        try await Self.app(clock: clock).test(.router) { client in
            for _ in 0..<5 { #expect(try await Self.signIn(client, "wrong-token-guess").0 == .unauthorized) }
            let (status, secret, retryAfter) = try await Self.signIn(client, Self.token)
            #expect(status == .tooManyRequests && secret == nil && retryAfter == "60")
            clock.advance(micros: 30_000_000)
            #expect(try await Self.signIn(client, Self.token).2 == "30")
            clock.advance(micros: 30_000_000)
            #expect(try await Self.signIn(client, Self.token).0 == .ok)
        }
    }

    @Test func wrongBearerTokensOnTheAPICountTowardsTheThrottle() async throws {
        let clock = ManualWallClock(micros: 1_000_000)
        try await Self.app(clock: clock).test(.router) { client in
            let wrong: HTTPFields = [.authorization: "Bearer wrong-token-guess"]
            let right: HTTPFields = [.authorization: "Bearer " + Self.token]
            for _ in 0..<5 {
                let status = try await Self.list(client, wrong)
                #expect(status == .unauthorized)
            }
            let held = try await Self.list(client, right)
            #expect(held == .tooManyRequests)
            let signIn = try await Self.signIn(client, Self.token)
            #expect(signIn.0 == .tooManyRequests)
            clock.advance(micros: 60_000_000)
            let later = try await Self.list(client, right)
            #expect(later == .ok)
        }
    }
}
