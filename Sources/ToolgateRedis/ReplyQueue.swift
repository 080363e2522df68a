/// The commands appended on one connection whose replies have not arrived yet, oldest first.
///
/// Redis answers a connection's commands in the order it received them, so the next reply always belongs to
/// the first entry. An entry stays in place after its caller timed out: its reply will still come, and it must
/// land on that entry (and go to the late-reply handler), not on the next caller.
///
/// A command's clock starts when its last byte is handed to the socket, not when it is appended: time spent
/// queued inside toolgate (a busy loop thread, a full socket buffer) is not Redis being slow. Because every
/// entry's deadline is its send time plus the same timeout, deadlines only grow along the queue, and expiry
/// walks from the front.
///
/// A plain struct with no I/O, so the rules are tested directly with made-up instants.
struct ReplyQueue<Waiter> {
    struct Entry {
        var waiter: Waiter
        /// Position just past the command's last byte in the connection's output stream.
        let endOffset: Int
        /// nil: no deadline of its own (the handshake, which the connect deadline bounds).
        let timeout: Duration?
        /// When the last byte was handed to the socket; nil while it waits in hiredis's output buffer.
        var sentAt: ContinuousClock.Instant?
        var expired = false
    }

    private var entries: [Entry] = []
    /// Entries before `head` were answered; kept until the array is compacted.
    private var head = 0
    /// The first entry not fully written yet.
    private var firstUnsent = 0
    /// The first written entry whose deadline has not been checked off yet.
    private var firstUnexpired = 0
    /// Bytes appended to the output stream since the connection opened.
    private(set) var appendedBytes = 0

    var count: Int { entries.count - head }
    var isEmpty: Bool { head == entries.count }

    mutating func append(_ waiter: Waiter, bytes: Int, timeout: Duration?) {
        appendedBytes += bytes
        entries.append(Entry(waiter: waiter, endOffset: appendedBytes, timeout: timeout))
    }

    /// `writtenBytes` of the stream are now in the socket: start the clocks of the commands they complete.
    mutating func markSent(writtenBytes: Int, at now: ContinuousClock.Instant) {
        while firstUnsent < entries.count, entries[firstUnsent].endOffset <= writtenBytes {
            entries[firstUnsent].sentAt = now
            firstUnsent += 1
        }
    }

    /// The entry the next reply belongs to, removed.
    mutating func popFirst() -> Entry? {
        guard head < entries.count else { return nil }
        let entry = entries[head]
        head += 1
        firstUnsent = max(firstUnsent, head)
        firstUnexpired = max(firstUnexpired, head)
        compact()
        return entry
    }

    /// Marks every written entry whose deadline passed as expired and lets `body` change its waiter (fail the
    /// caller, keep the late-reply handler). Each entry expires at most once.
    mutating func expire(now: ContinuousClock.Instant, _ body: (inout Waiter) -> Void) {
        while firstUnexpired < firstUnsent {
            let entry = entries[firstUnexpired]
            if let timeout = entry.timeout, let sentAt = entry.sentAt {
                guard sentAt + timeout <= now else { return }
                entries[firstUnexpired].expired = true
                body(&entries[firstUnexpired].waiter)
            }
            firstUnexpired += 1
        }
    }

    /// The earliest deadline still to expire, if any command is on the wire.
    var nextDeadline: ContinuousClock.Instant? {
        var index = firstUnexpired
        while index < firstUnsent {
            if let timeout = entries[index].timeout, let sentAt = entries[index].sentAt { return sentAt + timeout }
            index += 1
        }
        return nil
    }

    /// When the oldest unanswered command went out: how long the connection has owed a reply.
    var oldestSentAt: ContinuousClock.Instant? {
        head < firstUnsent ? entries[head].sentAt : nil
    }

    /// Empties the queue (the connection is gone) and returns what was in it, oldest first.
    mutating func removeAll() -> [Entry] {
        let remaining = Array(entries[head...])
        self = ReplyQueue()
        return remaining
    }

    /// Drops answered entries (and the waiters they hold) once they are most of the array.
    private mutating func compact() {
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
        } else if head >= 1024, head * 2 >= entries.count {
            entries.removeFirst(head)
        } else {
            return
        }
        firstUnsent -= head
        firstUnexpired -= head
        head = 0
    }
}
