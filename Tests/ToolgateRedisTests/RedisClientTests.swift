import Foundation
import Testing
import ToolgateRedis

/// Commands and replies against a real redis-server: values, binary safety, login, database, pipelining.
@Suite struct RedisClientTests {
    @Test func argumentsAndRepliesAreBinarySafe() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(server.url)
            defer { client.shutdown() }
            var generator = SystemRandomNumberGenerator()
            let value: [UInt8] = [0, 13, 10, 0xff, UInt8(ascii: "$"), UInt8(ascii: "*"), 0] + (0..<100_000).map { _ in generator.next() }
            let key: [UInt8] = Array("bin\u{0}key\r\n".utf8)
            #expect(try await client.send([Array("SET".utf8), key, value]) == .simpleString("OK"))
            #expect(try await client.send([Array("GET".utf8), key]) == .bulkString(value))
            #expect(try await client.send([Array("STRLEN".utf8), key]) == .integer(Int64(value.count)))
            #expect(try await client.send(["ECHO", "héllo ✓"]) == .bulk("héllo ✓"))
            #expect(try await client.send(["ECHO", ""]) == .bulkString([]))
        }
    }

    @Test func errorRepliesAreValuesAndKeepTheConnectionInStep() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(server.url)
            defer { client.shutdown() }
            guard case .error(let unknown) = try await client.send(["NOSUCHCOMMAND", "x"]) else {
                Issue.record("an unknown command should answer an error reply")
                return
            }
            #expect(unknown.hasPrefix("ERR unknown command"))
            let sha = String(repeating: "0", count: 40)
            guard case .error(let noscript) = try await client.send(["EVALSHA", sha, "0"]) else {
                Issue.record("EVALSHA of an unknown script should answer NOSCRIPT")
                return
            }
            #expect(noscript.hasPrefix("NOSCRIPT"))
            #expect(try await client.send(["SET", "text", "abc"]) == .simpleString("OK"))
            guard case .error(let notInteger) = try await client.send(["INCR", "text"]) else {
                Issue.record("INCR of a non-number should answer an error reply")
                return
            }
            #expect(notInteger.contains("not an integer"))
            // Each reply went to its own call: the next one is not shifted.
            #expect(try await client.send(["ECHO", "after errors"]) == .bulk("after errors"))
        }
    }

    @Test func everyKindOfReply() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(server.url)
            defer { client.shutdown() }
            #expect(try await client.send(["INCR", "n"]) == .integer(1))
            #expect(try await client.send(["DECRBY", "n", "6"]) == .integer(-5))
            #expect(try await client.send(["GET", "missing"]) == .bulkString(nil))
            #expect(try await client.send(["RPUSH", "list", "a", "", "c"]) == .integer(3))
            #expect(try await client.send(["LRANGE", "list", "0", "-1"]) == .array([.bulk("a"), .bulkString([]), .bulk("c")]))
            #expect(try await client.send(["LRANGE", "missing", "0", "-1"]) == .array([]))
            #expect(try await client.send(["MGET", "missing", "n"]) == .array([.bulkString(nil), .bulk("-5")]))
            // A BLPOP that times out answers the null array, which hiredis alone cannot tell from a null bulk.
            #expect(try await client.send(["BLPOP", "empty", "0.01"]) == .array(nil))
            let script = "return {1, 'a', {2, false, {}}, redis.status_reply('fine')}"
            #expect(
                try await client.send(["EVAL", script, "0"])
                    == .array([.integer(1), .bulk("a"), .array([.integer(2), .bulkString(nil), .array([])]), .simpleString("fine")]))
            #expect(try await client.send(["EVAL", "return redis.error_reply('MYERR bad')", "0"]) == .error("MYERR bad"))
            #expect(try await client.send(["EVAL", "return false", "0"]) == .bulkString(nil))
            #expect(try await client.send(["PING"]).string == "PONG")
        }
    }

    @Test func commandsThatWouldBreakASharedConnectionAreRefusedBeforeSending() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(server.url)
            defer { client.shutdown() }
            _ = try await client.send(["PING"])
            let sentBefore = client.statistics.commands
            for command in [["MULTI"], ["exec"], ["SELECT", "1"], ["AUTH", "x"], ["SUBSCRIBE", "c"], ["client", "reply", "off"], ["MONITOR"], ["HELLO", "3"], [], [""]] {
                let error = await failure { try await client.send(command) }
                #expect(error?.code == .protocolError, "\(command)")
            }
            #expect(client.statistics.commands == sentBefore)
            guard case .integer = try await client.send(["CLIENT", "ID"]) else {
                Issue.record("other CLIENT subcommands stay allowed")
                return
            }
        }
    }

    @Test func callsMadeRightAfterStartWaitForTheFirstConnection() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(server.url)
            defer { client.shutdown() }
            #expect(try await client.send(["PING"]) == .simpleString("PONG"))
            #expect(client.statistics.connects >= 1)
        }
    }

    @Test func pingAndHealthFollowAReachableServer() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(server.url)
            defer { client.shutdown() }
            #expect(await eventually(within: .seconds(5)) { client.isHealthy })
            #expect(await client.ping())
        }
    }

    @Test func requirepassLogsInWithThePasswordFromTheURL() async throws {
        try await RedisTestServer.with(["--requirepass", "s3cret:@/"], cliPassword: "s3cret:@/") { server async throws in
            let client = makeClient(try server.url(":s3cret%3A%40%2F@"))
            defer { client.shutdown() }
            #expect(try await client.send(["ACL", "WHOAMI"]) == .bulk("default"))
            #expect(try await client.send(["SET", "k", "v"]) == .simpleString("OK"))
            #expect(try server.cli("GET", "k") == "v")
        }
    }

    @Test func aMissingOrWrongPasswordFailsWithAMessageThatSaysSo() async throws {
        try await RedisTestServer.with(["--requirepass", "s3cret"], cliPassword: "s3cret") { server async throws in
            let anonymous = makeClient(server.url)
            defer { anonymous.shutdown() }
            let missing = await failure { try await anonymous.send(["PING"]) }
            #expect(missing?.code == .connectionFailed)
            #expect(missing?.message.contains("requires a password") == true, "\(missing?.message ?? "")")

            let wrong = makeClient(try server.url(":not-it@"))
            defer { wrong.shutdown() }
            let refused = await failure { try await wrong.send(["PING"]) }
            #expect(refused?.code == .connectionFailed)
            #expect(refused?.message.contains("refused AUTH") == true, "\(refused?.message ?? "")")
            #expect(refused?.message.contains("not-it") == false)
            #expect(!wrong.isHealthy)
        }
    }

    @Test func anACLUserLogsInWithUserAndPassword() async throws {
        try await RedisTestServer.with { server async throws in
            #expect(try server.cli("ACL", "SETUSER", "alice", "on", ">wonder@land", "~*", "&*", "+@all") == "OK")
            #expect(try server.cli("ACL", "SETUSER", "bob", "on", ">pw", "~*", "-@all", "+ping") == "OK")
            let alice = makeClient(try server.url("alice:wonder%40land@"))
            defer { alice.shutdown() }
            #expect(try await alice.send(["ACL", "WHOAMI"]) == .bulk("alice"))

            // Bob may log in and PING, nothing else: what he may not do comes back as an error reply.
            let bob = makeClient(try server.url("bob:pw@"))
            defer { bob.shutdown() }
            guard case .error(let denied) = try await bob.send(["GET", "x"]) else {
                Issue.record("bob has no permission for GET")
                return
            }
            #expect(denied.hasPrefix("NOPERM"))

            let mallory = makeClient(try server.url("alice:guess@"))
            defer { mallory.shutdown() }
            #expect(await failure { try await mallory.send(["PING"]) }?.code == .connectionFailed)
        }
    }

    @Test func theDatabaseFromTheURLIsSelected() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(try server.url("").with(database: 5))
            defer { client.shutdown() }
            #expect(try await client.send(["SET", "where", "five"]) == .simpleString("OK"))
            #expect(try server.cli("-n", "5", "GET", "where") == "five")
            #expect(try server.cli("-n", "0", "EXISTS", "where") == "0")

            let outOfRange = makeClient(try server.url("").with(database: 99))
            defer { outOfRange.shutdown() }
            let error = await failure { try await outOfRange.send(["PING"]) }
            #expect(error?.code == .connectionFailed)
            #expect(error?.message.contains("SELECT 99") == true, "\(error?.message ?? "")")
        }
    }

    /// 2000 callers at once over 2 connections: every caller gets its own reply, and the commands go out in
    /// batches, far fewer `write()` calls than commands.
    @Test func concurrentCallersArePipelinedInBatches() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(server.url)
            defer { client.shutdown() }
            _ = try await client.send(["PING"])
            let before = client.statistics
            let callers = 2000
            let keys = 20
            let results = try await withThrowingTaskGroup(of: (Int, RedisValue, RedisValue).self) { group in
                for caller in 0..<callers {
                    group.addTask {
                        async let counted = client.send(["INCR", "counter:\(caller % keys)"])
                        async let echoed = client.send(["ECHO", "caller \(caller)"])
                        return (caller, try await counted, try await echoed)
                    }
                }
                return try await group.reduce(into: [(Int, RedisValue, RedisValue)]()) { $0.append($1) }
            }
            #expect(results.count == callers)
            for (caller, _, echoed) in results {
                #expect(echoed == .bulk("caller \(caller)"))
            }
            // Each INCR saw a distinct count: per key, exactly 1...100, no reply given twice or lost.
            for key in 0..<keys {
                let counts = results.filter { $0.0 % keys == key }.compactMap { result -> Int64? in
                    if case .integer(let count) = result.1 { return count }
                    return nil
                }
                #expect(counts.sorted() == Array(1...Int64(callers / keys)))
            }
            let after = client.statistics
            let commands = after.commands - before.commands
            let writes = after.writes - before.writes
            #expect(commands >= callers * 2)
            // One write per command would be no pipelining at all; the batch size varies with scheduling.
            #expect(writes * 3 <= commands, "\(commands) commands in \(writes) writes")
            let spread = zip(after.commandsPerConnection, before.commandsPerConnection).map { $0 - $1 }
            #expect(spread.allSatisfy { $0 * 10 >= commands }, "commands per connection: \(spread)")
            print("pipelining: \(commands) commands in \(writes) writes (\(commands / max(writes, 1)) per write), per connection \(spread)")
        }
    }

    /// Values larger than a socket buffer, interleaved with small commands: partial writes and reads keep order.
    @Test func largeValuesInterleaveWithSmallCommands() async throws {
        try await RedisTestServer.with { server async throws in
            let client = makeClient(server.url)
            defer { client.shutdown() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        let value = [UInt8](repeating: UInt8(index), count: 512 * 1024 + index)
                        let key = Array("big\(index)".utf8)
                        let stored = try await client.send([Array("SET".utf8), key, value])
                        let echoed = try await client.send(["ECHO", "small \(index)"])
                        let read = try await client.send([Array("GET".utf8), key])
                        #expect(stored == .simpleString("OK"))
                        #expect(echoed == .bulk("small \(index)"))
                        #expect(read == .bulkString(value))
                    }
                }
                try await group.waitForAll()
            }
        }
    }
}

extension RedisURL {
    func with(database: Int) -> RedisURL {
        var url = self
        url.database = database
        return url
    }
}
