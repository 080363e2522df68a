#if DEBUG
import Synchronization
#endif

/// Counts the work a request causes, in bytes, scalars and elements touched, so tests can check that parsing and
/// evaluation stay linear in a request's size by counting rather than timing (DESIGN.md section 4, "Bounded work
/// per request"). Every loop over outside data charges what it touched. Only debug builds (the test suite) carry
/// the counter; in release builds `charge` is empty and costs nothing.
public enum WorkMeter {
    #if DEBUG
    /// The counter of the measurement under way in this task, if any.
    @TaskLocal public static var current: WorkCount?
    #endif

    @inline(__always) @usableFromInline
    static func charge(_ units: Int) {
        #if DEBUG
        current?.add(units)
        #endif
    }

    /// Runs `body` and returns what it charged (always 0 in release builds).
    public static func measure(_ body: () throws -> Void) rethrows -> Int {
        #if DEBUG
        let count = WorkCount()
        try $current.withValue(count) { try body() }
        return count.units
        #else
        try body()
        return 0
        #endif
    }
}

#if DEBUG
/// One measurement's running total.
public final class WorkCount: Sendable {
    private let total = Atomic<Int>(0)
    public var units: Int { total.load(ordering: .relaxed) }
    func add(_ units: Int) { total.add(units, ordering: .relaxed) }
}
#endif
