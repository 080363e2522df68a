import Testing
@testable import ToolgateRedis

/// `redis+sentinel://[user:pass@]host1:26379,host2:26379/MASTER[/db]` (DESIGN.md section 7).
@Suite struct RedisSentinelURLTests {
    @Test func sentinelsMasterNameLoginAndDatabase() throws {
        let url = try RedisSentinelURL(parsing: "redis+sentinel://alice:p%40ss@10.0.0.1:26380,sentinel-b,[::1]:26381/mymaster/3")
        #expect(url.sentinels.map { "\($0.host):\($0.port)" } == ["10.0.0.1:26380", "sentinel-b:26379", "::1:26381"])
        #expect(url.masterName == "mymaster")
        #expect(url.master.username == "alice" && url.master.password == "p@ss" && url.master.database == 3)
        #expect(!url.usesTLS)
        #expect(url.description == "redis+sentinel://alice:***@10.0.0.1:26380,sentinel-b:26379,[::1]:26381/mymaster/3")
        #expect(try RedisSentinelURL(parsing: "rediss+sentinel://h/m").usesTLS)
        #expect(try RedisSentinelURL(parsing: "redis+sentinel://h/m").master.password == nil)
    }

    @Test func whatIsNotASentinelURL() {
        let cases: [(String, String)] = [
            ("redis+sentinel://h", "the master's name is missing"),
            ("redis+sentinel://h/", "the master's name is missing"),
            ("redis+sentinel://h,,i/m", "a sentinel address is empty"),
            ("redis+sentinel://h:0/m", "is not a number from 1 to 65535"),
            ("redis+sentinel://h/m/x", "the master's login or database: the path \"/x\" is not a database number"),
            ("redis+sentinel://h/m/1/2", "expected …/MASTER or …/MASTER/DB"),
            ("redis+sentinel://user@h/m", "the master's login or database: a user name needs a password"),
        ]
        for (text, expected) in cases {
            do {
                _ = try RedisSentinelURL(parsing: text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.message.contains(expected), "\(text): \(error.message)")
            }
        }
        #expect(RedisSentinelURL.isSentinel("REDIS+SENTINEL://h/m") && !RedisSentinelURL.isSentinel("redis://h"))
    }
}
