import Testing
import ToolgateRedis

@Suite struct RedisURLTests {
    @Test func parsesEveryPart() throws {
        let url = try RedisURL(parsing: "redis://alice:s3cret@redis.internal:6380/4")
        #expect(url == RedisURL(host: "redis.internal", port: 6380, username: "alice", password: "s3cret", database: 4))
    }

    @Test func defaultsToPort6379AndDatabase0() throws {
        #expect(try RedisURL(parsing: "redis://localhost") == RedisURL(host: "localhost", port: 6379, database: 0))
        #expect(try RedisURL(parsing: "redis://127.0.0.1/") == RedisURL(host: "127.0.0.1"))
        #expect(try RedisURL(parsing: "REDIS://h:1") == RedisURL(host: "h", port: 1))
    }

    @Test func passwordWithoutUserIsForTheDefaultUser() throws {
        let url = try RedisURL(parsing: "redis://:pw@h")
        #expect(url.username == nil)
        #expect(url.password == "pw")
    }

    @Test func percentDecodesUserAndPassword() throws {
        let url = try RedisURL(parsing: "redis://us%65r%3A1:p%40ss%2Fw%3Ard%25@h:7000")
        #expect(url.username == "user:1")
        #expect(url.password == "p@ss/w:rd%")
        #expect(url.host == "h")
        #expect(url.port == 7000)
    }

    @Test func anUnencodedAtOrSlashInThePasswordStillParses() throws {
        let url = try RedisURL(parsing: "redis://u:p@s/s@h:7001/2")
        #expect(url == RedisURL(host: "h", port: 7001, username: "u", password: "p@s/s", database: 2))
    }

    @Test func bracketedIPv6Host() throws {
        #expect(try RedisURL(parsing: "redis://[::1]:6390/1") == RedisURL(host: "::1", port: 6390, database: 1))
        #expect(try RedisURL(parsing: "redis://[::1]") == RedisURL(host: "::1"))
    }

    @Test func redissAsksForTLS() throws {
        let url = try RedisURL(parsing: "rediss://u:topsecret@redis.example:6380")
        #expect(url == RedisURL(host: "redis.example", port: 6380, username: "u", password: "topsecret", usesTLS: true))
        #expect(url.description == "rediss://u:***@redis.example:6380/0")
        #expect(try RedisURL(parsing: "redis://redis.example").usesTLS == false)
    }

    @Test(arguments: [
        ("http://localhost:6379", "expected redis://"),
        ("localhost:6379", "expected redis://"),
        ("unix:///tmp/redis.sock", "expected redis://"),
        ("redis://", "host is missing"),
        ("redis://:6379", "host is missing"),
        ("redis://h:", "port \"\" is not"),
        ("redis://h:http", "port \"http\" is not"),
        ("redis://h:0", "port \"0\" is not"),
        ("redis://h:65536", "port \"65536\" is not"),
        ("redis://h:+80", "port \"+80\" is not"),
        ("redis://h/x", "path \"/x\" is not a database"),
        ("redis://h/-1", "path \"/-1\" is not a database"),
        ("redis://h/1/2", "path \"/1/2\" is not a database"),
        ("redis://h/0?timeout=1", "query parameters"),
        ("redis://user@h", "a user name needs a password"),
        ("redis://u:@h", "password is empty"),
        ("redis://u:%zz@h", "bad percent escape"),
        ("redis://u:%4@h", "bad percent escape"),
        ("redis://u:%ff@h", "not valid UTF-8"),
        ("redis://[::1:6379", "no closing"),
        ("redis://[::1]x", "after the IPv6 address"),
    ])
    func malformedURLsNameTheProblem(text: String, problem: String) {
        let error = #expect(throws: RedisError.self) { try RedisURL(parsing: text) }
        #expect(error?.code == .invalidURL)
        #expect(error?.message.contains(problem) == true, "\(error?.message ?? "no error")")
    }

    @Test func errorMessagesAndDescriptionHideThePassword() throws {
        let error = #expect(throws: RedisError.self) { try RedisURL(parsing: "redis://u:hunter2@h:bad") }
        #expect(error?.message.contains("hunter2") == false)
        let url = try RedisURL(parsing: "redis://u:hunter2@h:1/3")
        #expect(url.description == "redis://u:***@h:1/3")
        #expect(RedisURL(host: "::1").description == "redis://[::1]:6379/0")
    }
}
