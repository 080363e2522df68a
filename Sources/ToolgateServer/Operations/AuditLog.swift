import Foundation
import Logging

/// Where audit lines go: a file (reopened on SIGHUP, so logrotate can move it away) or standard output.
public protocol AuditSink: AnyObject, Sendable {
    /// Writes all of `bytes`, blocking as long as the sink needs; only the audit writer thread calls it.
    func write(_ bytes: [UInt8]) throws
    /// Opens the path again (a rotated file is left to its rotator).
    func reopen() throws
}

/// The audit log of DESIGN.md section 8. A call only appends its line to a bounded queue and never waits: a
/// dedicated thread (not one of the few cooperative threads the proxy runs on) does the writing, and when the sink
/// is slower than the calls, lines beyond the queue's capacity are dropped and counted
/// (`toolgate_audit_dropped_total`), never queued without bound.
public final class AuditLog: @unchecked Sendable {
    // @unchecked: every mutable field below is guarded by `condition`'s lock.
    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var reopenRequested = false
    private var closing = false
    private var finished = false
    private let capacity: Int
    private let sink: any AuditSink
    private let metrics: ToolgateMetrics
    private let logger: Logger
    private let failureLog = LogThrottle()

    public init(sink: any AuditSink, capacity: Int = 16_384, metrics: ToolgateMetrics, logger: Logger) {
        self.sink = sink
        self.capacity = max(1, capacity)
        self.metrics = metrics
        self.logger = logger
        let thread = Thread { [self] in self.writeLoop() }
        thread.name = "toolgate-audit"
        thread.start()
    }

    /// Queues one line; drops it (counted) when the queue is full. Never blocks on the sink.
    public func record(_ line: [UInt8]) {
        condition.lock()
        guard !closing, queue.count < capacity else {
            condition.unlock()
            metrics.auditDropped(1)
            return
        }
        queue.append(line)
        condition.signal()
        condition.unlock()
    }

    /// Asks the writer to reopen the sink before its next write (SIGHUP).
    public func reopen() {
        condition.lock()
        reopenRequested = true
        condition.signal()
        condition.unlock()
    }

    /// Lines queued and not yet written, for tests.
    public var backlog: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.count
    }

    /// Writes what is queued, then stops; waits at most `timeout` for a slow sink.
    public func close(timeout: Duration = .seconds(5)) {
        condition.lock()
        closing = true
        condition.signal()
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        while !finished, condition.wait(until: deadline) {}
        condition.unlock()
    }

    private func writeLoop() {
        while true {
            condition.lock()
            while queue.isEmpty && !reopenRequested && !closing { condition.wait() }
            let lines = queue
            queue.removeAll(keepingCapacity: true)
            let reopen = reopenRequested
            reopenRequested = false
            let stop = closing && lines.isEmpty
            condition.unlock()
            if reopen {
                do {
                    try sink.reopen()
                    logger.info("audit log reopened")
                } catch {
                    logger.error("could not reopen the audit log; writing on to the one open", metadata: ["error": "\(error)"])
                }
            }
            if !lines.isEmpty {
                do {
                    try sink.write(Array(lines.joined()))
                } catch {
                    metrics.auditDropped(lines.count)
                    if let suppressed = failureLog.admit() {
                        logger.error(
                            "audit log write failed; lines dropped",
                            metadata: ["error": "\(error)", "lines": "\(lines.count)", "suppressedSinceLastLine": "\(suppressed)"])
                    }
                }
            }
            if stop {
                condition.lock()
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }
}

/// A file opened for appending (created 0640 if missing), or standard output for `-`.
public final class FileAuditSink: AuditSink, @unchecked Sendable {
    // @unchecked: `descriptor` changes only on the audit writer thread, the one caller of write and reopen.
    public let path: String
    private var descriptor: Int32

    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let action: String
        public let errno: Int32
        public var description: String { "--audit-log \(path): cannot \(action): \(String(cString: strerror(errno)))" }
    }

    public init(path: String) throws(Failure) {
        self.path = path
        descriptor = try Self.open(path)
    }

    deinit { if path != "-" { _ = Glibc.close(descriptor) } }

    private static func open(_ path: String) throws(Failure) -> Int32 {
        if path == "-" { return STDOUT_FILENO }
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Failure(path: path, action: "open it for appending", errno: errno) }
        return fd
    }

    public func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, action: "write", errno: errno)
            }
            offset += written
        }
    }

    public func reopen() throws {
        guard path != "-" else { return }
        let fresh = try Self.open(path)
        _ = Glibc.close(descriptor)
        descriptor = fresh
    }
}
