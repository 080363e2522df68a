import Logging
import ServiceLifecycle
import ToolgateCore
import UnixSignals

/// Reloads the policy on SIGHUP. A policy that does not validate is refused whole: the one in force stays,
/// and every error is logged with its path.
public struct PolicyReloader: Service {
    let path: String
    let state: PolicyState
    let metrics: ToolgateMetrics
    let logger: Logger

    public init(path: String, state: PolicyState, metrics: ToolgateMetrics, logger: Logger) {
        self.path = path
        self.state = state
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            reload()
        }
    }

    @discardableResult
    public func reload() -> Bool {
        switch PolicyFile.load(path) {
        case .success(let policy):
            state.replace(with: policy)
            metrics.policyReload(result: "success")
            metrics.policyInForce(sha256: policy.sha256)
            logger.info("policy reloaded", metadata: ["path": "\(path)", "sha256": "\(policy.sha256)"])
            return true
        case .failure(let error):
            metrics.policyReload(result: "failure")
            for problem in error.errors {
                logger.error("policy reload refused; keeping the policy in force", metadata: ["error": "\(problem)"])
            }
            return false
        }
    }
}
