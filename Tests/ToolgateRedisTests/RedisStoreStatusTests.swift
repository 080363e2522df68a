import Testing

@testable import ToolgateRedis

/// `/readyz`'s view of Redis settings (DESIGN.md section 3): `maxmemory-policy` is read again every few minutes
/// and after every reconnect, so an operator's `CONFIG SET` on a running Redis is warned about.
@Suite struct RedisStoreStatusTests {
    /// Runs the status service against `server` until `body` returns.
    private func withStatus(
        _ server: RedisTestServer, refresh: Duration, _ body: (RedisStoreStatus, RedisClient) async throws -> Void
    ) async throws {
        let client = makeClient(server.url)
        let status = RedisStoreStatus(client: client, logger: testLogger, settingsRefreshInterval: refresh)
        let running = Task { try await status.run() }
        defer {
            running.cancel()
            client.shutdown()
        }
        try await body(status, client)
    }

    private func warnsAbout(_ status: RedisStoreStatus, _ policy: String) -> Bool {
        status.warnings.contains { $0.contains("maxmemory-policy is \(policy)") }
    }

    @Test func aPolicyChangedWithConfigSetIsSeenWithinTheRefreshInterval() async throws {
        try await RedisTestServer.with(["--maxmemory-policy", "allkeys-lru"]) { server async throws in
            try await withStatus(server, refresh: .milliseconds(300)) { status, _ in
                #expect(await eventually(within: .seconds(30)) { warnsAbout(status, "allkeys-lru") })
                _ = try server.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
                #expect(await eventually(within: .seconds(30)) { status.warnings.isEmpty }, "a fixed policy clears the warning")
                _ = try server.cli("CONFIG", "SET", "maxmemory-policy", "volatile-lru")
                #expect(await eventually(within: .seconds(30)) { warnsAbout(status, "volatile-lru") }, "\(status.warnings)")
            }
        }
    }

    @Test func aReconnectReadsThePolicyAgainAtOnce() async throws {
        try await RedisTestServer.with(["--maxmemory-policy", "noeviction"]) { server async throws in
            // An interval no test waits out: only the reconnect can make it read again.
            try await withStatus(server, refresh: .seconds(3600)) { status, client in
                #expect(await eventually(within: .seconds(30)) { status.isConnected && client.statistics.connects >= 2 })
                // The first read is done once Redis counted a CONFIG GET; only then change the setting.
                #expect(await eventually(within: .seconds(30)) { ((try? server.cli("INFO", "commandstats")) ?? "").contains("cmdstat_config|get:") })
                #expect(status.warnings.isEmpty)
                _ = try server.cli("CONFIG", "SET", "maxmemory-policy", "allkeys-random")
                let connects = client.statistics.connects
                _ = try server.cli("CLIENT", "KILL", "TYPE", "normal")
                #expect(await eventually(within: .seconds(30)) { client.statistics.connects > connects })
                // Generous: on a loaded machine a read may time out and be retried a few times.
                #expect(await eventually(within: .seconds(30)) { warnsAbout(status, "allkeys-random") }, "\(status.warnings)")
            }
        }
    }
}
