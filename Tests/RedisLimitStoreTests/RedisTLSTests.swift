import Logging
import Testing
import ToolgateCore
@testable import ToolgateRedis

/// `rediss://` against a real TLS-only redis-server with certificates made by `openssl`: decisions over TLS, and each
/// way verification can refuse a server (or a server refuse toolgate) named in the failure, with no plaintext fallback.
@Suite(.enabled(if: TestRedisCluster.available, "needs redis-server and redis-cli"))
struct RedisTLSTests {
    static func client(
        _ server: TestTLSRedis, options: RedisTLSOptions, scheme: String = "rediss", credentials: String = ""
    ) throws -> RedisClient {
        var configuration = RedisClient.Configuration(url: try RedisURL(parsing: "\(scheme)://\(credentials)127.0.0.1:\(server.port)"))
        configuration.operationTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        configuration.tls = try RedisTLSContext(options: options)
        return RedisClient(configuration: configuration, logger: Logger(label: "test-tls"))
    }

    /// The error of the first call (which waits for the first connect attempt), and the client's reason.
    static func refusal(_ client: RedisClient) async -> String {
        do {
            _ = try await client.send(["PING"])
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test func decisionsRunOverMutualTLSWithThePasswordInside() async throws {
        let server = try await TestTLSRedis.start(requireClientCertificate: true, extra: ["--requirepass", "s3cret"])
        defer { server.stop() }
        let certificates = server.certificates
        let client = try Self.client(
            server,
            options: RedisTLSOptions(
                caFile: certificates.ca, certificateFile: certificates.clientCertificate, keyFile: certificates.clientKey),
            credentials: ":s3cret@")
        defer { client.shutdown() }
        let store = RedisLimitStore(client: client, keyPrefix: "tls", logger: Logger(label: "test"))
        let charge = LimitCharge(
            key: "tls:{global:_}:c", counter: "c", rule: "t", scope: .global, window: Window(seconds: 60, text: "60s"), max: 3,
            algorithm: .sliding, cost: 1)
        var admitted: [Bool] = []
        for call in 1...4 { admitted.append(try await store.acquire(LimitRequest(callID: "\(call)", charges: [charge])).admitted) }
        #expect(admitted == [true, true, true, false])
        #expect(try server.cli("-a", "s3cret", "--no-auth-warning", "ZCOUNT", "tls:{global:_}:c", "0", "+inf") == "3")
    }

    @Test func aServerSignedByAnotherCAIsRefusedWithOpenSSLsReason() async throws {
        let server = try await TestTLSRedis.start()
        defer { server.stop() }
        let client = try Self.client(server, options: RedisTLSOptions(caFile: server.certificates.otherCA))
        defer { client.shutdown() }
        let message = await Self.refusal(client)
        // OpenSSL's verify result in words (which one depends on the chain the server sends).
        let reasons = ["unable to get local issuer certificate", "self-signed certificate in certificate chain"]
        #expect(reasons.contains { message.contains("certificate was refused: \($0)") }, "\(message)")
        #expect(message.contains("not signed by a trusted CA; --redis-ca-file"))
        let problem = client.unavailableReason ?? ""
        #expect(reasons.contains { problem.contains($0) }, "\(problem)")
    }

    @Test func theSystemCAStoreDoesNotTrustATestCA() async throws {
        let server = try await TestTLSRedis.start()
        defer { server.stop() }
        let client = try Self.client(server, options: RedisTLSOptions())
        defer { client.shutdown() }
        let message = await Self.refusal(client)
        #expect(message.contains("certificate was refused"), "\(message)")
    }

    @Test func aWrongServerNameIsRefused() async throws {
        let server = try await TestTLSRedis.start()
        defer { server.stop() }
        let client = try Self.client(server, options: RedisTLSOptions(caFile: server.certificates.ca, serverName: "redis.example"))
        defer { client.shutdown() }
        let message = await Self.refusal(client)
        #expect(message.contains("hostname mismatch"), "\(message)")
        #expect(message.contains("redis.example") && message.contains("--redis-tls-server-name"))

        // The name the certificate carries works, though the URL says 127.0.0.1.
        let named = try Self.client(server, options: RedisTLSOptions(caFile: server.certificates.ca, serverName: "localhost"))
        defer { named.shutdown() }
        #expect(try await named.send(["PING"]) == .simpleString("PONG"))
    }

    @Test func aMissingClientCertificateIsRefusedWhenTheServerWantsOne() async throws {
        let server = try await TestTLSRedis.start(requireClientCertificate: true)
        defer { server.stop() }
        let client = try Self.client(server, options: RedisTLSOptions(caFile: server.certificates.ca))
        defer { client.shutdown() }
        let message = await Self.refusal(client)
        #expect(message.contains("--redis-cert-file"), "\(message)")
    }

    @Test func plaintextToATLSPortGetsAHint() async throws {
        let server = try await TestTLSRedis.start()
        defer { server.stop() }
        let client = try Self.client(server, options: RedisTLSOptions(), scheme: "redis")
        defer { client.shutdown() }
        let message = await Self.refusal(client)
        #expect(message.contains("the server may want TLS: use rediss://"), "\(message)")
    }

    @Test func tlsToAPlaintextPortFailsTheHandshake() async throws {
        let server = try await TestTLSRedis.start(tls: false)
        defer { server.stop() }
        let client = try Self.client(server, options: RedisTLSOptions(caFile: server.certificates.ca))
        defer { client.shutdown() }
        let message = await Self.refusal(client)
        #expect(message.contains("TLS handshake"), "\(message)")
        #expect(message.contains("TLS port") || message.contains("does not speak TLS"), "\(message)")
    }

    @Test func badTLSFilesAreRefusedAtStart() throws {
        #expect(throws: RedisError.self) { try RedisTLSContext(options: RedisTLSOptions(caFile: "/nonexistent/ca.pem")) }
        #expect(throws: RedisError.self) {
            try RedisTLSContext(options: RedisTLSOptions(certificateFile: "/nonexistent/c.pem", keyFile: "/nonexistent/k.pem"))
        }
    }
}
