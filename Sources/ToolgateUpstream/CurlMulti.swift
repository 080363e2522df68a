import CCurl
import Foundation
import Synchronization

/// One curl multi handle and the thread that drives it.
///
/// curl handles are not thread-safe, and `curl_multi_poll` blocks, so neither may run on a Swift concurrency
/// thread. Everything that touches a handle happens on this one thread: tasks hand it commands through a
/// mutex-protected inbox and wake it with `curl_multi_wakeup`, the only multi call that is safe from elsewhere.
/// Sharing one multi handle is also what lets concurrent requests reuse each other's keep-alive connections.
final class CurlMulti: @unchecked Sendable {
    enum Command {
        case start(CurlTransfer)
        case resume(CurlTransfer)
        case cancel(CurlTransfer)
    }

    private struct Inbox {
        var commands: [Command] = []
        /// Once set, nobody wakes the handle any more, so the thread may clean it up.
        var closing = false
    }

    /// Ownership: created here, used only by the multi thread, except `curl_multi_wakeup`, which others call
    /// under the inbox mutex while `closing` is false. The thread frees it when it ends, after `shutdown()`.
    private let handle: UnsafeMutableRawPointer
    private let inbox = Mutex(Inbox())
    /// Easy handles alive (created, not yet freed), for tests and metrics: 0 means nothing leaked.
    let openHandles = Atomic<Int>(0)
    /// The multi thread's own table: it keeps each transfer alive while curl may call back into it.
    private var active: [ObjectIdentifier: CurlTransfer] = [:]

    private static let globalInit: Void = {
        precondition(curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK, "curl_global_init failed")
    }()

    init(maxConnectionsPerHost: Int, maxIdleConnections: Int) {
        _ = Self.globalInit
        guard let handle = curl_multi_init() else { fatalError("curl_multi_init failed: out of memory") }
        self.handle = handle
        _ = toolgate_multi_setopt_long(handle, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost)
        _ = toolgate_multi_setopt_long(handle, CURLMOPT_MAXCONNECTS, maxIdleConnections)
        let thread = Thread { [self] in run() }
        thread.name = "toolgate-curl-multi"
        thread.start()
    }

    /// Returns false once the multi is shut down; a transfer that was not accepted keeps its handle, freed on deinit.
    @discardableResult
    func enqueue(_ command: Command) -> Bool {
        inbox.withLock { inbox in
            guard !inbox.closing else { return false }
            inbox.commands.append(command)
            curl_multi_wakeup(handle)
            return true
        }
    }

    /// Fails every transfer with `.cancelled` and ends the thread; later submissions are refused.
    func shutdown() {
        inbox.withLock { inbox in
            guard !inbox.closing else { return }
            inbox.closing = true
            curl_multi_wakeup(handle)
        }
    }

    // MARK: The multi thread

    private func run() {
        var running: Int32 = 0
        while let commands = takeCommands() {
            for command in commands { apply(command) }
            curl_multi_perform(handle, &running)
            collectFinished()
            let waitMilliseconds = enforceDeadlines(now: .now)
            // Returns early on socket activity, on a wakeup, or when curl's own timers are due.
            curl_multi_poll(handle, nil, 0, Int32(waitMilliseconds), nil)
        }
        close()
    }

    private func takeCommands() -> [Command]? {
        inbox.withLock { inbox in
            guard !inbox.closing else { return nil }
            defer { inbox.commands = [] }
            return inbox.commands
        }
    }

    private func apply(_ command: Command) {
        let now = ContinuousClock.now
        switch command {
        case .start(let transfer):
            if transfer.attach(to: handle, now: now) {
                active[ObjectIdentifier(transfer)] = transfer
            } else {
                transfer.release(from: nil)
            }
        case .resume(let transfer):
            guard active[ObjectIdentifier(transfer)] != nil else { return }
            transfer.resumeFromPause(now: now)
        case .cancel(let transfer):
            guard active.removeValue(forKey: ObjectIdentifier(transfer)) != nil else { return }
            transfer.release(from: handle)
        }
    }

    private func collectFinished() {
        var queued: Int32 = 0
        while let message = curl_multi_info_read(handle, &queued) {
            // The message is only valid until the handle is removed: read it first.
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let code = message.pointee.data.result
            var context: UnsafeMutableRawPointer?
            guard toolgate_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &context) == CURLE_OK, let context else { continue }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
            guard active.removeValue(forKey: ObjectIdentifier(transfer)) != nil else { continue }
            transfer.completed(code)
            transfer.release(from: handle)
        }
    }

    /// Fails the transfers whose head or idle deadline passed; returns how long the loop may sleep.
    private func enforceDeadlines(now: ContinuousClock.Instant) -> Int {
        var nearest = now + .seconds(1)
        var expired: [CurlTransfer] = []
        for transfer in active.values {
            guard let deadline = transfer.deadline else { continue }
            if deadline <= now {
                expired.append(transfer)
            } else if deadline < nearest {
                nearest = deadline
            }
        }
        for transfer in expired {
            active.removeValue(forKey: ObjectIdentifier(transfer))
            transfer.timedOut()
            transfer.release(from: handle)
        }
        // Round up, so the loop does not wake a hair early and spin until the deadline.
        return CurlTransfer.milliseconds(now.duration(to: nearest)) + 1
    }

    private func close() {
        let leftovers = inbox.withLock { inbox in
            defer { inbox.commands = [] }
            return inbox.commands
        }
        for case .start(let transfer) in leftovers {
            transfer.fail(.cancelled(transfer.url, "request cancelled: the transport shut down"))
            transfer.release(from: nil)
        }
        for transfer in active.values {
            transfer.fail(.cancelled(transfer.url, "request cancelled: the transport shut down"))
            transfer.release(from: handle)
        }
        active = [:]
        curl_multi_cleanup(handle)
    }
}
