import Logging
import ServiceLifecycle
import ToolgateCore
import UnixSignals

/// Reloads the policy, and the grants file if there is one, on SIGHUP. Both must validate, or neither changes:
/// the ones in force stay, and every error is logged with its path. Both are swapped in together.
public struct PolicyReloader: Service {
    let path: String
    let state: PolicyState
    let metrics: ToolgateMetrics
    let logger: Logger
    /// The grants file, and the environment its `tokenEnv` entries read.
    let grantsPath: String?
    let environment: [String: String]

    public init(
        path: String, state: PolicyState, metrics: ToolgateMetrics, logger: Logger, grantsPath: String? = nil,
        environment: [String: String] = [:]
    ) {
        self.path = path
        self.state = state
        self.metrics = metrics
        self.logger = logger
        self.grantsPath = grantsPath
        self.environment = environment
    }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            reload()
        }
    }

    @discardableResult
    public func reload() -> Bool {
        var problems: [PolicyError] = []
        var loadedPolicy: Policy?
        switch PolicyFile.load(path) {
        case .success(let policy): loadedPolicy = policy
        case .failure(let error): problems += error.errors
        }
        var grants = state.snapshot.grants
        if let grantsPath {
            switch PolicyFile.loadGrants(grantsPath, environment: environment) {
            case .success(let table): grants = table
            case .failure(let error): problems += error.errors
            }
        }
        guard let policy = loadedPolicy, problems.isEmpty else {
            metrics.policyReload(result: "failure")
            for problem in problems {
                logger.error("reload refused; keeping the policy and grants in force", metadata: ["error": "\(problem)"])
            }
            return false
        }
        state.replace(with: policy, grants: grants)
        metrics.policyReload(result: "success")
        metrics.policyInForce(sha256: policy.sha256)
        var metadata: Logger.Metadata = ["path": "\(path)", "sha256": "\(policy.sha256)"]
        if let grantsPath { metadata["grants"] = "\(grantsPath) (\(grants?.grants.count ?? 0) grants)" }
        logger.info("policy reloaded", metadata: metadata)
        return true
    }
}
