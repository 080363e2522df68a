import CoreMetrics
import Synchronization

/// Requests on `/mcp` being handled, and the event streams still relaying to agents, so a drain knows when it is
/// done and can end the streams that outlive it (`toolgate_inflight_requests` counts both).
public final class InflightRequests: Sendable {
    private struct State {
        var requests = 0
        var nextToken = 0
        var streams: [Int: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())
    private let meter: CoreMetrics.Meter

    public init(metrics: ToolgateMetrics) { meter = metrics.inflightRequests }

    public var count: Int { state.withLock { $0.requests + $0.streams.count } }

    func enter() {
        state.withLock { $0.requests += 1 }
        meter.increment()
    }

    func leave() {
        state.withLock { $0.requests -= 1 }
        meter.decrement()
    }

    /// A response body that goes on relaying after its request was handled; `cancel` stops its upstream transfer.
    func beginStream(cancel: @escaping @Sendable () -> Void) -> Int {
        meter.increment()
        return state.withLock { state in
            state.nextToken += 1
            state.streams[state.nextToken] = cancel
            return state.nextToken
        }
    }

    func endStream(_ token: Int) {
        let removed = state.withLock { $0.streams.removeValue(forKey: token) }
        if removed != nil { meter.decrement() }
    }

    /// Stops every stream's upstream transfer; each then ends its agent's response as a broken upstream would.
    func cancelStreams() {
        let cancels = state.withLock { Array($0.streams.values) }
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
}
