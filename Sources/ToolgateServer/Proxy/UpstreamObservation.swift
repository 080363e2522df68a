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

    /// Why the upstream cannot serve right now (a stdio upstream that is restarting), or nil: `/readyz` is
    /// `not_ready` meanwhile.
    public func setProblem(_ text: String?) { problem.withLock { $0 = text } }

    var currentProblem: String? { problem.withLock { $0 } }

    func record(status: String, speaksMCP: Bool) {
        let now = Last(status: status, speaksMCP: speaksMCP, at: Date())
        last.withLock { $0 = now }
    }

    var latest: Last? { last.withLock { $0 } }
}
