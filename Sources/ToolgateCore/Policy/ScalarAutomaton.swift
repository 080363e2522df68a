/// A nondeterministic automaton over Unicode scalars, run by keeping the set of states it may be in (Thompson's
/// construction): matching costs at most (input scalars × states), with no backtracking, whatever the input. It is
/// how a policy's URI template is held against a URI an agent chose (`URITemplatePattern`).
struct ScalarAutomaton: Sendable {
    /// What one transition consumes.
    enum Label: Sendable, Equatable {
        case scalar(Unicode.Scalar)
        case set(ScalarSet)
        case any
    }

    /// A regular expression, as the automaton is built from it.
    indirect enum Expression: Sendable {
        case empty
        case label(Label)
        case sequence([Expression])
        case choice([Expression])
        case star(Expression)
        case optional(Expression)

        static func literal(_ text: some Sequence<Unicode.Scalar>) -> Expression { .sequence(text.map { .label(.scalar($0)) }) }
    }

    private struct Transition: Sendable {
        /// nil: an epsilon transition.
        let label: Label?
        let target: Int
    }

    private var transitions: [[Transition]] = [[]]
    private let start = 0
    private var accept = 0

    init(_ expression: Expression) {
        accept = add(expression, from: start)
    }

    var stateCount: Int { transitions.count }

    private mutating func newState() -> Int {
        transitions.append([])
        return transitions.count - 1
    }

    private mutating func link(_ from: Int, _ to: Int, _ label: Label? = nil) {
        transitions[from].append(Transition(label: label, target: to))
    }

    /// Adds `expression` starting at state `from`; returns the state where it ends. Every construct gets fresh
    /// states, so loops never share an entry with an alternative.
    private mutating func add(_ expression: Expression, from: Int) -> Int {
        switch expression {
        case .empty:
            return from
        case .label(let label):
            let end = newState()
            link(from, end, label)
            return end
        case .sequence(let parts):
            var at = from
            for part in parts { at = add(part, from: at) }
            return at
        case .choice(let alternatives):
            let end = newState()
            for alternative in alternatives {
                let entry = newState()
                link(from, entry)
                link(add(alternative, from: entry), end)
            }
            return end
        case .star(let body):
            let loop = newState()
            link(from, loop)
            let entry = newState()
            link(loop, entry)
            link(add(body, from: entry), loop)
            let end = newState()
            link(loop, end)
            return end
        case .optional(let body):
            let end = newState()
            link(from, end)
            let entry = newState()
            link(from, entry)
            link(add(body, from: entry), end)
            return end
        }
    }

    /// Whether the automaton accepts all of `text`.
    func matches(_ text: String) -> Bool {
        var current: [Int] = []
        var mark = [Int](repeating: -1, count: transitions.count)
        var stack: [Int] = []
        func close(into set: inout [Int], _ state: Int, step: Int) {
            guard mark[state] != step else { return }
            mark[state] = step
            stack.append(state)
            while let s = stack.popLast() {
                set.append(s)
                WorkMeter.charge(1)
                for t in transitions[s] where t.label == nil && mark[t.target] != step {
                    mark[t.target] = step
                    stack.append(t.target)
                }
            }
        }
        close(into: &current, start, step: 0)
        var step = 0
        var next: [Int] = []
        for scalar in text.unicodeScalars {
            step += 1
            next.removeAll(keepingCapacity: true)
            for s in current {
                for t in transitions[s] {
                    guard let label = t.label else { continue }
                    WorkMeter.charge(1)
                    if Self.accepts(label, scalar) { close(into: &next, t.target, step: step) }
                }
            }
            guard !next.isEmpty else { return false }
            swap(&current, &next)
        }
        return current.contains(accept)
    }

    private static func accepts(_ label: Label, _ scalar: Unicode.Scalar) -> Bool {
        switch label {
        case .scalar(let s): s == scalar
        case .set(let set): set.contains(scalar)
        case .any: true
        }
    }
}

/// The character classes of RFC 6570 (and RFC 3986) that URI template expansion produces.
enum ScalarSet: Sendable, Equatable {
    /// ALPHA / DIGIT / "-" / "." / "_" / "~": what simple expansion leaves unencoded.
    case unreserved
    /// unreserved plus gen-delims and sub-delims: what `{+var}` and `{#var}` leave unencoded.
    case unreservedOrReserved
    case hexDigit
    /// The hex digits a percent-encoded UTF-8 byte of a given kind starts with: `0`–`7` (ASCII), `8`–`B`
    /// (continuation), `C`–`D` (two-byte lead), `E` (three-byte lead), `F` (four-byte lead); `0`–`4` follows `F`.
    case hexASCII, hexContinuation, hexTwoByteLead, hexThreeByteLead, hexFourByteLead, hexZeroToFour

    func contains(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        guard v < 0x80 else { return false }
        let isAlnum = (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) || (0x30...0x39).contains(v)
        switch self {
        case .unreserved:
            return isAlnum || "-._~".unicodeScalars.contains(scalar)
        case .unreservedOrReserved:
            return isAlnum || "-._~:/?#[]@!$&'()*+,;=".unicodeScalars.contains(scalar)
        case .hexDigit:
            return (0x30...0x39).contains(v) || (0x41...0x46).contains(v) || (0x61...0x66).contains(v)
        case .hexASCII: return (0x30...0x37).contains(v)
        case .hexContinuation: return "89ABab".unicodeScalars.contains(scalar)
        case .hexTwoByteLead: return "CDcd".unicodeScalars.contains(scalar)
        case .hexThreeByteLead: return scalar == "E" || scalar == "e"
        case .hexFourByteLead: return scalar == "F" || scalar == "f"
        case .hexZeroToFour: return (0x30...0x34).contains(v)
        }
    }
}
