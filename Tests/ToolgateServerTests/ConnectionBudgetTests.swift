import Testing
@testable import ToolgateServer

@Suite struct ConnectionBudgetTests {
    @Test func capsThatFitAreKeptAsAsked() {
        let budget = ConnectionBudget.fit(clients: 4096, upstream: 256, descriptorLimit: 1 << 20)
        #expect(budget == ConnectionBudget(clientConnections: 4096, upstreamConnections: 256, warning: nil))
        // Exactly full still fits; one more descriptor needed does not.
        #expect(ConnectionBudget.fit(clients: 100, upstream: 100, descriptorLimit: 264).warning == nil)
        #expect(ConnectionBudget.fit(clients: 101, upstream: 100, descriptorLimit: 264).warning != nil)
        #expect(ConnectionBudget.fit(clients: 4096, upstream: 256, descriptorLimit: nil).warning == nil)
    }

    @Test func aSmallLimitLowersBothCapsAndSaysHow() {
        let budget = ConnectionBudget.fit(clients: 4096, upstream: 256, descriptorLimit: 256)
        #expect(budget.clientConnections == 96 && budget.upstreamConnections == 96)
        #expect(budget.warning?.contains("file descriptor limit (256)") == true)
        #expect(budget.warning?.contains("using 96 and 96") == true)
        // The upstream cap is kept when it fits in half; clients get the rest.
        let small = ConnectionBudget.fit(clients: 4096, upstream: 20, descriptorLimit: 1024)
        #expect(small.upstreamConnections == 20 && small.clientConnections == 1024 - 64 - 20)
    }

    /// Whatever the limit, the caps plus the reserve never exceed it (once it is above the reserve), and neither cap
    /// is ever zero: toolgate keeps serving, just fewer at once.
    @Test func theCapsNeverExceedTheLimit() {
        for limit in [1, 10, 64, 65, 66, 100, 256, 1000, 1024, 4096, 5000, 65536] {
            for clients in [1, 50, 4096] {
                for upstream in [1, 256, 10_000] {
                    let budget = ConnectionBudget.fit(clients: clients, upstream: upstream, descriptorLimit: limit)
                    #expect(budget.clientConnections >= 1 && budget.upstreamConnections >= 1)
                    #expect(budget.clientConnections <= clients && budget.upstreamConnections <= upstream)
                    if limit > ConnectionBudget.reserve + 2 {
                        #expect(
                            budget.clientConnections + budget.upstreamConnections + ConnectionBudget.reserve <= limit,
                            "limit \(limit), clients \(clients), upstream \(upstream): \(budget)")
                    }
                }
            }
        }
    }
}
