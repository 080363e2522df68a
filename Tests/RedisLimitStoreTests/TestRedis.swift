import Foundation
import Testing
import Logging
import ToolgateRedis

/// The redis-server that scripts/test.sh starts (TOOLGATE_TEST_REDIS_PORT). Tests share it, so each uses its
/// own key prefix, and tests that count keys use a database of their own.
enum TestRedis {
    static let port: Int? = ProcessInfo.processInfo.environment["TOOLGATE_TEST_REDIS_PORT"].flatMap(Int.init)
    static var available: Bool { port != nil }

    static func client(database: Int = 0, timeout: Duration = .seconds(2)) throws -> RedisClient {
        var configuration = RedisClient.Configuration(url: try RedisURL(parsing: "redis://127.0.0.1:\(port!)/\(database)"))
        configuration.operationTimeout = timeout
        return RedisClient(configuration: configuration, logger: Logger(label: "test-redis"))
    }

    static func uniquePrefix(_ name: String) -> String {
        "test-\(name)-\(UInt32.random(in: 0...UInt32.max))"
    }
}

/// Both suites share the test Redis, and one of them flushes its script cache: they run one test at a time.
@Suite(.serialized, .enabled(if: TestRedis.available, "scripts/test.sh starts redis-server and sets TOOLGATE_TEST_REDIS_PORT"))
enum SharedRedisTests {}
