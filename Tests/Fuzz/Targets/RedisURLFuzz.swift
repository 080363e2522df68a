import ToolgateRedis

extension FuzzTarget {
    /// `--redis`: any text either parses to a usable address or is refused, and the description printed in logs
    /// never holds the password.
    static let redisURL = FuzzTarget(name: "redis-url", summary: "the --redis URL") { input in
        let text = String(decoding: input, as: UTF8.self)
        guard let url = try? RedisURL(parsing: text) else { return }
        guard !url.host.isEmpty, (1...65535).contains(url.port), url.database >= 0 else {
            violated("redis-url", "parsed to an unusable address: \(url)")
        }
        // The description (what logs show) must not depend on the password at all.
        if let password = url.password {
            guard !password.isEmpty else { violated("redis-url", "an empty password was accepted") }
            var other = url
            other.password = password == "p" ? "q" : "p"
            guard other.description == url.description else { violated("redis-url", "the description shows the password: \(url.description)") }
        }
    }
}
