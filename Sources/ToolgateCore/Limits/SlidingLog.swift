/// `sliding`: an exact log of admitted calls.
///
/// A call is admitted when the cost already logged in `(now − window, now]` plus its own cost is at most
/// `max`. So no interval of length `window` ever holds more than `max`.
public struct SlidingLog: Sendable {
    /// 24 bytes and no heap storage: the log holds one entry per admitted call in its window (a million, for a
    /// busy per-minute limit), so the call is kept as a hash of its id, not as the id's String. A refund matches
    /// time first, then the hash: two calls of one microsecond in one log would have to collide in a 64-bit hash
    /// with a per-process random seed for one's refund to take the other's entry.
    struct Entry: Sendable {
        var time: Int64
        var cost: Int
        var call: Int
    }

    /// Ordered by time; `entries[head...]` is live.
    private var entries: [Entry] = []
    private var head = 0
    /// Cost of the live entries.
    public private(set) var total = 0

    public init() {}

    public var isEmpty: Bool { head == entries.count }
    public var count: Int { entries.count - head }

    /// When the newest entry leaves the window, and the log can be dropped.
    public func expiresAt(windowMicros: Int64) -> Int64? {
        entries.last.map { $0.time + windowMicros }
    }

    /// Forgets entries at or before `now − window`.
    public mutating func prune(now: Int64, windowMicros: Int64) {
        let cutoff = now - windowMicros
        while head < entries.count, entries[head].time <= cutoff {
            total -= entries[head].cost
            head += 1
        }
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    /// Checks a call of `cost` at `now`. Call `prune` first.
    public func check(now: Int64, windowMicros: Int64, max: Int, cost: Int) -> LimitResult {
        if total + cost <= max {
            return LimitResult(passed: true, remaining: max - total - cost, retryAfterMicros: 0)
        }
        // The call fits once enough of the oldest cost has left the window.
        let mustFree = total + cost - max
        var freed = 0
        var i = head
        while i < entries.count {
            freed += entries[i].cost
            if freed >= mustFree { break }
            i += 1
        }
        let retry = i < entries.count ? entries[i].time + windowMicros - now : windowMicros
        return LimitResult(passed: false, remaining: max - total, retryAfterMicros: Swift.max(retry, 1))
    }

    public mutating func consume(now: Int64, cost: Int, callID: String) {
        guard cost > 0 else { return }
        let entry = Entry(time: now, cost: cost, call: callID.hashValue)
        // Almost always an append; a clock that stepped back inserts in order.
        var i = entries.count
        while i > head, entries[i - 1].time > now { i -= 1 }
        entries.insert(entry, at: i)
        total += cost
    }

    /// Removes the call's entry, logged at `time`, if it is still in the log. Entries are ordered by time,
    /// so the search is a binary search plus the entries that share that microsecond.
    @discardableResult
    public mutating func refund(callID: String, at time: Int64) -> Bool {
        var low = head
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].time < time { low = mid + 1 } else { high = mid }
        }
        var i = low
        let call = callID.hashValue
        while i < entries.count, entries[i].time == time {
            if entries[i].call == call {
                total -= entries[i].cost
                entries.remove(at: i)
                return true
            }
            i += 1
        }
        return false
    }
}
