#if canImport(Glibc)
import Glibc
#endif
import Crypto
import ToolgateCore

/// One `tools/call` decision as the audit log records it (DESIGN.md section 8): never the arguments, only the
/// SHA-256 of their canonical form; the session only hashed. The line is written once the upstream's answer head
/// arrives (or toolgate answers itself), so it can carry the upstream status and the call's latency.
struct CallAudit: Sendable {
    let timeMicros: Int64
    let started: ContinuousClock.Instant
    let grant: String
    let session: String?
    let agent: String
    /// The named server the call was for (DESIGN.md section 10); nil for the one unnamed upstream.
    var server: String? = nil
    let tool: String
    /// The entry's key; nil for a tool no entry covers (unknown, hidden, or allowed by `default: allow`).
    let rule: String?
    let decision: String
    /// Why, in words (for a refusal, what the agent was told); never just the decision again.
    let reason: String?
    /// What decided a refusal: `arguments[1]: amount lte 500`, `limit spend`, `hidden`.
    var detail: String? = nil
    let counter: String?
    let remaining: Int?
    let arguments: JSONValue
    let policySHA256: String
    /// The approval this call used, if any.
    var approvalID: String? = nil

    /// The JSON line, newline included. `upstreamStatus`: the upstream's HTTP status, nil when toolgate answered or
    /// the upstream failed (then `upstreamError` names how).
    func line(upstreamStatus: Int?, upstreamError: String? = nil, now: ContinuousClock.Instant = .now) -> [UInt8] {
        let elapsed = now - started
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        var object: JSONObject = [
            "time": .string(Self.rfc3339(micros: timeMicros)),
            "grant": .string(grant),
            "session": session.map { .string(SHA256.hash(data: Array($0.utf8)).hexString) } ?? .null,
            "agent": .string(agent),
            "server": server.map(JSONValue.string) ?? .null,
            "tool": .string(tool),
            "rule": rule.map(JSONValue.string) ?? .null,
            "decision": .string(decision),
            "reason": reason.map(JSONValue.string) ?? .null,
            "detail": detail.map(JSONValue.string) ?? .null,
            "counter": counter.map(JSONValue.string) ?? .null,
            "remaining": remaining.map { .number(JSONNumber(Int64($0))) } ?? .null,
            "argumentsSha256": .string(SHA256.hash(data: CanonicalJSON.bytes(arguments)).hexString),
            "upstreamStatus": upstreamStatus.map { .number(JSONNumber(Int64($0))) } ?? .null,
            "latencyMs": .number(Self.milliseconds(micros: micros)),
            "policySha256": .string(policySHA256),
        ]
        if let upstreamError { object["upstreamError"] = .string(upstreamError) }
        if let approvalID { object["approvalId"] = .string(approvalID) }
        return JSONWriter.bytes(.object(object)) + [0x0A]
    }

    /// Milliseconds with three decimals, exact (no binary floating point on the way).
    static func milliseconds(micros: Int64) -> JSONNumber {
        let (whole, fraction) = max(0, micros).quotientAndRemainder(dividingBy: 1_000)
        let digits = String(fraction)
        return JSONNumber(literal: String(whole) + "." + String(repeating: "0", count: 3 - digits.count) + digits)
    }

    /// `2026-12-01T20:31:05.123456Z`.
    static func rfc3339(micros: Int64) -> String {
        var seconds = time_t(micros.quotientAndRemainder(dividingBy: 1_000_000).quotient)
        var fraction = micros % 1_000_000
        if fraction < 0 {
            fraction += 1_000_000
            seconds -= 1
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let fractionDigits = String(fraction)
        return pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2) + "T"
            + pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2) + "."
            + String(repeating: "0", count: 6 - fractionDigits.count) + fractionDigits + "Z"
    }
}
