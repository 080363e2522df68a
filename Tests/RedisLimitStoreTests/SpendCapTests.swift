import Logging
import Testing
import ToolgateCore
@testable import ToolgateRedis

extension SharedRedisTests {
    /// A spend cap (`cost: "args.amount"`) from the policy through the evaluator into each store and algorithm: max
    /// 1000 a day, amounts 400 and 400 pass, 300 is refused (200 left), 200 passes, then even 1 is refused.
    @Suite struct SpendCapTests {
        static func policy(_ algorithm: LimitAlgorithm) throws -> Policy {
            try Policy.parse(
                #"""
                {"version":"1","default":"deny","tools":{"pay":{"limits":[
                  {"counter":"spend","window":"day","max":1000,"scope":"grant","algorithm":"\#(algorithm.rawValue)","cost":"args.amount"}]}}}
                """#, file: "spend.json")
        }

        static let amounts: [(Int, Bool)] = [(400, true), (400, true), (300, false), (200, true), (1, false)]

        static func run(_ store: any LimitStore, _ algorithm: LimitAlgorithm, prefix: String) async throws -> [Bool] {
            let evaluator = Evaluator(policy: try policy(algorithm), keyPrefix: prefix)
            let identity = Identity(grant: "buyer", agent: "host")
            var admitted: [Bool] = []
            for (index, (amount, _)) in amounts.enumerated() {
                let decision = evaluator.evaluate(ToolCall(name: "pay", arguments: ["amount": .number(JSONNumber(amount))]), identity: identity)
                guard case .allowed = decision.verdict else {
                    Issue.record("not allowed by the policy: \(decision.verdict)")
                    return []
                }
                #expect(decision.charges.map(\.cost) == [amount])
                admitted.append(try await store.acquire(LimitRequest(callID: "c\(index)", charges: decision.charges)).admitted)
            }
            return admitted
        }

        @Test(arguments: LimitAlgorithm.allCases)
        func stopsAtTheRightTotalInMemory(algorithm: LimitAlgorithm) async throws {
            let store = InMemoryLimitStore(clock: ManualWallClock(micros: 1_700_000_000_000_000))
            #expect(try await Self.run(store, algorithm, prefix: "mem") == Self.amounts.map(\.1))
        }

        @Test(arguments: LimitAlgorithm.allCases)
        func stopsAtTheRightTotalOnRedis(algorithm: LimitAlgorithm) async throws {
            let client = try TestRedis.client()
            defer { client.shutdown() }
            let prefix = TestRedis.uniquePrefix("spend")
            let store = RedisLimitStore(client: client, keyPrefix: prefix, logger: Logger(label: "test"))
            #expect(try await Self.run(store, algorithm, prefix: prefix) == Self.amounts.map(\.1))
        }

        @Test func aMissingOrUnusableAmountIsRefusedBeforeAnythingIsCharged() throws {
            let evaluator = Evaluator(policy: try Self.policy(.sliding))
            let identity = Identity(grant: "buyer", agent: "host")
            for arguments: JSONValue in [[:], ["amount": "400"], ["amount": -5], ["amount": .number(JSONNumber(literal: "2.5"))], ["amount": .null], ["amount": [400]]] {
                let decision = evaluator.evaluate(ToolCall(name: "pay", arguments: arguments), identity: identity)
                guard case .invalidArguments = decision.verdict else {
                    Issue.record("\(JSONWriter.string(arguments)) was \(decision.verdict)")
                    continue
                }
                #expect(decision.charges.isEmpty)
            }
        }
    }
}
