import Foundation
import Synchronization

/// What the last exchange with the upstream showed, for `/readyz`: a wrong `--upstream` path answers 404 to every
/// request while the process itself is healthy, and this is where an operator sees it.
public final class UpstreamObservation: Sendable {
    public init() {}

    struct Last: Sendable {
        /// The HTTP status, or the failure's kind (`unreachable`, `headers_timeout`, …).
        var status: String
        /// Whether the answer was JSON-RPC (or an event stream) as an MCP endpoint sends.
        var speaksMCP: Bool
        var at: Date
    }

    private let last = Mutex<Last?>(nil)
    private let problem = Mutex<String?>(nil)
    private let unreachable = Mutex<String?>(nil)

    /// Why the upstream cannot serve right now (a stdio upstream that is restarting), or nil: `/readyz` is
    /// `degraded` meanwhile, with this as the problem.
    public func setProblem(_ text: String?) { problem.withLock { $0 = text } }

    /// A stdio upstream answered `initialize` again: what made it unreachable is over, before any call proves it.
    public func recovered() {
        problem.withLock { $0 = nil }
        unreachable.withLock { $0 = nil }
    }

    var currentProblem: String? { problem.withLock { $0 } }

    /// Why the last exchange could not reach the upstream (connection refused, timed out), until one reaches it:
    /// `/readyz` is `degraded` meanwhile (DESIGN.md section 3). The process still serves, and the upstream may come
    /// back at any moment, so this is no reason to take the sidecar out of rotation.
    var unreachableProblem: String? { unreachable.withLock { $0 } }

    /// An answer from the upstream: its status, and that it is reachable.
    func record(status: String, speaksMCP: Bool) {
        let now = Last(status: status, speaksMCP: speaksMCP, at: Date())
        last.withLock { $0 = now }
        unreachable.withLock { $0 = nil }
    }

    /// An exchange with the upstream that failed. A client that left is not the upstream's status and is not
    /// recorded (the caller skips it); only a failure to reach the upstream at all makes `/readyz` degraded.
    func recordFailure(status: String, reached: Bool, message: String) {
        let now = Last(status: status, speaksMCP: false, at: Date())
        last.withLock { $0 = now }
        unreachable.withLock { $0 = reached ? nil : message }
    }

    var latest: Last? { last.withLock { $0 } }
}
