import Foundation
import ToolgateCore

/// What one hostile request costs: a `tools/call` body whose tool name, argument key and argument value are
/// each a 1 MiB string, plain ASCII against a base letter followed by alternating combining marks (U+0316
/// U+0301, the sequence that made canonical-equivalence comparison quadratic), parsed and evaluated against a
/// policy with `eq`, `in` and `contains` rules; plus the same at 64 KiB, so the size ratio shows.
enum AdversarialBenchmark {
    static func run() throws {
        let policy = try Policy.parse(
            #"""
            {"version":"1","default":"deny","tools":{"t":{"arguments":[
              {"path":"k","op":"in","value":["x","y"]},{"path":"s","op":"contains","value":"\u0301z"},
              {"path":"e","op":"eq","value":"plain"}]}}}
            """#, file: "adversarial.json")
        let evaluator = Evaluator(policy: policy)
        let identity = Identity(grant: "g", agent: "a")

        func body(_ text: String, asName: Bool) -> [UInt8] {
            let name = asName ? text : "t"
            return Array(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\#(name)","arguments":{"\#(text)":1,"k":"\#(text)","s":"\#(text)","e":"\#(text)"}}}"#.utf8)
        }
        func cost(_ bytes: [UInt8]) -> Double {
            var rounds: [Double] = []
            for _ in 0..<5 {
                let start = ContinuousClock.now
                guard case .single(let message) = try! JSONRPCBody.parse(bytes), let call = try? message.toolCall() else {
                    fatalError("not a tools/call")
                }
                _ = evaluator.evaluate(call, identity: identity)
                let elapsed = ContinuousClock.now - start
                rounds.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15)
            }
            return rounds.sorted()[2]
        }
        func plain(_ bytes: Int) -> String { String(repeating: "a", count: bytes) }
        func marks(_ bytes: Int) -> String { "a" + String(repeating: "\u{316}\u{301}", count: (bytes - 1) / 4) }

        print("| request (4 strings of the size each) | body bytes | parse + evaluate, ms |")
        print("|---|---:|---:|")
        var results: [String: Double] = [:]
        for (label, size) in [("64 KiB", 64 << 10), ("1 MiB", 1 << 20)] {
            for (kind, text) in [("plain ASCII", plain(size)), ("combining marks", marks(size))] {
                for asName in [false, true] {
                    let bytes = body(text, asName: asName)
                    let ms = cost(bytes)
                    let name = "\(kind), \(label)\(asName ? ", also as the tool name" : "")"
                    results[name] = ms
                    print("| \(name) | \(bytes.count) | \(String(format: "%.2f", ms)) |")
                }
            }
        }
        let adversarial = results["combining marks, 1 MiB"]!, normal = results["plain ASCII, 1 MiB"]!
        let small = results["combining marks, 64 KiB"]!
        print()
        print(String(format: "combining marks / plain at 1 MiB: %.2f (same size: near 1 means no blow-up)", adversarial / normal))
        print(String(format: "combining marks 1 MiB / 64 KiB: %.1f (size ratio 16: linear)", adversarial / small))

        print()
        print("| regex rule | value | outcome | ms |")
        print("|---|---|---|---:|")
        let cases: [(String, String, String)] = [
            (#"^(\w+\s?)*$"#, "\"a\" × 30 + \"!\"", String(repeating: "a", count: 30) + "!"),
            (#"^(\w+\s?)*$"#, "\"a\" × 1 MiB + \"!\"", String(repeating: "a", count: 1 << 20) + "!"),
            (#"[a-z]*\d"#, "\"a\" × 1 MiB", String(repeating: "a", count: 1 << 20)),
            (#"^[^;&|`$\n]*$"#, "1 MiB of \"ab \"", String(repeating: "ab ", count: (1 << 20) / 3)),
        ]
        for (pattern, label, subject) in cases {
            let regex = try CompiledRegex(pattern)
            var rounds: [Double] = []
            var outcome = CompiledRegex.Outcome.notMatched
            for _ in 0..<5 {
                let start = ContinuousClock.now
                outcome = regex.match(subject)
                let elapsed = ContinuousClock.now - start
                rounds.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15)
            }
            print("| `\(pattern)` | \(label) | \(outcome) | \(String(format: "%.3f", rounds.sorted()[2])) |")
        }
    }
}
