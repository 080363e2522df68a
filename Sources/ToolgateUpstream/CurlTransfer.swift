import CCurl
import Synchronization
import ToolgateCore

/// One HTTP exchange on one curl easy handle: the handle, its C callbacks, and the state that the multi
/// thread shares with the task awaiting the head and with the body's reader.
///
/// Two kinds of state live here, with different owners:
/// - curl-side state (`easy`, `headerList`, `head`, deadlines, `curlPaused`) belongs to the multi thread once
///   the transfer is submitted; the callbacks run there too, inside `curl_multi_perform`.
/// - `shared` is what the async side sees (the head, the body buffer, the waiting continuations), under a mutex.
///   Continuations are always resumed after the mutex is released.
final class CurlTransfer: @unchecked Sendable {
    typealias Head = (status: Int, headers: [HTTPHeader])

    let url: String
    let multi: CurlMulti
    let headersTimeout: Duration
    let idleTimeout: Duration
    /// Bytes of request body to send: the upstream got the request only once all of them went out.
    let requestBodyCount: Int

    /// Ownership: created and configured by the submitting task in `init`; from `multi.enqueue(.start)` on,
    /// only the multi thread touches it, and it frees it in `release(from:)` (or `deinit`, for a handle that
    /// was never submitted). Never nil between `init` and that release.
    private(set) var easy: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    let errorBuffer: UnsafeMutablePointer<CChar>
    private var isAttached = false
    private var head = ResponseHeadParser()
    private var headDeadline: ContinuousClock.Instant?
    private var lastActivity = ContinuousClock.now
    /// Whether curl holds the transfer paused because the write callback refused data.
    private var curlPaused = false

    private typealias HeadWaiter = CheckedContinuation<Result<Head, UpstreamError>, Never>
    private typealias BodyWaiter = CheckedContinuation<Result<[UInt8]?, UpstreamError>, Never>

    private enum HeadState {
        case waiting(HeadWaiter?)
        case arrived(Head)
        case failed(UpstreamError)
        case taken
    }

    private struct Shared {
        var head: HeadState = .waiting(nil)
        var body: BodyBuffer
        var bodyWaiter: BodyWaiter?
        /// Set once the outcome is decided (completed, timed out, cancelled): later decisions are ignored.
        var settled = false

        /// Hands the waiting reader whatever is ready; the reader keeps waiting while nothing is.
        mutating func wakeReader() -> (BodyWaiter, BodyBuffer.Take)? {
            guard let waiter = bodyWaiter, let take = body.take() else { return nil }
            bodyWaiter = nil
            return (waiter, take)
        }
    }

    private let shared: Mutex<Shared>

    init(request: UpstreamRequest, configuration: CurlUpstreamTransport.Configuration, multi: CurlMulti) throws(UpstreamError) {
        url = request.url
        self.multi = multi
        headersTimeout = configuration.headersTimeout
        idleTimeout = configuration.idleTimeout
        requestBodyCount = request.body.count
        shared = Mutex(Shared(body: BodyBuffer(highWater: configuration.bodyBufferLimit)))
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        guard let handle = curl_easy_init() else {
            throw .notSent(url, "curl_easy_init failed")
        }
        easy = handle
        multi.openHandles.add(1, ordering: .relaxed)
        try configure(handle, for: request, configuration: configuration)
    }

    deinit {
        if let easy { freeHandle(easy) }
        errorBuffer.deallocate()
    }

    // MARK: Multi thread

    func attach(to multiHandle: UnsafeMutableRawPointer, now: ContinuousClock.Instant) -> Bool {
        guard let easy, curl_multi_add_handle(multiHandle, easy) == CURLM_OK else {
            fail(.notSent(url, "curl_multi_add_handle failed"))
            return false
        }
        isAttached = true
        headDeadline = now + headersTimeout
        return true
    }

    /// Removes the handle from the multi and frees it; safe to call more than once.
    func release(from multiHandle: UnsafeMutableRawPointer?) {
        guard let easy else { return }
        if isAttached, let multiHandle { curl_multi_remove_handle(multiHandle, easy) }
        isAttached = false
        freeHandle(easy)
        self.easy = nil
    }

    private func freeHandle(_ handle: UnsafeMutableRawPointer) {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headerList)
        headerList = nil
        multi.openHandles.subtract(1, ordering: .relaxed)
    }

    /// The head deadline until the head arrives, then the idle deadline. That runs while the transfer is
    /// paused too: an agent that stops reading must not hold an upstream connection forever, so a body that
    /// makes no progress either way for the idle timeout is cut and its slot freed.
    var deadline: ContinuousClock.Instant? {
        if let headDeadline { return headDeadline }
        return lastActivity + idleTimeout
    }

    func timedOut() {
        let error: UpstreamError
        if head.isComplete {
            error = curlPaused
                ? .idleTimeout(url, after: idleTimeout, reason: "the client stopped reading the response")
                : .idleTimeout(url, after: idleTimeout)
        } else {
            error = .headersTimeout(url, after: headersTimeout)
        }
        fail(error.with(requestSent: requestWasSent()))
    }

    /// Whether the upstream can have the whole request: it answered, or the request head and every body byte went
    /// out on a connection. Judged from what curl wrote to the socket, whether the connection was new or reused (a
    /// reused one has no connect time, yet carries the request as surely). Called on the multi thread before the
    /// handle is released.
    private func requestWasSent() -> Bool {
        if head.isComplete { return true }
        guard let easy else { return false }
        var headBytes = 0
        guard toolgate_easy_getinfo_long(easy, CURLINFO_REQUEST_SIZE, &headBytes) == CURLE_OK else { return true }
        guard headBytes > 0 else { return false }
        var uploaded: curl_off_t = 0
        guard toolgate_easy_getinfo_off_t(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded) == CURLE_OK else { return true }
        return uploaded >= curl_off_t(requestBodyCount)
    }

    func resumeFromPause(now: ContinuousClock.Instant) {
        guard let easy, isAttached, curlPaused else { return }
        curlPaused = false
        lastActivity = now
        // May call the write callback synchronously with the data curl held back.
        curl_easy_pause(easy, CURLPAUSE_CONT)
    }

    /// curl finished the transfer, well or not.
    func completed(_ code: CURLcode) {
        guard code == CURLE_OK else {
            var osErrno = 0
            if let easy { _ = toolgate_easy_getinfo_long(easy, CURLINFO_OS_ERRNO, &osErrno) }
            let error = UpstreamError.curl(
                code, url: url, headReceived: head.isComplete, osErrno: osErrno, errorBuffer: String(cString: errorBuffer))
            fail(error.requestSent ? error.with(requestSent: requestWasSent()) : error)
            return
        }
        if !head.isComplete {
            // A response that ended without a blank line after its head: take what was parsed.
            deliverHead(.success((responseCode() ?? head.status ?? 0, head.headers)))
        }
        settle(.success(()))
    }

    /// Ends the exchange with an error: the awaited head fails, or the body reports it after its buffered bytes.
    func fail(_ error: UpstreamError) {
        if !head.isComplete { deliverHead(.failure(error)) }
        settle(.failure(error))
    }

    private func responseCode() -> Int? {
        var code = 0
        guard let easy, toolgate_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK, code > 0 else { return nil }
        return code
    }

    private func settle(_ outcome: Result<Void, UpstreamError>) {
        let wake = shared.withLock { shared -> (BodyWaiter, BodyBuffer.Take)? in
            guard !shared.settled else { return nil }
            shared.settled = true
            shared.body.finish(outcome)
            return shared.wakeReader()
        }
        if let (waiter, take) = wake { waiter.resume(returning: handOut(take)) }
    }

    private func deliverHead(_ result: Result<Head, UpstreamError>) {
        let waiter = shared.withLock { shared -> HeadWaiter? in
            guard case .waiting(let waiter) = shared.head else { return nil }
            if let waiter {
                shared.head = .taken
                return waiter
            }
            switch result {
            case .success(let head): shared.head = .arrived(head)
            case .failure(let error): shared.head = .failed(error)
            }
            return nil
        }
        waiter?.resume(returning: result)
    }

    fileprivate func receivedHeaderLine(_ line: UnsafeRawBufferPointer) -> Int {
        if head.feed(line: line) {
            headDeadline = nil
            lastActivity = .now
            deliverHead(.success((responseCode() ?? head.status ?? 0, head.headers)))
        }
        return line.count
    }

    fileprivate func receivedBody(_ chunk: UnsafeRawBufferPointer) -> Int {
        lastActivity = .now
        let (offer, wake) = shared.withLock { shared -> (BodyBuffer.Offer?, (BodyWaiter, BodyBuffer.Take)?) in
            guard !shared.settled else { return (nil, nil) }
            let offer = shared.body.offer(chunk)
            return (offer, shared.wakeReader())
        }
        if let (waiter, take) = wake { waiter.resume(returning: handOut(take)) }
        switch offer {
        case nil:
            return 0  // Settled by a cancel: abort, the cancel command removes the handle.
        case .pause:
            curlPaused = true
            return Int(CURL_WRITEFUNC_PAUSE)
        case .accepted:
            return chunk.count
        }
    }

    // MARK: Async side

    func awaitHead() async -> Result<Head, UpstreamError> {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = shared.withLock { shared -> Result<Head, UpstreamError>? in
                    switch shared.head {
                    case .waiting:
                        shared.head = .waiting(continuation)
                        return nil
                    case .arrived(let head):
                        shared.head = .taken
                        return .success(head)
                    case .failed(let error):
                        shared.head = .taken
                        return .failure(error)
                    case .taken:
                        return .failure(.transport(url, "response head awaited twice"))
                    }
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            cancel(.failure(.cancelled(url)))
        }
    }

    func nextChunk() async -> Result<[UInt8]?, UpstreamError> {
        if let take = shared.withLock({ $0.body.take() }) { return handOut(take) }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let take = shared.withLock { shared -> BodyBuffer.Take? in
                    if let take = shared.body.take() { return take }
                    guard shared.bodyWaiter == nil else { return .end(.transport(url, "body read by two readers at once")) }
                    shared.bodyWaiter = continuation
                    return nil
                }
                if let take { continuation.resume(returning: handOut(take)) }
            }
        } onCancel: {
            cancel(.failure(.cancelled(url)))
        }
    }

    /// Taking bytes out of a paused transfer's buffer is what lets it continue.
    private func handOut(_ take: BodyBuffer.Take) -> Result<[UInt8]?, UpstreamError> {
        switch take {
        case .bytes(let bytes, let resume):
            if resume { multi.enqueue(.resume(self)) }
            return .success(bytes)
        case .end(nil):
            return .success(nil)
        case .end(let error?):
            return .failure(error)
        }
    }

    /// Stops the exchange from any thread: waiters get `outcome` at once, and the multi thread removes the handle.
    /// A head not yet handed over fails with `.cancelled` either way.
    func cancel(_ outcome: Result<Void, UpstreamError>) {
        let headError: UpstreamError
        if case .failure(let error) = outcome { headError = error } else { headError = .cancelled(url) }
        let (headWaiter, bodyWaiter, decided) = shared.withLock { shared -> (HeadWaiter?, BodyWaiter?, Bool) in
            var headWaiter: HeadWaiter?
            switch shared.head {
            case .waiting(let waiter):
                headWaiter = waiter
                shared.head = waiter == nil ? .failed(headError) : .taken
            case .arrived:
                shared.head = .failed(headError)
            case .failed, .taken:
                break
            }
            let bodyWaiter = shared.bodyWaiter
            shared.bodyWaiter = nil
            let decided = !shared.settled
            shared.settled = true
            shared.body.discard(outcome)
            return (headWaiter, bodyWaiter, decided)
        }
        headWaiter?.resume(returning: .failure(headError))
        bodyWaiter?.resume(returning: outcome.map { nil })
        if decided { multi.enqueue(.cancel(self)) }
    }
}

/// Observation for tests and metrics.
extension CurlTransfer {
    struct BufferState {
        var bytes: Int
        var peak: Int
        var limit: Int
        var paused: Bool
    }

    var bufferState: BufferState {
        shared.withLock { BufferState(bytes: $0.body.bytes.count, peak: $0.body.peak, limit: $0.body.highWater, paused: $0.body.paused) }
    }
}

// The C callbacks. Their context is `Unmanaged.passUnretained(transfer)` (set in `configure`): the multi
// thread's table of active transfers keeps each transfer alive for as long as curl may call back.

let curlHeaderCallback: toolgate_curl_data_callback = { data, size, count, context in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
    return transfer.receivedHeaderLine(UnsafeRawBufferPointer(start: data, count: size * count))
}

let curlWriteCallback: toolgate_curl_data_callback = { data, size, count, context in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
    return transfer.receivedBody(UnsafeRawBufferPointer(start: data, count: size * count))
}
