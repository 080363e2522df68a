import CoreMetrics
import Synchronization

/// Requests on `/mcp` being handled, and the event streams still relaying to agents, so a drain knows when it is
/// done and can end the streams that outlive it (`toolgate_inflight_requests` counts both).
///
/// A drain waits for the agents' work, not for their listening: a `GET` stream (server-initiated messages) may stay
/// open for ever, so only requests being handled and the streams that answer a `POST` count as work.
public final class InflightRequests: Sendable {
    /// What a response stream answers: a `POST`'s stream is work, a `GET` stream is an agent listening.
    public enum StreamKind: Sendable { case work, listening }

    private struct State {
        var requests = 0
        var nextToken = 0
        var streams: [Int: (kind: StreamKind, cancel: @Sendable () -> Void)] = [:]
        var workStreams = 0
        /// When the last piece of work ended: a drain exits once nothing has been in flight for a while.
        var lastWorkEnded = ContinuousClock.now
    }

    private let state = Mutex(State())
    private let meter: CoreMetrics.Meter

    public init(metrics: ToolgateMetrics) { meter = metrics.inflightRequests }

    public var count: Int { state.withLock { $0.requests + $0.streams.count } }

    /// Requests being handled and `POST` streams relaying.
    public var work: Int { state.withLock { $0.requests + $0.workStreams } }

    func enter() {
        state.withLock { $0.requests += 1 }
        meter.increment()
    }

    func leave() {
        state.withLock {
            $0.requests -= 1
            $0.lastWorkEnded = .now
        }
        meter.decrement()
    }

    /// A response body that goes on relaying after its request was handled; `cancel` stops its upstream transfer.
    func beginStream(_ kind: StreamKind = .work, cancel: @escaping @Sendable () -> Void) -> Int {
        meter.increment()
        return state.withLock { state in
            state.nextToken += 1
            state.streams[state.nextToken] = (kind, cancel)
            if kind == .work { state.workStreams += 1 }
            return state.nextToken
        }
    }

    func endStream(_ token: Int) {
        let removed = state.withLock { state -> Bool in
            guard let stream = state.streams.removeValue(forKey: token) else { return false }
            if stream.kind == .work {
                state.workStreams -= 1
                state.lastWorkEnded = .now
            }
            return true
        }
        if removed { meter.decrement() }
    }

    /// Stops every stream's upstream transfer; each then ends its agent's response as a broken upstream would.
    func cancelStreams() {
        let cancels = state.withLock { $0.streams.values.map(\.cancel) }
        for cancel in cancels { cancel() }
    }

    /// Waits until nothing is in flight or `deadline` passes; true when nothing is.
    func waitUntilIdle(until deadline: ContinuousClock.Instant) async -> Bool {
        while count > 0 {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Waits until no work has been in flight for `quiet`, or `deadline` passes; true when it has been quiet.
    /// Work that starts and ends between two looks still restarts the quiet period.
    func waitUntilQuiet(for quiet: Duration, until deadline: ContinuousClock.Instant) async -> Bool {
        while true {
            let (busy, lastEnded) = state.withLock { ($0.requests + $0.workStreams > 0, $0.lastWorkEnded) }
            let now = ContinuousClock.now
            if !busy, now - lastEnded >= quiet { return true }
            guard now < deadline else { return false }
            // Busy: look again shortly (with no quiet period to wait, sleeping for it would spin).
            let untilQuiet = busy ? .milliseconds(20) : quiet - (now - lastEnded)
            try? await Task.sleep(for: min(.milliseconds(20), untilQuiet, deadline - now))
        }
    }
}
