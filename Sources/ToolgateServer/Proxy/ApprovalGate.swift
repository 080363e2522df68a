import Logging
import Synchronization
import ToolgateCore

/// Where calls wait for a human's decision. However many calls wait, one poller per sidecar asks the store for
/// their states (DESIGN.md section 6: no polling of Redis per waiting call), so a decision made through another
/// sidecar is seen within `pollInterval`; a decision made through this one wakes its waiters at once.
final class ApprovalGate: Sendable {
    enum Wake: Sendable, Equatable {
        case approved
        case denied
        /// The request is gone (used by an identical call, or expired): ask the store again.
        case gone
        case timedOut
    }

    private struct Waiter {
        let id: String
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Wake, Never>
    }

    private struct State {
        var waiters: [Int: Waiter] = [:]
        var nextToken = 0
        var polling = false
    }

    let store: any ApprovalStore
    let pollInterval: Duration
    let metrics: ToolgateMetrics
    let logger: Logger
    private let state = Mutex(State())

    init(store: any ApprovalStore, pollInterval: Duration = .milliseconds(200), metrics: ToolgateMetrics, logger: Logger) {
        self.store = store
        self.pollInterval = pollInterval
        self.metrics = metrics
        self.logger = logger
    }

    /// Calls waiting here now (what `toolgate_approvals_pending` shows: per sidecar).
    var waitingCount: Int { state.withLock { $0.waiters.count } }

    /// Waits until the approval with `id` is decided or gone, or `deadline` passes; the agent leaving ends the wait
    /// too (as a time-out: the request stays for a retry).
    func wait(for id: String, until deadline: ContinuousClock.Instant, agent: (any AgentPresence)?) async -> Wake {
        let wake = await withCheckedContinuation { (continuation: CheckedContinuation<Wake, Never>) in
            let (token, startPoller) = state.withLock { state -> (Int, Bool) in
                let token = state.nextToken
                state.nextToken += 1
                state.waiters[token] = Waiter(id: id, deadline: deadline, continuation: continuation)
                let start = !state.polling
                state.polling = true
                return (token, start)
            }
            metrics.approvalsPending.record(waitingCount)
            agent?.onDeparture { [self] in resume(token: token, with: .timedOut) }
            if startPoller { Task { await self.poll() } }
        }
        agent?.clearDeparture()
        metrics.approvalsPending.record(waitingCount)
        return wake
    }

    /// A decision made through this sidecar: its waiters need not wait for the next poll.
    func decided(id: String, state decided: Approval.State) {
        let wake: Wake = decided == .approved ? .approved : .denied
        let tokens = state.withLock { state in state.waiters.filter { $0.value.id == id }.map(\.key) }
        for token in tokens { resume(token: token, with: wake) }
    }

    private func resume(token: Int, with wake: Wake) {
        let waiter = state.withLock { $0.waiters.removeValue(forKey: token) }
        waiter?.continuation.resume(returning: wake)
    }

    /// Runs while anyone waits: one store read per interval for all of them.
    private func poll() async {
        while true {
            let now = ContinuousClock.now
            let (waiters, done) = state.withLock { state -> ([Int: Waiter], Bool) in
                if state.waiters.isEmpty {
                    state.polling = false
                    return ([:], true)
                }
                return (state.waiters, false)
            }
            if done { return }
            for (token, waiter) in waiters where waiter.deadline <= now { resume(token: token, with: .timedOut) }
            let ids = Array(Set(waiters.values.filter { $0.deadline > now }.map(\.id)))
            if !ids.isEmpty {
                do {
                    let states = try await store.states(ids: ids)
                    for (token, waiter) in waiters where waiter.deadline > now {
                        switch states[waiter.id] {
                        case .approved?: resume(token: token, with: .approved)
                        case .denied?: resume(token: token, with: .denied)
                        case nil: resume(token: token, with: .gone)
                        case .pending?: break
                        }
                    }
                } catch {
                    logger.warning("could not read approval states; waiting calls keep waiting", metadata: ["error": "\(error)"])
                }
            }
            let nearest = state.withLock { $0.waiters.values.map(\.deadline).min() }
            var sleep = pollInterval
            if let nearest, ContinuousClock.now.duration(to: nearest) < sleep { sleep = max(.zero, ContinuousClock.now.duration(to: nearest)) }
            try? await Task.sleep(for: sleep)
        }
    }
}
