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
    /// `--servers`: reloaded with the policy, as one: a policy section names a server of the file swapped in with it.
    let servers: (any ServersReloading)?
    /// `stdio --servers FILE --server NAME`: the file is read once; a reloaded policy's sections must still name its
    /// servers.
    let fixedServers: (path: String, names: [String])?
    /// One reload at a time: SIGHUP and the file watcher may ask at once.
    private let serial = ReloadSerializer()
    private let chain = ReloadChain()

    public init(
        path: String, state: PolicyState, metrics: ToolgateMetrics, logger: Logger, grantsPath: String? = nil,
        environment: [String: String] = [:], auditLog: AuditLog? = nil, servers: (any ServersReloading)? = nil,
        fixedServers: (path: String, names: [String])? = nil
    ) {
        self.servers = servers
        self.fixedServers = fixedServers
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
            await reloadAll()
        }
    }

    /// The policy, the grants and the servers file together (the servers file's new stdio servers are started before
    /// anything is swapped). Without `--servers`, the same as `reload`.
    @discardableResult
    public func reloadAll(onlyIfChanged: Bool = false) async -> Bool {
        guard let servers else { return reload(onlyIfChanged: onlyIfChanged) }
        return await chain.run { await reloadWithServers(servers, onlyIfChanged: onlyIfChanged) }
    }

    private func reloadWithServers(_ servers: any ServersReloading, onlyIfChanged: Bool) async -> Bool {
        var (policy, grants, problems, failedPath) = readPolicyFiles()
        var file: ServersFile?
        switch servers.read() {
        case .success(let loaded): file = loaded
        case .failure(let error):
            problems += error.errors
            failedPath = failedPath ?? servers.path
        }
        if let policy, let file {
            problems += Self.sectionProblems(policy, file: path, servers: file.servers.map(\.name), serversPath: servers.path)
        }
        guard let policy, let file, problems.isEmpty else {
            refuse(problems, failedPath: failedPath)
            return false
        }
        let serversChanged = file.sha256 != servers.inForce.sha256
        if onlyIfChanged, !serversChanged, policy.sha256 == state.snapshot.policy.sha256, grants == state.snapshot.grants {
            logger.debug("policy files touched but unchanged; nothing to reload", metadata: ["path": "\(path)"])
            state.reloadAccepted()
            return true
        }
        var prepared: PreparedServers?
        if serversChanged {
            do {
                prepared = try await servers.prepare(file)
            } catch {
                refuse([PolicyError(file: servers.path, path: "", message: error.description)], failedPath: servers.path)
                return false
            }
        }
        state.replace(with: policy, grants: grants)
        await prepared?.commit()
        accepted(policy, grants: grants, servers: serversChanged ? file : nil)
        return true
    }

    /// Sections of the policy name servers of the file in force with it (at start, `serve` checks the same).
    public static func sectionProblems(_ policy: Policy, file: String, servers: [String]?, serversPath: String?) -> [PolicyError] {
        guard let servers, let serversPath else {
            guard !policy.sections.isEmpty else { return [] }
            return [
                PolicyError(
                    file: file, path: "servers",
                    message: "the policy has sections for named servers (\(policy.sections.keys.sorted().joined(separator: ", "))), which need --servers FILE")
            ]
        }
        return policy.sections.keys.sorted().filter { !servers.contains($0) }.map { name in
            let hint = NameSuggestion.closest(to: name, among: servers).map { " (did you mean \"\($0)\"?)" } ?? ""
            return PolicyError(
                file: file, path: "servers.\(name)",
                message: "no server \"\(name)\" in \(serversPath)\(hint) (servers: \(servers.joined(separator: ", ")))")
        }
    }

    /// `onlyIfChanged`: a file that was touched but holds what is in force already is not reloaded (nor counted).
    @discardableResult
    public func reload(onlyIfChanged: Bool = false) -> Bool {
        serial.lock.withLock { _ in reloadNow(onlyIfChanged: onlyIfChanged) }
    }

    private func reloadNow(onlyIfChanged: Bool) -> Bool {
        var (loadedPolicy, grants, problems, failedPath) = readPolicyFiles()
        if let loadedPolicy {
            problems += Self.sectionProblems(loadedPolicy, file: path, servers: fixedServers?.names, serversPath: fixedServers?.path)
        }
        guard let policy = loadedPolicy, problems.isEmpty else {
            refuse(problems, failedPath: failedPath)
            return false
        }
        if onlyIfChanged, policy.sha256 == state.snapshot.policy.sha256, grants == state.snapshot.grants {
            logger.debug("policy files touched but unchanged; nothing to reload", metadata: ["path": "\(path)"])
            state.reloadAccepted()
            return true
        }
        state.replace(with: policy, grants: grants)
        accepted(policy, grants: grants, servers: nil)
        return true
    }

    /// The policy and the grants file as they are on disk, with every problem; `failedPath` names the file the first
    /// problem is about, for `/readyz`.
    private func readPolicyFiles() -> (Policy?, GrantTable?, [PolicyError], String?) {
        var problems: [PolicyError] = []
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
        return (loadedPolicy, grants, problems, failedPath)
    }

    private func refuse(_ problems: [PolicyError], failedPath: String?) {
        metrics.policyReload(.failure)
        for problem in problems {
            logger.error("reload refused; keeping the policy, grants and servers in force", metadata: ["error": "\(problem)"])
        }
        state.reloadRefused(
            PolicyState.RefusedReload(
                path: failedPath ?? path, error: problems.map { "\($0)" }.joined(separator: "; "),
                timeMicros: SystemWallClock().nowMicros()))
    }

    private func accepted(_ policy: Policy, grants: GrantTable?, servers: ServersFile?) {
        metrics.policyReload(.success)
        metrics.policyInForce(sha256: policy.sha256)
        var metadata: Logger.Metadata = ["path": "\(path)", "sha256": "\(policy.sha256)"]
        if let grantsPath { metadata["grants"] = "\(grantsPath) (\(grants?.grants.count ?? 0) grants)" }
        if let servers, let serversPath = self.servers?.path {
            metadata["servers"] = "\(serversPath) (\(servers.servers.map(\.name).joined(separator: ", ")))"
        }
        logger.info("policy reloaded", metadata: metadata)
    }
}

/// A lock a copyable reloader can share.
final class ReloadSerializer: Sendable {
    let lock = Mutex(())
}
