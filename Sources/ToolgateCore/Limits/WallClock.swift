#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Wall-clock time in epoch microseconds.
///
/// Swift's `Clock` has no epoch, and fixed windows align to UTC, so the stores take this instead.
public protocol WallClock: Sendable {
    func nowMicros() -> Int64
}

public struct SystemWallClock: WallClock {
    public init() {}

    public func nowMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000
    }
}

/// A clock that moves only when told to, so tests never sleep.
public final class ManualWallClock: WallClock {
    private let now: Atomic<Int64>

    public init(micros: Int64) { self.now = Atomic(micros) }

    public func nowMicros() -> Int64 { now.load(ordering: .relaxed) }

    public func set(micros: Int64) { now.store(micros, ordering: .relaxed) }

    public func advance(micros: Int64) { now.add(micros, ordering: .relaxed) }
}
