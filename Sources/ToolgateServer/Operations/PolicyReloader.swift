import Logging
import Synchronization
import ServiceLifecycle
import ToolgateCore
import UnixSignals

/// Reloads the policy, and the grants file if there is one, on SIGHUP (and, through `PolicyFileWatcher`, when
/// either file changes). Both must validate, or neither changes: the ones in force stay, and every error is logged
/// with its path. Both are swapped in together; requests already running keep the snapshot they started with. SIGHUP
/// also reopens the audit log, for logrotate.
public struct PolicyReloader: Service {
    let path: String
    let state: PolicyState
    let metrics: ToolgateMetrics
    let logger: Logger
    /// The grants file, and the environment its `tokenEnv` entries read.
    let grantsPath: String?
    let environment: [String: String]
    let auditLog: AuditLog?
    /// One reload at a time: SIGHUP and the file watcher may ask at once.
    private let serial = ReloadSerializer()

    public init(
        path: String, state: PolicyState, metrics: ToolgateMetrics, logger: Logger, grantsPath: String? = nil,
        environment: [String: String] = [:], auditLog: AuditLog? = nil
    ) {
        self.auditLog = auditLog
        self.path = path
        self.state = state
        self.metrics = metrics
        self.logger = logger
        self.grantsPath = grantsPath
        self.environment = environment
    }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            auditLog?.reopen()
            reload()
        }
    }

    /// `onlyIfChanged`: a file that was touched but holds what is in force already is not reloaded (nor counted).
    @discardableResult
    public func reload(onlyIfChanged: Bool = false) -> Bool {
        serial.lock.withLock { _ in reloadNow(onlyIfChanged: onlyIfChanged) }
    }

    private func reloadNow(onlyIfChanged: Bool) -> Bool {
        var problems: [PolicyError] = []
        /// The file the first error is about, for `/readyz`.
        var failedPath: String?
        var loadedPolicy: Policy?
        switch PolicyFile.load(path) {
        case .success(let policy): loadedPolicy = policy
        case .failure(let error):
            problems += error.errors
            failedPath = path
        }
        var grants = state.snapshot.grants
        if let grantsPath {
            switch PolicyFile.loadGrants(grantsPath, environment: environment) {
            case .success(let table): grants = table
            case .failure(let error):
                problems += error.errors
                failedPath = failedPath ?? grantsPath
            }
        }
        guard let policy = loadedPolicy, problems.isEmpty else {
            metrics.policyReload(.failure)
            for problem in problems {
                logger.error("reload refused; keeping the policy and grants in force", metadata: ["error": "\(problem)"])
            }
            state.reloadRefused(
                PolicyState.RefusedReload(
                    path: failedPath ?? path, error: problems.map { "\($0)" }.joined(separator: "; "),
                    timeMicros: SystemWallClock().nowMicros()))
            return false
        }
        if onlyIfChanged, policy.sha256 == state.snapshot.policy.sha256, grants == state.snapshot.grants {
            logger.debug("policy files touched but unchanged; nothing to reload", metadata: ["path": "\(path)"])
            state.reloadAccepted()
            return true
        }
        state.replace(with: policy, grants: grants)
        metrics.policyReload(.success)
        metrics.policyInForce(sha256: policy.sha256)
        var metadata: Logger.Metadata = ["path": "\(path)", "sha256": "\(policy.sha256)"]
        if let grantsPath { metadata["grants"] = "\(grantsPath) (\(grants?.grants.count ?? 0) grants)" }
        logger.info("policy reloaded", metadata: metadata)
        return true
    }
}

/// A lock a copyable reloader can share.
final class ReloadSerializer: Sendable {
    let lock = Mutex(())
}
