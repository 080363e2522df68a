import Logging
import Synchronization
import ToolgateRedis

/// Errors only: the client logs its reconnects as warnings, which these tests cause on purpose.
let testLogger: Logger = {
    var logger = Logger(label: "toolgate.redis.test")
    logger.logLevel = .error
    return logger
}()

/// The operation timeout defaults to a generous 5 s: tests that are not about timeouts must not fail because a
/// busy 2-core machine (tests run in parallel, debug builds) delayed a reply past the production 100 ms.
func makeClient(
    _ url: RedisURL,
    operationTimeout: Duration = .seconds(5),
    connectTimeout: Duration = .seconds(1),
    connections: Int = 2
) -> RedisClient {
    RedisClient(
        configuration: .init(url: url, connections: connections, operationTimeout: operationTimeout, connectTimeout: connectTimeout),
        logger: testLogger)
}

/// Polls `condition` every 20 ms; false if it never held within `limit`. Only ever used as a generous upper bound.
func eventually(within limit: Duration, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

/// The error a call threw, or nil if it returned. (The closure's error type is untyped: Swift infers no typed
/// throws for closures yet. `send` throws only `RedisError`.)
func failure(of call: () async throws -> RedisValue) async -> RedisError? {
    do {
        _ = try await call()
        return nil
    } catch {
        return error as? RedisError
    }
}

/// Something a `@Sendable` callback can write into and the test can read.
final class Recorder<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])
    func record(_ value: Value) { values.withLock { $0.append(value) } }
    var recorded: [Value] { values.withLock { $0 } }
}

extension RedisValue {
    static func bulk(_ text: String) -> RedisValue { .bulkString(Array(text.utf8)) }
}
