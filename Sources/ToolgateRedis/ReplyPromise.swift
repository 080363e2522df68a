import Synchronization

/// The reply to the second command of a pair (`WAIT` after `EVALSHA`), filled in by the connection thread and read
/// by the caller only when it needs it: a decision that consumed nothing never waits for it.
public final class ReplyPromise: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<Result<RedisValue, RedisError>, Never>)
        case done(Result<RedisValue, RedisError>)
    }

    private let state = Mutex(State.pending)

    init() {}

    /// Called once, by the connection thread.
    func fulfil(_ result: Result<RedisValue, RedisError>) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<RedisValue, RedisError>, Never>? in
            guard case .waiting(let continuation) = state else {
                if case .pending = state { state = .done(result) }
                return nil
            }
            state = .done(result)
            return continuation
        }
        waiter?.resume(returning: result)
    }

    /// The reply, when it comes; the connection's deadline for the command bounds the wait. One reader only.
    public func value() async throws(RedisError) -> RedisValue {
        let result = await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Result<RedisValue, RedisError>? in
                if case .done(let result) = state { return result }
                state = .waiting(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }
}
