import Synchronization
import ToolgateCore

/// The servers file's part of a reload (DESIGN.md section 10). It is done where transports are made (the CLI): this
/// module only routes to what it is given.
public protocol ServersReloading: Sendable {
    var path: String { get }
    /// Reads and checks the file as it is on disk now.
    func read() -> Result<ServersFile, PolicyValidationError>
    /// The file in force.
    var inForce: ServersFile { get }
    /// Makes the transports of new and changed servers (a stdio server answers `initialize` first). Throws, naming
    /// the server, when one cannot start: then nothing is swapped.
    func prepare(_ file: ServersFile) async throws(ServersReloadFailure) -> PreparedServers
}

/// A servers file ready to be swapped in.
public struct PreparedServers: Sendable {
    /// Routes to the new set; stops what the new file removed or changed (their open requests end with an error).
    public let commit: @Sendable () async -> Void
    /// Stops what was started for a reload that will not happen.
    public let abandon: @Sendable () async -> Void

    public init(commit: @escaping @Sendable () async -> Void, abandon: @escaping @Sendable () async -> Void) {
        self.commit = commit
        self.abandon = abandon
    }
}

public struct ServersReloadFailure: Error, Sendable, CustomStringConvertible {
    public let server: String
    public let message: String

    public init(server: String, message: String) {
        self.server = server
        self.message = message
    }

    public var description: String { "server \"\(server)\": \(message)" }
}

/// Reloads one after another, across suspension points: a reload that starts servers must finish before the next
/// one reads the files.
final class ReloadChain: Sendable {
    private let last = Mutex<Task<Bool, Never>?>(nil)

    func run(_ body: @escaping @Sendable () async -> Bool) async -> Bool {
        let task = last.withLock { previous in
            let waitFor = previous
            let next = Task {
                _ = await waitFor?.value
                return await body()
            }
            previous = next
            return next
        }
        return await task.value
    }
}
