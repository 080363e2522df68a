import Testing
@testable import ToolgateCore

/// Which stdio program serves whom, driven by made-up instants: sessions belong to the grant they were issued to,
/// `session` isolation gives each session (and each grant without one) its own process, capped, stopped on `DELETE`
/// and after the idle limit, never while an exchange is in flight.
@Suite struct StdioSessionTableTests {
    static let t0 = ContinuousClock.now
    static func at(_ seconds: Int) -> ContinuousClock.Instant { t0 + .seconds(seconds) }
    static let s1 = String(repeating: "a", count: 32)
    static let s2 = String(repeating: "b", count: 32)
    static let s3 = String(repeating: "c", count: 32)

    static func route(
        _ table: inout StdioSessionTable, grant: String = "g", header: String? = nil, new: String? = nil, at seconds: Int = 0
    ) -> Result<StdioSessionTable.Route, StdioSessionTable.Refusal> {
        table.route(grant: grant, sessionHeader: header, newSession: new, now: at(seconds))
    }

    @Test func sharedIsolationTellsClientsApartByTheirOwnSessionsOnly() throws {
        var table = StdioSessionTable(isolation: .shared, maximumProcesses: 1)
        let issued = try Self.route(&table, new: Self.s1).get()
        #expect(issued == .init(process: .shared, session: Self.s1, issued: true, starts: false))
        #expect(try Self.route(&table, header: Self.s1).get().session == Self.s1)
        #expect(try Self.route(&table, grant: "other", header: Self.s1).get().session == nil, "another grant's session is not its identity")
        #expect(try Self.route(&table, header: Self.s2).get().session == nil, "a made-up session is none")
        #expect(try Self.route(&table, header: "not-a-session").get().session == nil)
        #expect(table.processCount == 0, "the shared process is not counted")
    }

    @Test func sessionIsolationGivesEachSessionAndEachSessionlessGrantItsOwnProcess() throws {
        var table = StdioSessionTable(isolation: .session, maximumProcesses: 3)
        let a = try Self.route(&table, new: Self.s1).get()
        #expect(a.process == .session(Self.s1) && a.starts && a.issued)
        let again = try Self.route(&table, header: Self.s1).get()
        #expect(again.process == .session(Self.s1) && !again.starts)
        #expect(Self.route(&table, grant: "other", header: Self.s1) == .failure(.unknownSession), "never another grant's process")
        #expect(Self.route(&table, header: Self.s2) == .failure(.unknownSession))
        let perRequest = try Self.route(&table).get()
        #expect(perRequest.process == .grant("g") && perRequest.starts && perRequest.session == nil)
        #expect(try Self.route(&table).get().starts == false, "one per grant")
        #expect(try Self.route(&table, grant: "h").get().process == .grant("h"))
        #expect(Self.route(&table, new: Self.s2) == .failure(.full(maximum: 3)), "past the cap")
        #expect(table.sessionCount == 1, "the refused session was not recorded")
    }

    @Test func deleteStopsTheSessionsProcessForItsGrantOnly() throws {
        var table = StdioSessionTable(isolation: .session, maximumProcesses: 1)
        _ = try Self.route(&table, new: Self.s1).get()
        #expect(table.delete(session: Self.s1, grant: "other") == .failure(.unknownSession))
        #expect(table.delete(session: Self.s1, grant: "g") == .success(.session(Self.s1)))
        #expect(Self.route(&table, header: Self.s1) == .failure(.unknownSession))
        #expect(try Self.route(&table, new: Self.s2).get().starts, "the cap freed")
    }

    @Test func idleProcessesAreStoppedButNeverWithAnExchangeInFlight() throws {
        var table = StdioSessionTable(isolation: .session, maximumProcesses: 8, idleLimit: .seconds(600))
        _ = try Self.route(&table, new: Self.s1, at: 0).get()
        _ = try Self.route(&table, new: Self.s2, at: 0).get()
        table.exchangeBegan(on: .session(Self.s2))
        _ = try Self.route(&table, new: Self.s3, at: 0).get()
        _ = try Self.route(&table, header: Self.s3, at: 300).get()
        #expect(table.expire(now: Self.at(599)).isEmpty)
        #expect(table.expire(now: Self.at(600)) == [.session(Self.s1)], "idle for the limit; s2 is busy, s3 was used at 300 s")
        #expect(Self.route(&table, header: Self.s1, at: 601) == .failure(.unknownSession))
        table.exchangeEnded(on: .session(Self.s2), now: Self.at(700))
        #expect(table.expire(now: Self.at(1299)) == [.session(Self.s3)])
        #expect(table.expire(now: Self.at(1300)) == [.session(Self.s2)], "idle from the end of its exchange")
        #expect(table.processCount == 0 && table.sessionCount == 0)
    }

    @Test func anAbandonedRouteLeavesNothingBehind() throws {
        var table = StdioSessionTable(isolation: .session, maximumProcesses: 1)
        let route = try Self.route(&table, new: Self.s1).get()
        table.abandon(route)
        #expect(table.processCount == 0 && table.sessionCount == 0)
    }

    @Test func sessionIDsAreToolgatesOwnShape() {
        #expect(StdioSessionTable.isSessionID(Self.s1))
        #expect(!StdioSessionTable.isSessionID(String(repeating: "A", count: 32)))
        #expect(!StdioSessionTable.isSessionID(String(repeating: "a", count: 31)))
    }
}
