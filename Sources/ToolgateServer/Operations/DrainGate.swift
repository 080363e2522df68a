import Logging
import ServiceLifecycle
import ToolgateCore

/// The drain of DESIGN.md section 2: on SIGTERM/SIGINT `/readyz` turns 503 at once and `/mcp` refuses what starts new
/// work, while the agents' steps in progress go on. The process ends once no work has been in flight for a second
/// (then the `GET` streams still open are ended), or when `timeout` passes (then everything still open is).
/// Placed last among the services, it is the first that graceful shutdown reaches, so the listeners keep serving
/// until the drain is over.
public struct DrainGate: Service {
    let readiness: ToolgateServer.Readiness
    let inflight: InflightRequests
    let timeout: Duration
    let logger: Logger
    /// How long nothing may be in flight before the drain is over: an agent's step is several requests in a row.
    let quiet: Duration

    public init(
        readiness: ToolgateServer.Readiness, inflight: InflightRequests, timeout: Duration, logger: Logger,
        quiet: Duration = .seconds(1)
    ) {
        self.readiness = readiness
        self.inflight = inflight
        self.timeout = timeout
        self.logger = logger
        self.quiet = quiet
    }

    public func run() async throws {
        try? await gracefulShutdown()
        readiness.startDraining()
        let started = ContinuousClock.now
        logger.info("draining", metadata: ["inFlight": "\(inflight.work)", "timeoutSeconds": "\(timeout.secondsText)"])
        if await inflight.waitUntilQuiet(for: quiet, until: started + timeout) {
            // Agents listening on GET streams are done with: their steps have ended.
            inflight.cancelStreams()
            _ = await inflight.waitUntilIdle(until: .now + .seconds(2))
            logger.info("drained", metadata: ["seconds": "\((ContinuousClock.now - started).secondsText)"])
            return
        }
        logger.warning("drain timeout reached; ending the calls and streams still open", metadata: ["inFlight": "\(inflight.work)"])
        inflight.cancelStreams()
        ClientConnection.stopAllExchanges()
        _ = await inflight.waitUntilIdle(until: .now + .seconds(2))
    }
}
