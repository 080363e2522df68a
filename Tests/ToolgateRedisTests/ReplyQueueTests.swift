import Testing

@testable import ToolgateRedis

/// The FIFO and deadline rules, with made-up instants: no Redis, no sleeping.
@Suite struct ReplyQueueTests {
    let start = ContinuousClock.now
    let timeout = Duration.milliseconds(100)

    @Test func repliesGoToEntriesInTheOrderTheyWereAppended() {
        var queue = ReplyQueue<String>()
        for name in ["a", "b", "c"] { queue.append(name, bytes: 10, timeout: timeout) }
        queue.markSent(writtenBytes: 30, at: start)
        #expect(queue.popFirst()?.waiter == "a")
        #expect(queue.popFirst()?.waiter == "b")
        #expect(queue.popFirst()?.waiter == "c")
        #expect(queue.popFirst() == nil)
        #expect(queue.isEmpty)
    }

    @Test func theClockStartsWhenTheLastByteReachesTheSocket() {
        var queue = ReplyQueue<String>()
        queue.append("a", bytes: 10, timeout: timeout)
        queue.append("b", bytes: 10, timeout: timeout)
        // Only "a" and half of "b" were written.
        queue.markSent(writtenBytes: 15, at: start)
        #expect(queue.nextDeadline == start + timeout)
        var expired: [String] = []
        queue.expire(now: start + .seconds(60)) { expired.append($0) }
        // "b" sat in the output buffer for a minute, but it never reached Redis: that is not a Redis timeout.
        #expect(expired == ["a"])
        #expect(queue.nextDeadline == nil)

        queue.markSent(writtenBytes: 20, at: start + .seconds(61))
        #expect(queue.nextDeadline == start + .seconds(61) + timeout)
        queue.expire(now: start + .seconds(61) + .milliseconds(99)) { expired.append($0) }
        #expect(expired == ["a"])
        queue.expire(now: start + .seconds(61) + timeout) { expired.append($0) }
        #expect(expired == ["a", "b"])
    }

    @Test func anExpiredEntryKeepsItsSlotSoItsLateReplyCannotReachTheNextCaller() {
        var queue = ReplyQueue<String>()
        queue.append("first", bytes: 5, timeout: timeout)
        queue.markSent(writtenBytes: 5, at: start)
        queue.expire(now: start + timeout) { $0 = "first, late" }
        queue.append("second", bytes: 5, timeout: timeout)
        queue.markSent(writtenBytes: 10, at: start + timeout)

        let lateReplyGoesTo = queue.popFirst()
        #expect(lateReplyGoesTo?.waiter == "first, late")
        #expect(lateReplyGoesTo?.expired == true)
        let nextReplyGoesTo = queue.popFirst()
        #expect(nextReplyGoesTo?.waiter == "second")
        #expect(nextReplyGoesTo?.expired == false)
    }

    @Test func eachEntryExpiresOnce() {
        var queue = ReplyQueue<Int>()
        queue.append(0, bytes: 1, timeout: timeout)
        queue.markSent(writtenBytes: 1, at: start)
        var calls = 0
        queue.expire(now: start + timeout) { _ in calls += 1 }
        queue.expire(now: start + timeout * 5) { _ in calls += 1 }
        #expect(calls == 1)
    }

    @Test func entriesWithoutATimeoutNeverExpireAndDoNotHoldBackTheOthers() {
        var queue = ReplyQueue<String>()
        queue.append("handshake", bytes: 4, timeout: nil)
        queue.append("caller", bytes: 4, timeout: timeout)
        queue.markSent(writtenBytes: 8, at: start)
        #expect(queue.nextDeadline == start + timeout)
        var expired: [String] = []
        queue.expire(now: start + .seconds(10)) { expired.append($0) }
        #expect(expired == ["caller"])
    }

    @Test func oldestSentAtIsHowLongTheConnectionHasOwedAReply() {
        var queue = ReplyQueue<Int>()
        #expect(queue.oldestSentAt == nil)
        queue.append(1, bytes: 3, timeout: timeout)
        #expect(queue.oldestSentAt == nil)
        queue.markSent(writtenBytes: 3, at: start)
        queue.append(2, bytes: 3, timeout: timeout)
        queue.markSent(writtenBytes: 6, at: start + .seconds(1))
        #expect(queue.oldestSentAt == start)
        _ = queue.popFirst()
        #expect(queue.oldestSentAt == start + .seconds(1))
        _ = queue.popFirst()
        #expect(queue.oldestSentAt == nil)
    }

    @Test func removeAllHandsBackWhatWasUnanswered() {
        var queue = ReplyQueue<Int>()
        for value in 0..<5 { queue.append(value, bytes: 2, timeout: timeout) }
        queue.markSent(writtenBytes: 10, at: start)
        _ = queue.popFirst()
        #expect(queue.removeAll().map(\.waiter) == [1, 2, 3, 4])
        #expect(queue.isEmpty)
        #expect(queue.appendedBytes == 0)
    }

    @Test func orderAndDeadlinesSurviveCompaction() {
        var queue = ReplyQueue<Int>()
        for value in 0..<3000 { queue.append(value, bytes: 1, timeout: timeout) }
        queue.markSent(writtenBytes: 2500, at: start)
        for expected in 0..<2000 { #expect(queue.popFirst()?.waiter == expected) }
        #expect(queue.count == 1000)
        var expired: [Int] = []
        queue.expire(now: start + timeout) { expired.append($0) }
        #expect(expired == Array(2000..<2500))
        queue.markSent(writtenBytes: 3000, at: start + .seconds(1))
        #expect(queue.oldestSentAt == start)
        #expect((0..<1000).compactMap { _ in queue.popFirst()?.waiter } == Array(2000..<3000))
    }
}
