/// `--redis redis+sentinel://[user:pass@]host1:26379,host2:26379/MASTER[/db]` (DESIGN.md section 7): the sentinels
/// to ask, the name of the master they watch, and how to log in to that master. Sentinels listen on 26379 unless a
/// port is given. Sentinel's own password is not here: it is `--redis-sentinel-password`.
public struct RedisSentinelURL: Sendable, Equatable {
    public var sentinels: [(host: String, port: Int)]
    public var masterName: String
    /// The master's user, password and database; its host and port are what the sentinels say.
    public var master: RedisURL
    /// `rediss+sentinel://`: TLS to the sentinels and to the master.
    public var usesTLS: Bool

    public static func == (a: RedisSentinelURL, b: RedisSentinelURL) -> Bool {
        a.sentinels.map { "\($0.host):\($0.port)" } == b.sentinels.map { "\($0.host):\($0.port)" } && a.masterName == b.masterName
            && a.master == b.master && a.usesTLS == b.usesTLS
    }

    public static func isSentinel(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("redis+sentinel://") || lower.hasPrefix("rediss+sentinel://")
    }

    public init(parsing text: String) throws(RedisError) {
        guard let schemeEnd = text.range(of: "://") else {
            throw .invalidURL(text, "expected redis+sentinel://[user:password@]host:port[,host:port…]/MASTER[/db]")
        }
        switch text[..<schemeEnd.lowerBound].lowercased() {
        case "redis+sentinel": usesTLS = false
        case "rediss+sentinel": usesTLS = true
        default: throw .invalidURL(text, "expected redis+sentinel:// or rediss+sentinel://")
        }
        var rest = text[schemeEnd.upperBound...]
        var credentials = ""
        if let at = rest.lastIndex(of: "@") {
            credentials = String(rest[..<at]) + "@"
            rest = rest[rest.index(after: at)...]
        }
        guard let slash = rest.firstIndex(of: "/") else {
            throw .invalidURL(text, "the master's name is missing: …/MASTER, the name the sentinels monitor")
        }
        let hosts = rest[..<slash].split(separator: ",", omittingEmptySubsequences: false)
        let path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        guard let name = path.first, !name.isEmpty else {
            throw .invalidURL(text, "the master's name is missing: …/MASTER, the name the sentinels monitor")
        }
        guard path.count <= 2 else { throw .invalidURL(text, "expected …/MASTER or …/MASTER/DB after the sentinels") }
        masterName = String(name)
        var sentinels: [(host: String, port: Int)] = []
        for host in hosts {
            guard !host.isEmpty else { throw .invalidURL(text, "a sentinel address is empty") }
            // The sentinel port by default; an address is parsed as a plain URL would be (IPv6 in brackets).
            let hasPort = host.hasPrefix("[") ? host.contains("]:") : host.contains(":")
            let parsed = try RedisURL(parsing: "redis://" + host + (hasPort ? "" : ":26379"))
            sentinels.append((parsed.host, parsed.port))
        }
        self.sentinels = sentinels
        // The master's credentials and database, through the same parser: percent-decoding and checks alike.
        let database = path.count == 2 ? "/" + path[1] : ""
        do {
            master = try RedisURL(parsing: "redis://" + credentials + "master" + database)
            master.usesTLS = usesTLS
        } catch {
            let problem = error.message.range(of: "\": ").map { String(error.message[$0.upperBound...]) } ?? error.message
            throw .invalidURL(text, "the master's login or database: " + problem)
        }
    }
}

extension RedisSentinelURL: CustomStringConvertible {
    /// For logs: no password.
    public var description: String {
        let credentials = master.password == nil ? "" : "\(master.username ?? ""):***@"
        let hosts = sentinels.map { ($0.host.contains(":") ? "[\($0.host)]" : $0.host) + ":\($0.port)" }.joined(separator: ",")
        return "\(usesTLS ? "rediss" : "redis")+sentinel://\(credentials)\(hosts)/\(masterName)/\(master.database)"
    }
}
