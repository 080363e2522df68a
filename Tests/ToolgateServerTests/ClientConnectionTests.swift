import Synchronization
import Testing
@testable import ToolgateServer

/// The agent-departure slot of one connection, driven directly.
@Suite struct ClientConnectionTests {
    final class Calls: Sendable {
        let count = Atomic(0)
        var value: Int { count.load(ordering: .relaxed) }
        func hit() { count.add(1, ordering: .relaxed) }
    }

    @Test func departureStopsTheExchangeInFlightOnce() {
        let connection = ClientConnection()
        let calls = Calls()
        connection.onDeparture { calls.hit() }
        #expect(calls.value == 0)
        connection.depart()
        connection.depart()
        #expect(calls.value == 1)
        #expect(connection.hasDeparted)
    }

    @Test func aClearedActionIsNotRun() {
        let connection = ClientConnection()
        let calls = Calls()
        connection.onDeparture { calls.hit() }
        connection.clearDeparture()
        connection.depart()
        #expect(calls.value == 0)
    }

    @Test func aLaterExchangeReplacesTheEarlierAction() {
        let connection = ClientConnection()
        let first = Calls(), second = Calls()
        connection.onDeparture { first.hit() }
        connection.onDeparture { second.hit() }
        connection.depart()
        #expect(first.value == 0)
        #expect(second.value == 1)
    }

    @Test func workStartedAfterTheAgentLeftStopsAtOnce() {
        let connection = ClientConnection()
        connection.depart()
        let calls = Calls()
        connection.onDeparture { calls.hit() }
        #expect(calls.value == 1)
    }
}
