import HummingbirdCore
import Logging

/// Hummingbird's hook for `--max-connections`: past the cap the listener stops accepting, so new connections wait
/// in the kernel's backlog until one closes (an idle one is closed after `--client-idle-timeout`). Unlike
/// Hummingbird's own `MaximumAvailableConnections`, reaching the cap is logged, at most once a minute, since it means
/// agents are waiting.
struct ClientConnectionLimit: AvailableConnectionsDelegate {
    let maximum: Int
    let logger: Logger
    let throttle: LogThrottle
    private var open = 0

    init(maximum: Int, logger: Logger) {
        self.maximum = maximum
        self.logger = logger
        throttle = LogThrottle(interval: .seconds(60))
    }

    mutating func connectionOpened() {
        open += 1
        if open == maximum, let suppressed = throttle.admit() {
            logger.warning(
                "client connection limit reached: new connections wait until one closes",
                metadata: ["maxConnections": "\(maximum)", "timesSinceLastLine": "\(suppressed)"])
        }
    }

    mutating func connectionClosed() { open -= 1 }

    func isAcceptingNewConnections() -> Bool { open < maximum }
}
