/// How many connections toolgate may hold, from the file descriptors it has.
///
/// Every client connection and every upstream connection is a descriptor. Without a bound, a flood of idle
/// connections takes every descriptor and then nothing can be accepted or opened any more, not even a probe on
/// `--metrics-listen` or a connection to Redis. So client connections are capped (`--max-connections`; past it new
/// connections wait in the listen backlog until one closes), and when the descriptor limit cannot hold both caps
/// plus a reserve for everything else, both are lowered to fit and the operator is told.
public struct ConnectionBudget: Sendable, Equatable {
    /// Descriptors kept for everything but client and upstream connections: the listeners, the probes and admin
    /// listeners' own connections (`probeConnections`, `adminConnections`), Redis, the policy and audit files, a stdio upstream's pipes, curl's
    /// internal sockets.
    public static let reserve = 64
    /// The `--metrics-listen` listener's own cap, inside the reserve: probes and scrapes need few connections.
    public static let probeConnections = 16
    /// The `--admin-listen` listener's own cap, inside the reserve: a few approvers' browsers and the CLI.
    public static let adminConnections = 16

    public var clientConnections: Int
    public var upstreamConnections: Int
    /// Set when the caps had to be lowered: what to log.
    public var warning: String?

    /// `descriptorLimit`: RLIMIT_NOFILE's soft limit after raising it to the hard one (nil: unlimited).
    public static func fit(clients: Int, upstream: Int, descriptorLimit: Int?) -> ConnectionBudget {
        guard let limit = descriptorLimit, clients + upstream + reserve > limit else {
            return ConnectionBudget(clientConnections: clients, upstreamConnections: upstream, warning: nil)
        }
        let available = max(limit - reserve, 2)
        let upstreamFit = max(min(upstream, available / 2), 1)
        let clientFit = max(min(clients, available - upstreamFit), 1)
        return ConnectionBudget(
            clientConnections: clientFit, upstreamConnections: upstreamFit,
            warning: "the file descriptor limit (\(limit)) cannot hold --max-connections \(clients) and "
                + "--upstream-max-connections \(upstream) plus \(reserve) for the rest: using \(clientFit) and "
                + "\(upstreamFit); raise it (ulimit -n, or LimitNOFILE= in a systemd unit) to allow more")
    }
}
