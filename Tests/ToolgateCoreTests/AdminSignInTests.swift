import Testing
@testable import ToolgateCore

/// The admin page's sign-in table and the throttle on failed sign-ins, driven by made-up instants (microseconds).
@Suite struct AdminSignInTests {
    /// The table by reference, so `#expect` (which cannot call a mutating member) can drive it.
    final class Table {
        var value: AdminSessionTable
        init(_ limits: AdminSessionTable.Limits = .init()) { value = AdminSessionTable(limits: limits) }
        @discardableResult func open(secret: String, now: Int64) -> Int { value.open(secret: secret, now: now) }
        func use(secret: String, now: Int64) -> Bool { value.use(secret: secret, now: now) }
        func close(secret: String) -> Bool { value.close(secret: secret) }
        var count: Int { value.count }
    }

    final class Throttle {
        var value: SignInThrottle
        init(_ limits: SignInThrottle.Limits = .init()) { value = SignInThrottle(limits: limits) }
        func verdict(address: String, now: Int64) -> SignInThrottle.Verdict { value.verdict(address: address, now: now) }
        func failed(address: String, now: Int64) { value.failed(address: address, now: now) }
        func succeeded(address: String) { value.succeeded(address: address) }
        var trackedAddresses: Int { value.trackedAddresses }
    }

    static let second: Int64 = 1_000_000
    static let minute: Int64 = 60 * second

    @Test func aSecretIsRandomAndLongEnough() {
        var generator = SystemRandomNumberGenerator()
        let a = AdminSessionTable.newSecret(using: &generator), b = AdminSessionTable.newSecret(using: &generator)
        #expect(a.utf8.count == 64 && b.utf8.count == 64)  // 256 bits in hex
        #expect(a != b)
    }

    @Test func idleExpiryIsRenewedByUse() {
        let table = Table()
        table.open(secret: "s", now: 0)
        #expect(table.use(secret: "s", now: 29 * Self.minute))
        // Used at 29 min: alive until 59 min.
        #expect(table.use(secret: "s", now: 58 * Self.minute))
        let lastUse: Int64 = 88 * Self.minute - 1
        #expect(table.use(secret: "s", now: lastUse))
        #expect(!table.use(secret: "s", now: lastUse + 30 * Self.minute))
    }

    @Test func idleSessionEndsAfterThirtyMinutes() {
        let table = Table()
        table.open(secret: "s", now: 1_000)
        #expect(!table.use(secret: "s", now: 1_000 + 30 * Self.minute))
        // Gone for good: a later use (with any clock) does not bring it back.
        #expect(!table.use(secret: "s", now: 1_000 + Self.minute))
        #expect(table.count == 0)
    }

    @Test func absoluteExpiryHoldsHoweverBusy() {
        let table = Table()
        table.open(secret: "s", now: 0)
        var now: Int64 = 0
        while now < 12 * 60 * Self.minute - 10 * Self.minute {
            now += 10 * Self.minute
            #expect(table.use(secret: "s", now: now), "used every 10 min, at \(now / Self.minute) min")
        }
        #expect(!table.use(secret: "s", now: 12 * 60 * Self.minute))
    }

    @Test func signOutRevokesAtOnceAndOnlyThatSecret() {
        let table = Table()
        table.open(secret: "a", now: 0)
        table.open(secret: "b", now: 0)
        #expect(table.close(secret: "a"))
        #expect(!table.use(secret: "a", now: 1))
        #expect(table.use(secret: "b", now: 1))
        #expect(!table.close(secret: "a"))
        #expect(!table.use(secret: "never-issued", now: 1))
    }

    @Test func tableIsBoundedDroppingTheLeastRecentlyUsed() {
        let table = Table(.init(capacity: 3))
        table.open(secret: "a", now: 0)
        table.open(secret: "b", now: 1)
        table.open(secret: "c", now: 2)
        #expect(table.use(secret: "a", now: 3))  // b is now the least recently used
        #expect(table.open(secret: "d", now: 4) == 1)
        #expect(table.count == 3)
        #expect(!table.use(secret: "b", now: 5))
        for secret in ["a", "c", "d"] { #expect(table.use(secret: secret, now: 5), "\(secret)") }
        for i in 0..<1_000 { table.open(secret: "x\(i)", now: 10 + Int64(i)) }
        #expect(table.count == 3)
    }

    @Test func expiredSessionsDoNotTakeRoom() {
        let table = Table(.init(capacity: 2))
        table.open(secret: "old1", now: 0)
        table.open(secret: "old2", now: 0)
        #expect(table.open(secret: "new", now: 31 * Self.minute) == 0)
        #expect(table.count == 1)
    }

    @Test func throttleRefusesPastFiveFailuresAMinuteThenLetsGo() {
        let throttle = Throttle()
        for i in 0..<5 {
            #expect(throttle.verdict(address: "10.0.0.1", now: Int64(i) * Self.second) == .allowed)
            throttle.failed(address: "10.0.0.1", now: Int64(i) * Self.second)
        }
        #expect(throttle.verdict(address: "10.0.0.1", now: 5 * Self.second) == .throttled(retryAfterSeconds: 55))
        #expect(throttle.verdict(address: "10.0.0.1", now: Self.minute - 1) == .throttled(retryAfterSeconds: 1))
        // Another address is not held by this one's failures.
        #expect(throttle.verdict(address: "10.0.0.2", now: 5 * Self.second) == .allowed)
        // The window is over: allowed again, and a new window starts with the next failure.
        #expect(throttle.verdict(address: "10.0.0.1", now: Self.minute) == .allowed)
        throttle.failed(address: "10.0.0.1", now: Self.minute)
        #expect(throttle.verdict(address: "10.0.0.1", now: Self.minute + 1) == .allowed)
    }

    @Test func successForgetsTheAddressFailures() {
        let throttle = Throttle()
        for _ in 0..<4 { throttle.failed(address: "a", now: 0) }
        throttle.succeeded(address: "a")
        for _ in 0..<4 { throttle.failed(address: "a", now: 1) }
        #expect(throttle.verdict(address: "a", now: 2) == .allowed)
    }

    @Test func overallCeilingHoldsAnAgentThatChangesAddress() {
        let throttle = Throttle(.init(maxFailures: 5, maxFailuresOverall: 20))
        for i in 0..<20 { throttle.failed(address: "127.0.0.\(i % 10 + 1)", now: Int64(i)) }
        #expect(throttle.verdict(address: "127.0.0.99", now: 100) == .throttled(retryAfterSeconds: 60))
        #expect(throttle.verdict(address: "127.0.0.99", now: Self.minute) == .allowed)
    }

    @Test func throttleTableIsBounded() {
        let throttle = Throttle(.init(maxFailuresOverall: 1_000_000, maxAddresses: 100))
        for i in 0..<10_000 { throttle.failed(address: "a\(i)", now: Int64(i)) }
        #expect(throttle.trackedAddresses <= 100)
    }
}
