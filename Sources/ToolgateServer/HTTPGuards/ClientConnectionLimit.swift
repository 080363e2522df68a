import HummingbirdCore
import Logging
import NIOCore

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

extension ClientConnectionLimit {
    /// The cap is checked before each read of the listening socket, but NIO accepts up to `maxMessagesPerRead`
    /// (4) connections per read, so a listener at the cap minus one took up to three more. Hummingbird does not
    /// expose server channel options, so its running listener is given one connection per read here: exact caps
    /// cost nothing on kept-alive connections and little on a burst of new ones.
    static func acceptOnePerRead(_ listener: any Channel, logger: Logger) async {
        do {
            try await listener.setOption(ChannelOptions.maxMessagesPerRead, value: 1).get()
        } catch {
            logger.warning("listener kept its accept batch: the connection cap may be passed by up to 3",
                           metadata: ["error": "\(error)"])
        }
    }
}
