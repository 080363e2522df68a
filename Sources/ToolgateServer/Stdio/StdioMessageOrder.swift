import Synchronization
import ToolgateCore

/// Which ordering a stdin message needs on its way upstream. A client writes `initialize`, then
/// `notifications/initialized`, then its requests, without waiting; the upstream must see them in that order where
/// the protocol depends on it, while requests still run side by side (a long `tools/call` never holds up a `ping`).
enum StdioMessageOrder: Equatable {
    /// `initialize`: everything written after it waits until its answer came (it opens the session the rest names).
    case initialize
    /// A request or an answer to the upstream's request: sent once the notifications before it were, then on its own.
    case concurrent(requestID: JSONValue?)
    /// A notification, or a batch: sent once everything written before it reached the upstream; what follows waits
    /// until it did.
    case barrier
    /// `notifications/cancelled`: waits only for the request it names to be handed to the upstream (not for its
    /// answer: that is what it cancels); what follows waits until it reached the upstream.
    case cancellation(of: JSONValue)
    /// Not JSON-RPC: toolgate answers it itself, in any order.
    case unordered

    init(_ message: JSONValue?) {
        guard let message else {
            self = .unordered
            return
        }
        if message.arrayValue != nil {
            self = .barrier
            return
        }
        guard case .object(let object) = message else {
            self = .unordered
            return
        }
        let method = object["method"]?.stringValue
        let id = object["id"]
        switch (method, id) {
        case ("initialize"?, _?): self = .initialize
        case ("notifications/cancelled"?, nil):
            if let requestID = object["params"]?["requestId"] { self = .cancellation(of: requestID) } else { self = .barrier }
        case (_?, nil): self = .barrier
        case (_?, let id?): self = .concurrent(requestID: id)
        case (nil, _): self = .concurrent(requestID: nil)  // an answer to the upstream's own request
        }
    }
}

/// A one-way signal that can be awaited: opened once, it stays open.
final class StdioSignal: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    var isOpen: Bool { state.withLock { $0.open } }

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.open else { return [] }
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state -> Bool in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }
}

/// How far one stdin message got: handed to the upstream transport, and received by the upstream (a stdio
/// upstream has it once it is written to its stdin; an HTTP upstream shows it has it by answering with a response
/// head). A message toolgate answers itself (a denial, say) opens both when its answer is ready.
final class StdioMessageProgress: Sendable {
    let handedOver = StdioSignal()
    let received = StdioSignal()

    /// The message whose POST the current task is handling, for `StdioOrderedUpstream` to report on.
    @TaskLocal static var current: StdioMessageProgress?

    func finished() {
        handedOver.open()
        received.open()
    }
}

/// The upstream as the stdio front sees it: reports when each message's POST is handed over and received, so the
/// front can hold the messages that must not overtake it.
struct StdioOrderedUpstream: UpstreamTransport {
    let upstream: any UpstreamTransport

    func send(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        guard request.method == .post, let progress = StdioMessageProgress.current else {
            return try await upstream.send(request)
        }
        progress.handedOver.open()
        defer { progress.received.open() }
        return try await upstream.send(request)
    }
}
