/// A pattern of the policy's `resources` section: a glob (`*` matches anything) that may hold RFC 6570 template
/// expressions (`{name}`, `{+path}`, `{/a,b}`, `{?q}`, `{#f}`, …). It is held against resource URIs and against
/// URI templates' own strings (DESIGN.md section 4), in one of two ways, because the two lists fail in opposite
/// directions:
/// - **covering** (`hide` and `deny`, which must fail closed): the pattern's text itself, or any URI the template
///   could possibly produce. Every `{…}`, valid or not, matches any run of characters, `/` and `%` included; an RFC
///   6570 `{var}` never expands to a raw `/`, but a server may decode `%2F` or match its templates loosely, so hiding
///   `secret://{name}/token` hides `secret://a/b/token` too.
/// - **admitting** (`allow`, which must not let in more than it says): the pattern's text itself, or a URI the
///   template can produce by RFC 6570 expansion (level 4: operators, lists, explode, prefixes). So allowing
///   `file:///{path}` admits `file:///readme.md` and `file:///a%2Fb`, never `file:///etc/passwd`, which `{path}`
///   cannot produce (`{+path}` can). A template with an expression RFC 6570 does not define admits only its text.
///   A prefix modifier above `:256` counts as `:256` (a URI it could produce with a longer prefix is not admitted).
///
/// Both run in time linear in the URI (times the pattern's size), never backtracking: covering is a glob
/// (`ToolPattern`), admitting a `ScalarAutomaton`.
public struct URITemplatePattern: Sendable {
    public let text: String
    /// The text as a plain glob (today's meaning: a template string matches itself).
    private let literal: ToolPattern
    /// The text with each `{…}` made a `*`; nil when it holds no expression.
    private let covering: ToolPattern?
    /// What the template can produce; nil when it holds no expression or an invalid one.
    private let producing: ScalarAutomaton?

    /// The largest prefix modifier honoured as written when admitting.
    static let maximumPrefix = 256

    public init(_ text: String) {
        self.text = text
        literal = ToolPattern(text)
        let parts = Self.parts(of: text)
        guard parts.contains(where: { if case .expression = $0 { true } else { false } }) else {
            covering = nil
            producing = nil
            return
        }
        var glob = ""
        for part in parts {
            switch part {
            case .literal(let s): glob.unicodeScalars.append(contentsOf: s)
            case .glob, .expression: glob += "*"
            }
        }
        covering = ToolPattern(glob)
        producing = Self.language(of: parts).map(ScalarAutomaton.init)
    }

    /// What the parts can produce, or nil when an expression is not one RFC 6570 defines.
    private static func language(of parts: [Part]) -> ScalarAutomaton.Expression? {
        var pieces: [ScalarAutomaton.Expression] = []
        for part in parts {
            switch part {
            case .literal(let s): pieces.append(.literal(s))
            case .glob: pieces.append(.star(.label(.any)))
            case .expression(let body):
                guard let expression = TemplateExpression(body) else { return nil }
                pieces.append(expression.language)
            }
        }
        return .sequence(pieces)
    }

    /// A plain glob: `{…}` is literal text (prompt names).
    public init(glob text: String) {
        self.text = text
        literal = ToolPattern(text)
        covering = nil
        producing = nil
    }

    /// For `hide` and `deny`: the text matches as a glob, or with every expression matching anything.
    public func covers(_ name: String) -> Bool {
        if literal.matches(name) { return true }
        return covering?.matches(name) ?? false
    }

    /// For `allow`: the text matches as a glob, or the template can produce `name`.
    public func admits(_ name: String) -> Bool {
        if literal.matches(name) { return true }
        return producing?.matches(name) ?? false
    }

    private enum Part {
        case literal([Unicode.Scalar])
        case glob
        /// What stands between `{` and the next `}`.
        case expression([Unicode.Scalar])
    }

    /// Splits the text into literals, `*` globs and `{…}` expressions. A `{` with no `}` after it is literal.
    private static func parts(of text: String) -> [Part] {
        var parts: [Part] = []
        var literal: [Unicode.Scalar] = []
        let scalars = Array(text.unicodeScalars)
        var i = 0
        func flush() {
            if !literal.isEmpty { parts.append(.literal(literal)) }
            literal = []
        }
        while i < scalars.count {
            let s = scalars[i]
            if s == "*" {
                flush()
                parts.append(.glob)
                i += 1
            } else if s == "{", let close = scalars[(i + 1)...].firstIndex(of: "}") {
                flush()
                parts.append(.expression(Array(scalars[(i + 1)..<close])))
                i = close + 1
            } else {
                literal.append(s)
                i += 1
            }
        }
        flush()
        return parts
    }
}

/// One RFC 6570 expression (section 2.2 and appendix A), as the regular language of what it expands to.
struct TemplateExpression {
    struct VariableSpecification {
        let name: [Unicode.Scalar]
        let explode: Bool
        let prefix: Int?
    }

    let first: String
    let separator: Unicode.Scalar
    let named: Bool
    let ifEmpty: String
    let allowsReserved: Bool
    let variables: [VariableSpecification]

    init?(_ body: [Unicode.Scalar]) {
        var rest = body[...]
        switch rest.first {
        case "+"?: (first, separator, named, ifEmpty, allowsReserved) = ("", ",", false, "", true)
        case "#"?: (first, separator, named, ifEmpty, allowsReserved) = ("#", ",", false, "", true)
        case "."?: (first, separator, named, ifEmpty, allowsReserved) = (".", ".", false, "", false)
        case "/"?: (first, separator, named, ifEmpty, allowsReserved) = ("/", "/", false, "", false)
        case ";"?: (first, separator, named, ifEmpty, allowsReserved) = (";", ";", true, "", false)
        case "?"?: (first, separator, named, ifEmpty, allowsReserved) = ("?", "&", true, "=", false)
        case "&"?: (first, separator, named, ifEmpty, allowsReserved) = ("&", "&", true, "=", false)
        case "="?, ","?, "!"?, "@"?, "|"?, nil: return nil  // reserved for future extensions, or empty
        default: (first, separator, named, ifEmpty, allowsReserved) = ("", ",", false, "", false)
        }
        if !first.isEmpty || allowsReserved { rest = rest.dropFirst() }
        var variables: [VariableSpecification] = []
        for spec in rest.split(separator: ",", omittingEmptySubsequences: false) {
            guard let variable = Self.variable(spec) else { return nil }
            variables.append(variable)
        }
        self.variables = variables
    }

    /// varspec = varname [ ":" max-length / "*" ]; varname = varchar *( ["."] varchar ), varchar = ALPHA / DIGIT /
    /// "_" / pct-encoded.
    private static func variable(_ spec: ArraySlice<Unicode.Scalar>) -> VariableSpecification? {
        var name = spec
        var explode = false
        var prefix: Int?
        if name.last == "*" {
            explode = true
            name = name.dropLast()
        } else if let colon = name.firstIndex(of: ":") {
            let digits = name[(colon + 1)...]
            guard (1...4).contains(digits.count), digits.first != "0",
                digits.allSatisfy({ ("0"..."9").contains($0) })
            else { return nil }
            prefix = Int(String(String.UnicodeScalarView(digits)))
            name = name[..<colon]
        }
        guard !name.isEmpty, name.first != ".", name.last != "." else { return nil }
        var i = name.startIndex
        var previousDot = false
        while i < name.endIndex {
            let s = name[i]
            if s == "%" {
                guard name.endIndex - i >= 3, ScalarSet.hexDigit.contains(name[i + 1]), ScalarSet.hexDigit.contains(name[i + 2])
                else { return nil }
                i += 3
                previousDot = false
                continue
            }
            if s == "." {
                guard !previousDot else { return nil }
                previousDot = true
            } else {
                guard s == "_" || (ScalarSet.unreserved.contains(s) && s != "-" && s != "~") else { return nil }
                previousDot = false
            }
            i += 1
        }
        return VariableSpecification(name: Array(name), explode: explode, prefix: prefix)
    }

    typealias Expression = ScalarAutomaton.Expression

    /// One character of an expanded value: allowed as is, or percent-encoded as UTF-8 (one to four triplets: it
    /// counts as one character for a prefix). `{+var}` and `{#var}` also pass a value's own triplets through, any
    /// byte (each counted as one character, a little more than RFC 6570's three).
    private var valueCharacter: Expression {
        func triplet(_ first: ScalarSet, _ second: ScalarSet = .hexDigit) -> Expression {
            .sequence([.label(.scalar("%")), .label(.set(first)), .label(.set(second))])
        }
        let continuation = triplet(.hexContinuation)
        var choices: [Expression] = [
            .label(.set(allowsReserved ? .unreservedOrReserved : .unreserved)),
            triplet(.hexASCII),
            .sequence([triplet(.hexTwoByteLead), continuation]),
            .sequence([triplet(.hexThreeByteLead), continuation, continuation]),
            .sequence([triplet(.hexFourByteLead, .hexZeroToFour), continuation, continuation, continuation]),
        ]
        if allowsReserved { choices.append(triplet(.hexDigit)) }
        return .choice(choices)
    }

    /// An expanded string value, any length.
    private var value: Expression { .star(valueCharacter) }

    /// A string value of at most `n` characters (nested, so the automaton stays linear in `n`).
    private func value(atMost n: Int) -> Expression {
        var expression: Expression = .empty
        for _ in 0..<min(n, URITemplatePattern.maximumPrefix) { expression = .optional(.sequence([valueCharacter, expression])) }
        return expression
    }

    /// What one variable expands to when it is defined (RFC 6570 appendix A), over strings, lists and maps.
    private func expansion(_ v: VariableSpecification) -> Expression {
        let ifEmpty: Expression = .literal(self.ifEmpty.unicodeScalars)
        let equals: Expression = .label(.scalar("="))
        let comma: Expression = .label(.scalar(","))
        let sep: Expression = .label(.scalar(separator))
        if let prefix = v.prefix {
            // Prefixes apply to strings only.
            guard named else { return value(atMost: prefix) }
            return .sequence([
                .literal(v.name),
                .choice([ifEmpty, .sequence([equals, valueCharacter, value(atMost: prefix - 1)])]),
            ])
        }
        if !v.explode {
            // A string, or list items (map keys and values) joined by ",".
            let joined: Expression = .sequence([value, .star(.sequence([comma, value]))])
            guard named else { return joined }
            return .sequence([.literal(v.name), .choice([ifEmpty, .sequence([equals, joined])])])
        }
        // Exploded: list items or map pairs joined by the separator; a named operator names each item (map keys
        // name their own).
        let item: Expression =
            named
            ? .sequence([value, .choice([ifEmpty, .sequence([equals, value])])])
            : .sequence([value, .optional(.sequence([equals, value]))])
        return .sequence([item, .star(.sequence([sep, item]))])
    }

    /// Nothing when every variable is undefined; else `first`, then the defined variables in order, joined by the
    /// separator.
    var language: Expression {
        let sep: Expression = .label(.scalar(separator))
        let expansions = variables.map(expansion)
        var choices: [Expression] = []
        for (i, firstDefined) in expansions.enumerated() {
            var sequence: [Expression] = [firstDefined]
            for later in expansions[(i + 1)...] { sequence.append(.optional(.sequence([sep, later]))) }
            choices.append(.sequence(sequence))
        }
        return .optional(.sequence([.literal(first.unicodeScalars), .choice(choices)]))
    }
}
