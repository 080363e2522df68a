import Testing
@testable import ToolgateServer

@Suite struct LogThrottleTests {
    @Test func onePerIntervalAndTheRestCounted() {
        let throttle = LogThrottle(interval: .seconds(1))
        let t0 = ContinuousClock.now
        #expect(throttle.admit(now: t0) == 0)
        #expect(throttle.admit(now: t0 + .milliseconds(10)) == nil)
        #expect(throttle.admit(now: t0 + .milliseconds(999)) == nil)
        #expect(throttle.admit(now: t0 + .seconds(1)) == 2)
        #expect(throttle.admit(now: t0 + .milliseconds(1500)) == nil)
        #expect(throttle.admit(now: t0 + .seconds(3)) == 1)
    }
}
