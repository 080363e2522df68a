#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Lets another thread interrupt a connection thread's `poll()`: the read end sits in the poll set next to the
/// Redis socket, and one byte written to the other end makes it readable. A pipe rather than an eventfd, because
/// Glibc's Swift module does not export `eventfd`.
///
/// Ownership: the connection thread polls and drains the read end and closes both ends when it ends; other
/// threads only call `wake()`, and only while the connection's inbox is not closing (under its mutex), so no
/// write can reach a closed descriptor.
struct WakeupPipe: Sendable {
    let readEnd: Int32
    private let writeEnd: Int32

    init() {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { fatalError("pipe() failed for the Redis wakeup: errno \(errno)") }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        readEnd = ends[0]
        writeEnd = ends[1]
    }

    /// Never blocks: if the pipe were full, the thread would already have a wakeup waiting.
    func wake() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// Empties the pipe so the next `poll()` sleeps again.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readEnd, &buffer, buffer.count) > 0 {}
    }

    func closeBothEnds() {
        _ = close(readEnd)
        _ = close(writeEnd)
    }
}
