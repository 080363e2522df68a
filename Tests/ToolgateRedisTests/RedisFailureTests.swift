import Foundation
import Testing

@testable import ToolgateRedis

/// A Redis that stops, dies, comes back, or was never there; and shutdown. No wall-clock assertions: that a call
/// ends is shown by its returning with the right error code (a hang trips the suite's time limit), and that calls
/// fail fast with no connection up is the state machine's, tested on an injected clock
/// (`RedisConnectionStateMachineTests.afterAFailureRequestsFailFastAndBackoffDoublesToItsCap`).
@Suite(.serialized, .timeLimit(.minutes(2))) struct RedisFailureTests {
    @Test func aStoppedRedisTimesCallsOutTurnsUnhealthyAndThenFailsFast() async throws {
        try await RedisTestServer.with { server async throws in
            // A long connect timeout, so that failing fast below cannot be mistaken for a connect attempt ending.
            let client = makeClient(server.url, operationTimeout: .milliseconds(200), connectTimeout: .seconds(5))
            defer { client.shutdown() }
            #expect(await eventually(within: .seconds(5)) { client.isHealthy })

            server.pause()
            defer { server.resume() }
            let timeoutsBefore = client.statistics.timeouts
            let error = await failure { try await client.send(["SET", "k", "v"]) }
            #expect(error?.code == .timeout, "a call to a stopped Redis must time out, not hang")
            #expect(client.statistics.timeouts == timeoutsBefore + 1)
            #expect(await eventually(within: .seconds(3)) { !client.isHealthy })
            #expect(await client.ping() == false)

            // Replies owed for too long: the connections are dropped as stuck, and reconnecting cannot finish the
            // handshake against a stopped server, so calls are refused at once instead of waiting for it.
            #expect(await eventually(within: .seconds(5)) {
                await failure { try await client.send(["PING"]) }?.code == .connectionFailed
            })
            let refused = await failure { try await client.send(["PING"]) }
            #expect(refused?.code == .connectionFailed)

            server.resume()
            #expect(await eventually(within: .seconds(8)) { (try? await client.send(["PING"])) == .simpleString("PONG") })
            #expect(await eventually(within: .seconds(3)) { client.isHealthy })
        }
    }

    @Test func aLateReplyGoesToItsHandlerAndNeverToTheNextCaller() async throws {
        try await RedisTestServer.with { server async throws in
            // Stuck after 4 x 1 s: the server is resumed right after the timeout, well before that.
            let client = makeClient(server.url, operationTimeout: .seconds(1), connections: 1)
            defer { client.shutdown() }
            #expect(try await client.send(["PING"]) == .simpleString("PONG"))

            let late = Recorder<RedisValue>()
            server.pause()
            let error = await failure {
                try await client.send(["INCR", "late"], onLateReply: { late.record($0) })
            }
            server.resume()
            #expect(error?.code == .timeout)

            // The INCR's reply comes first on the wire; this call must get its own.
            #expect(try await client.send(["ECHO", "next"]) == .bulk("next"))
            #expect(await eventually(within: .seconds(3)) { late.recorded == [.integer(1)] })
            #expect(try await client.send(["GET", "late"]) == .bulk("1"))
            #expect(client.statistics.lateReplies >= 1)
            #expect(client.statistics.timeouts >= 1)
        }
    }

    @Test func aRestartedRedisIsUsedAgainWithoutANewClient() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(server.url.with(database: 2))
            defer { client.shutdown() }
            #expect(try await client.send(["SET", "before", "1"]) == .simpleString("OK"))
            let connectsBefore = client.statistics.connects

            server.kill()
            // Whichever way a call learns of it (write error, reset, refused reconnect), it is a connection failure.
            let whileDown = await failure { try await client.send(["GET", "before"]) }
            #expect(whileDown?.code == .connectionFailed)
            #expect(await eventually(within: .seconds(3)) { !client.isHealthy })
            let stillDown = await failure { try await client.send(["PING"]) }
            #expect(stillDown?.code == .connectionFailed)

            // Down long enough for the backoff to reach its 1 s cap (50 + 100 + 200 + 400 + 800 ms of attempts).
            try await Task.sleep(for: .milliseconds(1600))
            let restarting = ContinuousClock.now
            try await server.restart()
            let answering = ContinuousClock.now
            #expect(await eventually(within: .seconds(5)) { (try? await client.send(["PING"])) == .simpleString("PONG") })
            print("restart: redis-server answered after \(answering - restarting), the client \(ContinuousClock.now - answering) later")
            #expect(await eventually(within: .seconds(3)) { client.isHealthy })
            // The reconnect selected database 2 again.
            #expect(try await client.send(["SET", "after", "2"]) == .simpleString("OK"))
            #expect(try server.cli("-n", "2", "GET", "after") == "2")
            #expect(client.statistics.connects > connectsBefore)
            // Every context of the failed attempts was freed: at most one per connection is left.
            #expect(client.openContexts <= 2)
            client.shutdown()
            #expect(await eventually(within: .seconds(3)) { client.openContexts == 0 })
        }
    }

    @Test func withNoRedisAtAllCallsFailFast() async throws {
        let port = try RedisTestServer.freePort()
        let client = makeClient(RedisURL(host: "127.0.0.1", port: port), connectTimeout: .seconds(5))
        defer { client.shutdown() }
        let first = await failure { try await client.send(["PING"]) }
        #expect(first?.code == .connectionFailed)
        #expect(first?.message.contains("refused") == true, "\(first?.message ?? "")")
        for _ in 0..<20 {
            #expect(await failure { try await client.send(["PING"]) }?.code == .connectionFailed)
        }
        #expect(!client.isHealthy)
        #expect(await client.ping() == false)
        #expect(client.statistics.connects == 0)
        // Each refused attempt freed its context; at most the attempt in flight holds one per connection.
        #expect(client.openContexts <= 2)
        client.shutdown()
        #expect(await eventually(within: .seconds(3)) { client.openContexts == 0 })
    }

    @Test func shutdownResumesEveryWaitingCaller() async throws {
        try await RedisTestServer.with { server async throws in
            // Nothing times out by itself here: only shutdown can end these calls.
            let client = makeClient(server.url, operationTimeout: .seconds(60))
            #expect(try await client.send(["PING"]) == .simpleString("PONG"))
            server.pause()
            defer { server.resume() }
            let callers = 200
            let errors = await withTaskGroup(of: RedisError?.self) { group in
                for caller in 0..<callers {
                    group.addTask { await failure { try await client.send(["SET", "k\(caller)", "v"]) } }
                }
                group.addTask {
                    // Let the calls reach the connections (most are written, some may still be queued), then stop.
                    try? await Task.sleep(for: .milliseconds(300))
                    client.shutdown()
                    return nil
                }
                return await group.reduce(into: [RedisError?]()) { $0.append($1) }
            }
            // Every caller returned (or the time limit trips), each with `.closed`.
            let codes = errors.compactMap { $0?.code }
            #expect(codes.count == callers)
            #expect(codes.allSatisfy { $0 == .closed })
            #expect(await failure { try await client.send(["PING"]) }?.code == .closed)
            #expect(await client.ping() == false)
            #expect(!client.isHealthy)
            #expect(await eventually(within: .seconds(3)) { client.openContexts == 0 })
        }
    }
}
