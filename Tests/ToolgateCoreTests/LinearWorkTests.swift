import Testing
import ToolgateTestSupport
@testable import ToolgateCore

/// Parsing and evaluating a `tools/call` costs work linear in the request's size, checked by counting the work
/// (`WorkMeter`: bytes, scalars and elements every loop over outside data touches), never by timing. A request
/// grown k times must cost about k times as much; anything quadratic costs about k² times.
@Suite struct LinearWorkTests {
    typealias Gen = ArgumentRulePropertyTests.Gen

    /// The work of parsing `body` as a JSON-RPC message and evaluating it against `policy`.
    static func work(_ body: [UInt8], _ evaluator: Evaluator) -> Int {
        WorkMeter.measure {
            guard case .single(let message) = try? JSONRPCBody.parse(body), let call = try? message.toolCall() else { return }
            _ = evaluator.evaluate(call, identity: Identity(grant: "g", session: "s", agent: "a"))
        }
    }

    static func body(name: String, arguments: JSONValue) -> [UInt8] {
        JSONWriter.bytes([
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": ["name": .string(name), "arguments": arguments],
        ])
    }

    /// The same value about k times larger: strings repeated, number literals padded with exact zeros, arrays given
    /// k - 1 more copies of their elements, every object one more member whose key is an existing key repeated;
    /// JSON held in a string is grown inside and written back, so it still parses. Added copies are not grown
    /// again, so nesting does not compound the growth.
    static func grown(_ value: JSONValue, _ k: Int) -> JSONValue {
        guard k > 1 else { return value }
        switch value {
        case .null, .bool: return value
        case .number(let n):
            let parts = n.literal.split(omittingEmptySubsequences: false) { $0 == "e" || $0 == "E" }
            let mantissa = String(parts[0]), exponent = parts.count > 1 ? "e" + parts[1] : ""
            let padding = String(repeating: "0", count: n.literal.utf8.count * (k - 1))
            return .number(JSONNumber(literal: mantissa + (mantissa.contains(".") ? "" : ".") + padding + exponent))
        case .string(let s):
            if let first = s.utf8.first, first == UInt8(ascii: "{") || first == UInt8(ascii: "["),
                let inner = try? JSONParser.parse(s)
            {
                return .string(JSONWriter.string(grown(inner, k)))
            }
            return .string(String(repeating: s, count: k))
        case .array(let elements):
            return .array(elements.map { grown($0, k) } + Array(repeating: elements, count: k - 1).flatMap { $0 })
        case .object(let object):
            var members = object.members.map { JSONObject.Member(key: $0.key, value: grown($0.value, k)) }
            if let first = object.members.first {
                let key = String(repeating: first.key, count: k)
                if !members.contains(where: { $0.key.isExactly(key) }) {
                    members.append(JSONObject.Member(key: key, value: first.value))
                }
            }
            return .object(JSONObject(members))
        }
    }

    /// Random arguments and rules (the property test's generators: combining marks, astral characters, huge and
    /// fractional numbers, mixed types, JSON in strings), each request also grown about 64 times. Work must grow no
    /// faster than twice the size does; quadratic work would grow with the square of it.
    @Test(arguments: Array(1...16) as [UInt64])
    func randomRequestsCostWorkLinearInTheirSize(seed: UInt64) {
        var gen = Gen(rng: SeededGenerator(seed: seed))
        let k = 64
        for step in 0..<25 {
            let rules = (0..<Int.random(in: 1...3, using: &gen.rng)).map { _ in ArgumentRule(path: gen.path(), op: gen.rule().0) }
            let costPath = gen.path()
            let policy = Policy(
                defaultAction: .deny, hide: ["h*\u{301}*z"],
                entries: [
                    ToolEntry(
                        key: "t", arguments: rules,
                        limits: [LimitRule(counter: "c", window: Window(seconds: 60, text: "minute"), max: 10, cost: .argument(path: costPath))]),
                    ToolEntry(key: "t*x*y", arguments: rules.reversed()),
                ],
                wildcard: ToolEntry(key: "*", arguments: [ArgumentRule(path: gen.path(), op: gen.rule().0)]))
            let evaluator = Evaluator(policy: policy)
            let arguments = gen.object(depth: 0)
            let middle = gen.scalarString()
            let names: [(Int) -> String] = [
                { _ in "t" },
                { k in "t" + String(repeating: middle, count: k) + "xy" },
                { k in String(repeating: "h" + middle, count: k) + "z" },
            ]
            let name = names[step % names.count]
            let smallBody = Self.body(name: name(1), arguments: arguments)
            let largeBody = Self.body(name: name(k), arguments: Self.grown(arguments, k))
            let small = Self.work(smallBody, evaluator), large = Self.work(largeBody, evaluator)
            let growth = Double(largeBody.count) / Double(smallBody.count)
            #expect(small >= smallBody.count, "seed \(seed) step \(step): only \(small) units counted for \(smallBody.count) bytes")
            #expect(
                Double(large) <= 2 * growth * Double(small),
                "seed \(seed) step \(step): work \(small) → \(large) when the request grew \(growth)×; arguments \(JSONWriter.string(arguments))")
        }
    }

    /// The shapes of issue 8's first finding, and the other places a request's size meets a loop: each grown 16
    /// times must cost within 16 × 1.25 times the work.
    @Test(arguments: Shape.allCases)
    func hostileShapesCostWorkLinearInTheirSize(shape: Shape) throws {
        let policy = try Policy.parse(
            #"""
            {"version":"1","default":"deny","hide":["x*\u0301*q"],"tools":{
              "t":{"arguments":[
                {"path":"k","op":"neq","value":"a\u0316\u0301"},
                {"path":"e","op":"not_in","value":["x","a\u0316\u0301"]},
                {"path":"c","op":"regex","value":"^[^;&|`$\\n]*$"},
                {"path":"m","op":"max_length","value":100000000},
                {"path":"s","op":"contains","value":"\u0316\u0301\u0316!"},
                {"path":"n","op":"lt","value":1e30},
                {"path":"a","op":"contains","value":"zz"},
                {"path":"j.inner.deep","op":"exists","value":true}
              ],"limits":[{"counter":"c","window":"minute","max":10,"cost":"args.cost"}]},
              "g*\u0301*q":{}
            }}
            """#, file: "hostile.json")
        let evaluator = Evaluator(policy: policy)
        let small = Self.work(shape.body(size: 4096), evaluator)
        let large = Self.work(shape.body(size: 16 * 4096), evaluator)
        #expect(small > 4096, "\(shape): only \(small) units counted for a 4 KiB request")
        #expect(Double(large) <= 16 * 1.25 * Double(small), "\(shape): work \(small) → \(large) when grown 16×")
    }

    enum Shape: String, CaseIterable, CustomTestStringConvertible {
        case markedName, markedGlobName, markedKey, markedValues, manyKeys, longNumber, longArray, jsonInString, deepObject

        var testDescription: String { rawValue }

        /// A run of alternating combining marks after a base letter: what made Swift's String equality quadratic.
        static func marks(_ bytes: Int) -> String { "a" + String(repeating: "\u{316}\u{301}", count: bytes / 4) }

        func body(size: Int) -> [UInt8] {
            let m = Self.marks(size)
            let base: JSONValue = ["k": "ok", "e": "x", "c": "ls", "m": "m", "s": "s!", "n": 1, "a": ["zz"], "cost": 1,
                                   "j": #"{"inner":{"deep":1}}"#]
            var arguments = base.objectValue!
            var name = "t"
            switch self {
            case .markedName: name = m
            case .markedGlobName: name = "g" + m + "q"
            case .markedKey: arguments[m] = 1
            case .markedValues:
                for key in ["k", "e", "c", "m", "s"] { arguments[key] = .string(m) }
            case .manyKeys:
                for i in 0..<(size / 8) { arguments["k\(i)" + (i % 2 == 0 ? "\u{301}" : "")] = .number(JSONNumber(i)) }
            case .longNumber:
                arguments["n"] = .number(JSONNumber(literal: "1" + String(repeating: "0", count: size) + ".5e-3"))
                arguments["cost"] = .number(JSONNumber(literal: "1." + String(repeating: "0", count: size)))
            case .longArray:
                arguments["a"] = .array(Array(repeating: "z\u{301}", count: size / 8) + ["zz"])
            case .jsonInString:
                let padding = String(repeating: " ", count: size / 2)
                arguments["j"] = .string(padding + #"{"pad":""# + m + #"","inner":{"deep":1}}"#)
            case .deepObject:
                // As deep as the parser allows, made wide by a marked key at every level.
                var value: JSONValue = 1
                for _ in 0..<200 { value = .object(JSONObject([.init(key: Self.marks(size / 200), value: value)])) }
                arguments["d"] = value
            }
            return LinearWorkTests.body(name: name, arguments: .object(arguments))
        }
    }
}
