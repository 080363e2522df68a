import NIOCore
import Synchronization
import ToolgateCore

/// One agent's HTTP connection, as far as stopping work goes: `ClientDepartureWatch` marks it gone, and the
/// exchange in flight on it (HTTP/1.1 handles one at a time) has its slow work stopped.
final class ClientConnection: AgentPresence {
    private enum State {
        case present(stop: (@Sendable () -> Void)?)
        case departed
    }

    private let state = Mutex(State.present(stop: nil))

    var hasDeparted: Bool { state.withLock { if case .departed = $0 { true } else { false } } }

    func onDeparture(_ stop: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            guard case .present = state else { return true }
            state = .present(stop: stop)
            return false
        }
        if runNow { stop() }
    }

    func clearDeparture() {
        state.withLock { state in
            if case .present = state { state = .present(stop: nil) }
        }
    }

    /// The agent went away: stop what its exchange was doing.
    func depart() {
        let stop = state.withLock { state -> (@Sendable () -> Void)? in
            guard case .present(let stop) = state else { return nil }
            state = .departed
            return stop
        }
        stop?()
    }

    // MARK: Finding a request's connection

    /// Hummingbird builds a request's context from its channel alone, so the channel's connection is found here.
    /// Entries live exactly as long as the channel is open (`ClientDepartureWatch` adds and removes them).
    private static let open = Mutex<[ObjectIdentifier: ClientConnection]>([:])

    static func register(_ connection: ClientConnection, for channel: any Channel) {
        open.withLock { $0[ObjectIdentifier(channel)] = connection }
    }

    static func unregister(_ channel: any Channel) {
        _ = open.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    static func of(_ channel: any Channel) -> ClientConnection? {
        open.withLock { $0[ObjectIdentifier(channel)] }
    }

    /// Stops the work of every exchange in flight, as if each agent had left: the end of a drain that timed out.
    static func stopAllExchanges() {
        let connections = open.withLock { Array($0.values) }
        for connection in connections { connection.depart() }
    }

    /// Open connections known here, for tests that check nothing is left behind.
    static var openCount: Int { open.withLock { $0.count } }
}
