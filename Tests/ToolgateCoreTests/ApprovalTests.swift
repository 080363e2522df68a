import Testing
@testable import ToolgateCore

/// Canonical arguments, the binding an approval is for, and the in-memory approval store's rules on a manual clock.
@Suite struct ApprovalTests {
    static func parse(_ text: String) -> JSONValue { try! JSONParser.parse(text) }

    @Test(arguments: [
        (#"{"b":1,"a":[true,null,"x"]}"#, #"{"a":[true,null,"x"],"b":1}"#),
        (#"{ "n" : 1.0 }"#, #"{"n":1}"#),
        ("[1e0, 10e-1, 100E-2, 1.000, -0, 0.0, -0.0e5]", "[1,1,1,1,0,0,0]"),
        ("[0.5, 5e-1, 0.000001, 1e-7, 123.456, 1e20, 1e21, 12345678901234567890123]",
         "[0.5,0.5,0.000001,1e-7,123.456,100000000000000000000,1e+21,1.2345678901234567890123e+22]"),
        ("[-1.50, -15e-1, 2.5e+3]", "[-1.5,-1.5,2500]"),
        (#"{"é":"\u00e9","e\u0301":"K","\u212a":1}"#, "{\"e\u{301}\":\"K\",\"\u{e9}\":\"\u{e9}\",\"\u{212a}\":1}"),
        (#"{"s":"line\nbreak \"quoted\" \\ \u0001"}"#, #"{"s":"line\nbreak \"quoted\" \\ \u0001"}"#),
    ])
    func canonicalText(input: String, canonical: String) {
        #expect(CanonicalJSON.string(Self.parse(input)) == canonical)
    }

    /// Equal values (exact comparison) always get one text; unequal ones never share it.
    @Test func canonicalTextFollowsExactEquality() {
        let numbers = ["0", "-0", "1", "1.0", "1e0", "10e-1", "0.1", "1e-1", "1234567890123456789", "1234567890123456768",
                       "1234567890123456768.0", "2.5", "25e-1", "1e400", "1e-400", "-1e-400"]
        for a in numbers {
            for b in numbers {
                let x = JSONNumber(literal: a), y = JSONNumber(literal: b)
                #expect((CanonicalJSON.number(x) == CanonicalJSON.number(y)) == (x == y), "\(a) vs \(b)")
            }
        }
    }

    @Test func theCanonicalTextParsesBackToAnEqualValue() {
        for text in [#"{"z":[1.50,{"b":2,"a":1}],"y":"\u00e9\ud83d\ude00"}"#, "[1e400, -2.5e-9, 0]"] {
            let value = Self.parse(text)
            #expect(Self.parse(CanonicalJSON.string(value)) == value)
        }
    }

    @Test func aBindingCoversExactlyOneGrantToolArgumentsAndPolicy() {
        let base = ApprovalBinding(grant: "g", tool: "t", arguments: Self.parse(#"{"a":1,"b":"x"}"#), policySHA256: "p")
        let same = ApprovalBinding(grant: "g", tool: "t", arguments: Self.parse(#"{"b":"x","a":1.0}"#), policySHA256: "p")
        #expect(base.key == same.key)
        #expect(base.key.utf8.count == 32)
        let others = [
            ApprovalBinding(grant: "h", tool: "t", arguments: Self.parse(#"{"a":1,"b":"x"}"#), policySHA256: "p"),
            ApprovalBinding(grant: "g", tool: "u", arguments: Self.parse(#"{"a":1,"b":"x"}"#), policySHA256: "p"),
            ApprovalBinding(grant: "g", tool: "t", arguments: Self.parse(#"{"a":2,"b":"x"}"#), policySHA256: "p"),
            ApprovalBinding(grant: "g", tool: "t", arguments: Self.parse(#"{"a":1,"b":"x"}"#), policySHA256: "q"),
            // Parts cannot run into each other: "g:t" + "" is not "g" + ":t".
            ApprovalBinding(grant: "g:t", tool: "", arguments: Self.parse(#"{"a":1,"b":"x"}"#), policySHA256: "p"),
            // The same tool on a named server (DESIGN.md section 10), or on another one.
            ApprovalBinding(grant: "g", server: "alpha", tool: "t", arguments: Self.parse(#"{"a":1,"b":"x"}"#), policySHA256: "p"),
            ApprovalBinding(grant: "g", server: "beta", tool: "t", arguments: Self.parse(#"{"a":1,"b":"x"}"#), policySHA256: "p"),
        ]
        #expect(Set(others.map(\.key)).count == others.count, "every binding has its own key")
        for other in others { #expect(other.key != base.key) }
    }

    @Test func idsAreWellFormedOnlyInTheirOwnShape() {
        let binding = ApprovalBinding(grant: "g", tool: "t", arguments: [:], policySHA256: "p")
        let id = Approval.newID(for: binding)
        #expect(Approval.isWellFormed(id: id))
        #expect(Approval.bindingKey(ofID: id) == binding.key)
        #expect(Approval.newID(for: binding) != id)
        for bad in ["", id + "0", String(id.dropLast()), id.uppercased(), binding.key + "_" + String(id.suffix(16)), "../" + id.dropFirst(3)] {
            #expect(!Approval.isWellFormed(id: bad), "\(bad)")
        }
    }

    // MARK: The store's rules

    static let binding = ApprovalBinding(grant: "g", tool: "t", arguments: ["a": 1], policySHA256: "p")
    static let create = ApprovalCreation.create(maxPendingPerGrant: 10)

    /// Well-formed ids of requests for `binding`.
    func id(_ n: Int) -> String { Self.binding.key + "-" + String(repeating: "0", count: 15) + String(n) }

    func pendingID(_ start: ApprovalStart) -> String? {
        if case .pending(let approval) = start { return approval.id }
        return nil
    }

    @Test func anApprovalIsUsedExactlyOnce() async throws {
        let clock = ManualWallClock(micros: 1_000_000_000)
        let store = InMemoryApprovalStore(clock: clock)
        let first = try await store.start(Self.binding, newID: id(1), ttlSeconds: 60, creation: Self.create)
        #expect(pendingID(first) == id(1))
        // An identical call finds the same request rather than opening another.
        #expect(pendingID(try await store.start(Self.binding, newID: id(2), ttlSeconds: 60, creation: Self.create)) == id(1))
        guard case .decided(let approved) = try await store.decide(id: id(1), approve: true) else {
            Issue.record("not decided")
            return
        }
        #expect(approved.state == .approved)
        // Found, not used up: a call whose limits refuse it leaves it for a retry.
        #expect(try await store.start(Self.binding, newID: id(3), ttlSeconds: 60, creation: Self.create) == .approved(id: id(1)))
        #expect(try await store.start(Self.binding, newID: id(3), ttlSeconds: 60, creation: .lookOnly) == .approved(id: id(1)))
        #expect(try await store.consume(id: id(0)) == false)
        #expect(try await store.consume(id: id(1)))
        #expect(try await store.consume(id: id(1)) == false)
        #expect(try await store.start(Self.binding, newID: id(4), ttlSeconds: 60, creation: .lookOnly) == .absent)
        #expect(pendingID(try await store.start(Self.binding, newID: id(4), ttlSeconds: 60, creation: Self.create)) == id(4))
        #expect(try await store.consume(id: id(4)) == false, "a pending request is not an approval")
        #expect(try await store.states(ids: [id(1), id(4)]) == [id(4): .pending])
    }

    /// DESIGN.md section 6: pending requests are capped per grant; decided and expired ones do not count, and
    /// other grants are unaffected.
    @Test func pendingRequestsAreCappedPerGrant() async throws {
        let clock = ManualWallClock(micros: 0)
        let store = InMemoryApprovalStore(clock: clock)
        func binding(_ grant: String, _ n: Int) -> ApprovalBinding {
            ApprovalBinding(grant: grant, tool: "t", arguments: ["n": .number(JSONNumber(n))], policySHA256: "p")
        }
        func start(_ grant: String, _ n: Int) async throws -> ApprovalStart {
            try await store.start(binding(grant, n), newID: Approval.newID(for: binding(grant, n)), ttlSeconds: 60, creation: .create(maxPendingPerGrant: 3))
        }
        var ids: [String] = []
        for n in 0..<3 { ids.append(try #require(pendingID(try await start("g", n)))) }
        #expect(try await start("g", 3) == .tooManyPending)
        #expect(pendingID(try await start("g", 0)) == ids[0], "an open request is found, not refused")
        #expect(pendingID(try await start("h", 0)) != nil, "another grant has its own cap")
        _ = try await store.decide(id: ids[0], approve: false)
        #expect(pendingID(try await start("g", 3)) != nil, "a decided request no longer counts")
        #expect(try await start("g", 4) == .tooManyPending)
        clock.advance(micros: 60_000_000)
        #expect(pendingID(try await start("g", 4)) != nil, "expired requests no longer count")
    }

    @Test func aDenialStandsUntilItExpires() async throws {
        let clock = ManualWallClock(micros: 0)
        let store = InMemoryApprovalStore(clock: clock)
        _ = try await store.start(Self.binding, newID: id(1), ttlSeconds: 60, creation: Self.create)
        _ = try await store.decide(id: id(1), approve: false)
        #expect(try await store.start(Self.binding, newID: id(2), ttlSeconds: 60, creation: Self.create) == .denied(id: id(1)))
        if case .alreadyDecided(let a) = try await store.decide(id: id(1), approve: true) {
            #expect(a.state == .denied)
        } else {
            Issue.record("a decided approval was decided again")
        }
        clock.advance(micros: 60_000_000)
        #expect(pendingID(try await store.start(Self.binding, newID: id(3), ttlSeconds: 60, creation: Self.create)) == id(3))
    }

    @Test func anApprovalNeverUsedExpiresWithItsRequest() async throws {
        let clock = ManualWallClock(micros: 0)
        let store = InMemoryApprovalStore(clock: clock)
        _ = try await store.start(Self.binding, newID: id(1), ttlSeconds: 10, creation: Self.create)
        clock.advance(micros: 9_000_000)
        _ = try await store.decide(id: id(1), approve: true)
        #expect(try await store.list().map(\.state) == [.approved])
        clock.advance(micros: 1_000_000)
        #expect(try await store.list().isEmpty)
        #expect(pendingID(try await store.start(Self.binding, newID: id(2), ttlSeconds: 10, creation: Self.create)) == id(2))
    }

    @Test func decisionsNeedTheExactID() async throws {
        let store = InMemoryApprovalStore(clock: ManualWallClock(micros: 0))
        _ = try await store.start(Self.binding, newID: id(1), ttlSeconds: 60, creation: Self.create)
        // Same binding key, another request's random part: not this request.
        #expect(try await store.decide(id: self.id(0), approve: true) == .notFound)
        #expect(try await store.decide(id: "nonsense", approve: true) == .notFound)
        #expect(try await store.list().map(\.state) == [.pending])
    }
}
