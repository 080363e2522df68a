import Testing
import ToolgateTestSupport
@testable import ToolgateCore

/// Strings compare by their Unicode scalars and numbers as exact decimals (DESIGN.md section 4, "Exact
/// comparisons"), everywhere a value from outside meets the policy.
@Suite struct ExactComparisonTests {
    static let kelvin = "\u{212A}"

    static func evaluator(_ policy: String) throws -> Evaluator {
        Evaluator(policy: try Policy.parse(policy, file: "p.json"))
    }

    static func arguments(_ json: String) throws -> JSONValue { try JSONParser.parse(Array(json.utf8)) }

    @Test func kelvinSignIsNotK() throws {
        #expect(!"K".isExactly(Self.kelvin))
        #expect(JSONValue.string("K") != .string(Self.kelvin))
        #expect(ExactKey("K") != ExactKey(Self.kelvin))
        // Two keys to the upstream, so two keys here: no false "duplicate key".
        let both = try Self.arguments(#"{"K": 1, "\u212A": 2}"#)
        #expect(both["K"] == 1)
        #expect(both[Self.kelvin] == 2)
        #expect(throws: JSONParseError.self) { try Self.arguments(#"{"K": 1, "\u004B": 2}"#) }
    }

    @Test func keysValuesAndNamesMatchOnlyScalarForScalar() throws {
        let e = try Self.evaluator(#"""
            {"version":"1","default":"deny","tools":{"search":{"arguments":[
              {"path":"apiKey","op":"exists"},{"path":"tier","op":"eq","value":"Key-public"}]}}}
            """#)
        let identity = Identity(grant: "g", agent: "a")
        func verdict(_ name: String, _ args: String) throws -> Decision.Verdict {
            e.evaluate(ToolCall(name: name, arguments: try Self.arguments(args)), identity: identity).verdict
        }
        #expect(try verdict("search", #"{"apiKey": "k", "tier": "Key-public"}"#) == .allowed)
        #expect(try verdict("search", #"{"api\u212Aey": "k", "tier": "Key-public"}"#) != .allowed)
        #expect(try verdict("search", #"{"apiKey": "k", "tier": "\u212Aey-public"}"#) != .allowed)
        // A decomposed é is not the precomposed one the policy names.
        let accents = try Self.evaluator(#"{"version":"1","default":"deny","tools":{"caf\u00e9":{}}}"#)
        #expect(accents.evaluate(ToolCall(name: "cafe\u{301}"), identity: identity).verdict == .unknownTool)
        #expect(accents.evaluate(ToolCall(name: "caf\u{e9}"), identity: identity).verdict == .allowed)
        #expect("a\u{301}b".containsExactly("\u{301}b"))
        #expect(!"\u{e1}b".containsExactly("a"))
    }

    @Test func numbersCompareAsExactDecimals() {
        func n(_ s: String) -> JSONNumber { JSONNumber(literal: s) }
        #expect(n("1234567890123456768.0") != n("1234567890123456789"))
        #expect(n("1234567890123456768.0") < n("1234567890123456789"))
        #expect(n("1.0") == n("1"))
        #expect(n("1e2") == n("100"))
        #expect(n("0.1E1") == n("1"))
        #expect(n("-0") == n("0"))
        #expect(n("-0.0e5") == n("0"))
        #expect(n("1e400") > n("9e399"))
        #expect(n("-1e400") < n("-9e399"))
        #expect(n("1.000000000000000000001") > n("1"))
        #expect(n("2.0000000000000001") != n("2"))
        #expect(n("1e99999999999999999999999") > n("1e9999"))
        #expect(n("1234567890123456768.0").int64Value == 1_234_567_890_123_456_768)
        #expect(n("9223372036854775807").int64Value == Int64.max)
        #expect(n("9223372036854775808").int64Value == nil)
        #expect(n("-9223372036854775808.00").int64Value == Int64.min)
        #expect(n("300e-2").int64Value == 3)
        #expect(n("1.5").int64Value == nil)
        #expect(n("1e2").int64Value == 100)
    }

    /// Random literals against a reference that writes each number out in full (no exponents) and compares
    /// digit strings.
    @Test(arguments: Array(1...20) as [UInt64])
    func decimalOrderAgreesWithAReference(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        func literal() -> (String, sign: Int, digits: String, exponent: Int) {
            let negative = Bool.random(using: &rng)
            let intDigits = (0..<Int.random(in: 1...6, using: &rng)).map { _ in String(Int.random(in: 0...9, using: &rng)) }.joined()
            let fracDigits = (0..<Int.random(in: 0...6, using: &rng)).map { _ in String(Int.random(in: 0...9, using: &rng)) }.joined()
            let exponent = Int.random(in: -8...8, using: &rng)
            let intPart = String(intDigits.drop { $0 == "0" }).isEmpty ? "0" : String(intDigits.drop { $0 == "0" })
            var text = (negative ? "-" : "") + intPart
            if !fracDigits.isEmpty { text += "." + fracDigits }
            if exponent != 0 || Bool.random(using: &rng) { text += ["e", "E"].randomElement(using: &rng)! + String(exponent) }
            return (text, negative ? -1 : 1, intPart + fracDigits, exponent - fracDigits.count)
        }
        /// value = sign × digits × 10^exponent, written with 40 digits before and after the point.
        func expanded(_ l: (String, sign: Int, digits: String, exponent: Int)) -> (Int, String) {
            var digits = Array(l.digits)
            var exponent = l.exponent
            while exponent > 0 { digits.append("0"); exponent -= 1 }
            let fractionLength = -exponent
            while digits.count <= fractionLength { digits.insert("0", at: 0) }
            let whole = String(digits.dropLast(fractionLength))
            let fraction = String(digits.suffix(fractionLength))
            let padded = String(repeating: "0", count: 40 - whole.count) + whole + "." + fraction + String(repeating: "0", count: 40 - fraction.count)
            let isZero = !padded.contains { $0 != "0" && $0 != "." }
            return (isZero ? 0 : l.sign, padded)
        }
        for _ in 0..<500 {
            let a = literal(), b = literal()
            let (sa, ea) = expanded(a), (sb, eb) = expanded(b)
            let expected: Int
            if sa != sb { expected = sa < sb ? -1 : 1 } else if sa == 0 || ea == eb { expected = 0 } else {
                expected = (ea < eb ? -1 : 1) * sa
            }
            let actual = JSONNumber(literal: a.0) == JSONNumber(literal: b.0) ? 0 : (JSONNumber(literal: a.0) < JSONNumber(literal: b.0) ? -1 : 1)
            #expect(actual == expected, "\(a.0) vs \(b.0)")
        }
    }

    /// A base letter and 200,000 alternating combining marks (about 800 KB): as a tool name, an argument key and
    /// a value it is answered after work linear in its size. Under canonical equivalence each of these takes
    /// minutes; the time limit only guards against that regression, it measures nothing.
    @Test(.timeLimit(.minutes(1)))
    func pathologicalCombiningSequencesCostLinearWork() throws {
        let marks = "a" + String(repeating: "\u{316}\u{301}", count: 200_000)
        let e = try Self.evaluator(#"""
            {"version":"1","default":"deny","tools":{"t":{"arguments":[
              {"path":"k","op":"in","value":["x","y"]},{"path":"s","op":"contains","value":"\u0301z"}]}}}
            """#)
        let identity = Identity(grant: "g", agent: "a")
        #expect(e.evaluate(ToolCall(name: marks), identity: identity).verdict == .unknownTool)
        let body = #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"\#(marks)":1,"k":"\#(marks)","s":"\#(marks)"}}}"#
        guard case .single(let message) = try JSONRPCBody.parse(Array(body.utf8)) else { Issue.record("not single"); return }
        #expect(message.known == .toolsCall)
        let call = try message.toolCall()
        #expect(e.evaluate(call, identity: identity).verdict != .allowed)
        #expect(!ExactKey(marks).text.isEmpty)
        var set: Set<ExactKey> = [ExactKey(marks)]
        #expect(set.insert(ExactKey(marks + "b")).inserted)
    }
}

/// A rule on a number holds only if it holds however the upstream reads the number: exactly, as a double
/// (JavaScript), or as Python's json.loads does (integer literals exact, others doubles, which pydantic then
/// turns into the integer they round to).
@Suite struct NumberReadingTests {
    static func holds(_ op: ArgumentRule.Operator, _ literal: String) -> Bool {
        ArgumentRule(path: ["n"], op: op).holds(for: ["n": .number(JSONNumber(literal: literal))])
    }
    static func n(_ s: String) -> JSONValue { .number(JSONNumber(literal: s)) }

    @Test func spellingsTheUpstreamReadsAsTheForbiddenValueAreRefused() {
        #expect(!Self.holds(.neq(1000), "1000.00000000000001"))
        #expect(!Self.holds(.notIn([1, 2]), "2.0000000000000001"))
        #expect(!Self.holds(.neq(Self.n("1234567890123456768")), "1234567890123456769.0"))
        #expect(!Self.holds(.neq(Self.n("1234567890123456768")), "12345678901234567e2"))
        // JavaScript reads this integer literal as …768 too.
        #expect(!Self.holds(.neq(Self.n("1234567890123456768")), "1234567890123456769"))
        #expect(Self.holds(.neq(1000), "999"))
        #expect(Self.holds(.neq(1000), "1000.5"))
    }

    @Test func onlyValuesEveryReadingAllowsPass() {
        let channel = Self.n("1234567890123456789")
        #expect(Self.holds(.in([channel]), "1234567890123456789"))
        // Exactly equal, but Python reads the float as …768: another channel.
        #expect(!Self.holds(.in([channel]), "1234567890123456789.0"))
        #expect(!Self.holds(.in([channel]), "12345678901234567890e-1"))
        #expect(!Self.holds(.eq(channel), "1234567890123456768.0"))
        #expect(Self.holds(.eq(1), "1.0"))
        #expect(Self.holds(.eq(Self.n("0.1")), "0.1"))
        #expect(Self.holds(.eq(Self.n("0.1")), "1e-1"))
        // 4095.99999999999999 is 4096 to a double reader.
        #expect(!Self.holds(.lt(JSONNumber(4096)), "4095.99999999999999"))
        #expect(Self.holds(.lt(JSONNumber(4096)), "4095.5"))
        #expect(!Self.holds(.lte(JSONNumber(10)), "1e400"))
        #expect(Self.holds(.gte(JSONNumber(10)), "1e400"))
    }

    @Test func largeIntegralDoublesCompareByTheirExactDigits() {
        #expect(NumberReading.integerDigits(of: 1234567890123456789.0) == "1234567890123456768")
        #expect(NumberReading.integerDigits(of: 9_007_199_254_740_992.0) == "9007199254740992")
        #expect(NumberReading.integerDigits(of: -1e20) == "-100000000000000000000")
        #expect(NumberReading.python.compare(JSONNumber(literal: "1234567890123456768"), JSONNumber(literal: "1234567890123456789.0")) == 0)
        #expect(NumberReading.python.compare(JSONNumber(literal: "1234567890123456769"), JSONNumber(literal: "1234567890123456789.0")) == 1)
    }
}
