import Logging
import RedisScripts
import ToolgateCore

/// Limits shared by a fleet: every decision is one `EVALSHA` of `lua/acquire.lua`, which checks and consumes
/// all of a call's limits atomically with Redis `TIME`, so host clocks never matter.
public final class RedisLimitStore: LimitStore {
    let client: RedisClient
    let keyPrefix: String
    let logger: Logger

    public init(client: RedisClient, keyPrefix: String, logger: Logger) {
        self.client = client
        self.keyPrefix = keyPrefix
        self.logger = logger
    }

    func recordKey(_ callID: String) -> String { keyPrefix + ":call:" + callID }

    public func acquire(_ request: LimitRequest) async throws(LimitStoreError) -> LimitOutcome {
        var keys = request.charges.map(\.key)
        keys.append(recordKey(request.callID))
        var arguments = [request.callID, String(request.charges.count)]
        arguments.reserveCapacity(2 + request.charges.count * 5)
        for charge in request.charges {
            arguments += [
                charge.algorithm.rawValue, String(charge.window.seconds), String(charge.max), String(charge.cost),
                charge.shadow ? "1" : "0",
            ]
        }
        let callID = request.callID
        let reply = try await evaluate(.acquire, keys: keys, arguments: arguments) { [weak self] late in
            // The caller already gave up on this decision; if the script consumed anyway, give it back.
            guard let self, (try? Self.outcome(from: late, count: request.charges.count))?.admitted == true else { return }
            Task { [self] in
                self.logger.warning("refunding a decision that arrived after its timeout", metadata: ["callID": "\(callID)"])
                _ = try? await self.refund(callID: callID)
            }
        }
        return try Self.outcome(from: reply, count: request.charges.count)
    }

    @discardableResult
    public func refund(callID: String) async throws(LimitStoreError) -> Bool {
        let reply = try await evaluate(.refund, keys: [recordKey(callID)], arguments: [])
        guard case .integer(let n) = reply else { throw Self.unexpected(reply, "refund.lua") }
        return n == 1
    }

    /// `EVALSHA`, and on `NOSCRIPT` (a restarted or flushed Redis) `EVAL`, which runs the script and loads it.
    private func evaluate(
        _ script: RedisScript, keys: [String], arguments: [String], onLateReply: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(LimitStoreError) -> RedisValue {
        let tail = [String(keys.count)] + keys + arguments
        do {
            let reply = try await client.send(["EVALSHA", script.sha1] + tail, onLateReply: onLateReply)
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                logger.info("loading Redis script", metadata: ["script": "\(script.fileName)"])
                let source = String(decoding: script.bytes, as: UTF8.self)
                return try await client.send(["EVAL", source] + tail, onLateReply: onLateReply)
            }
            return reply
        } catch {
            throw LimitStoreError(code: error.code == .timeout ? .timeout : .unavailable, message: "redis: \(error.message)")
        }
    }

    static func outcome(from reply: RedisValue, count: Int) throws(LimitStoreError) -> LimitOutcome {
        guard case .array(let items?) = reply, items.count == 2 + 3 * count else {
            throw unexpected(reply, "acquire.lua")
        }
        var numbers: [Int64] = []
        numbers.reserveCapacity(items.count)
        for item in items {
            guard case .integer(let n) = item else { throw unexpected(reply, "acquire.lua") }
            numbers.append(n)
        }
        var results: [LimitResult] = []
        results.reserveCapacity(count)
        for i in 0..<count {
            let base = 2 + i * 3
            results.append(
                LimitResult(passed: numbers[base] == 1, remaining: Int(numbers[base + 1]), retryAfterMicros: numbers[base + 2]))
        }
        return LimitOutcome(admitted: numbers[0] == 1, results: results, decidedAtMicros: numbers[1])
    }

    static func unexpected(_ reply: RedisValue, _ script: String) -> LimitStoreError {
        if case .error(let message) = reply {
            return LimitStoreError(code: .protocolError, message: "redis: \(script) failed: \(message)")
        }
        return LimitStoreError(code: .protocolError, message: "redis: unexpected reply from \(script): \(reply)")
    }
}
