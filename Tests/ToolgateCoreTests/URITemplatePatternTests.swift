import Testing
import ToolgateTestSupport
@testable import ToolgateCore

/// RFC 6570 templates in the policy's `resources` section: hiding covers every URI a template could produce
/// (conservatively), allowing admits exactly what it can produce, and both cost work linear in the URI.
@Suite struct URITemplatePatternTests {
    @Test(arguments: [
        ("secret://{name}/token", "secret://alice/token", true),
        ("secret://{name}/token", "secret://{name}/token", true),
        ("secret://{name}/token", "secret://{user}/token", true),
        // `{name}` never expands to a raw "/", but hiding fails closed: a server may decode or match loosely.
        ("secret://{name}/token", "secret://a/b/token", true),
        ("secret://{name}/token", "secret:///token", true),
        ("secret://{name}/token", "secret://alice%2Ftoken", false),
        ("secret://{name}/token", "secret://alice/token/x", false),
        ("secret://{name}/token", "other://alice/token", false),
        ("files{/a,b}", "files/x/y", true),
        ("files{+path}", "files/etc/passwd", true),
        ("q{?x,y}", "q?x=1&y=2", true),
        ("q{?x,y}", "r?x=1", false),
        ("doc{#f}", "doc#anything/at/all", true),
        ("f{.ext}", "f.tar.gz", true),
        ("m{;p}", "m;p=1", true),
        ("s{&z}", "s&z=", true),
        // An expression RFC 6570 leaves undefined still covers, and `*` stays a glob.
        ("x{=bad}y", "x-anything-y", true),
        ("x{a}*{b}z", "x1/2/3z", true),
        // An unclosed brace is literal.
        ("x{y", "x{y", true),
        ("x{y", "xay", false),
    ])
    func hidingCoversEveryURIATemplateCouldProduce(pattern: String, uri: String, covered: Bool) {
        #expect(URITemplatePattern(pattern).covers(uri) == covered, "\(pattern) covers \(uri)")
    }

    @Test(arguments: [
        ("file:///{path}", "file:///readme.md", true),
        ("file:///{path}", "file:///a%2Fb", true),
        ("file:///{path}", "file:///", true),
        ("file:///{path}", "file:///a,b", true),  // a list value
        ("file:///{path}", "file:///etc/passwd", false),  // {path} cannot produce a raw "/"
        ("file:///{path}", "file:///a%2", false),
        ("file:///{path}", "file:///caf%C3%A9", true),
        ("file:///{path}", "file:///%FF", false),  // {path} encodes UTF-8: never a lone 0xFF
        ("file:///{+path}", "file:///%FF", true),  // {+path} passes a value's own triplets through
        ("p/{x:1}", "p/%C3%A9", true),  // one character, two triplets
        ("p/{x:1}", "p/a%C3%A9", false),
        ("file:///{path}", "file:///caf\u{E9}", false),
        ("file:///{path}", "file:///a?b", false),
        ("file:///{+path}", "file:///etc/passwd", true),
        ("file:///{+path}", "file:///a?b#c", true),
        ("file:///{+path}", "file:///a b", false),
        ("file:///{path}", "file:///{path}", true),  // the template's own string
        ("x{/a,b}", "x", true),
        ("x{/a,b}", "x/1", true),
        ("x{/a,b}", "x/1/2", true),
        ("x{/a,b}", "x/1/2/3", false),
        ("x{/a*}", "x/1/2/3", true),
        ("s{?q,r}", "s", true),
        ("s{?q,r}", "s?q=1", true),
        ("s{?q,r}", "s?q=1&r=2", true),
        ("s{?q,r}", "s?r=2", true),
        ("s{?q,r}", "s?q=", true),
        ("s{?q,r}", "s?z=1", false),
        ("s{?q,r}", "s?r=2&q=1", false),
        ("s{?q,r}", "s?q=1&q=2", false),
        ("s{?q*}", "s?q=1&q=2", true),
        ("s{?m*}", "s?any=1&other=2", true),  // an exploded map names its own keys
        ("m{;x}", "m;x", true),
        ("m{;x}", "m;x=1", true),
        ("m{;x}", "m;y=1", false),
        ("d{#f}", "d#a/b", true),
        ("d{#f}", "d", true),
        ("f{.e}", "f.txt", true),
        ("f{.e}", "f.a,b", true),
        ("f{.e}", "f.a.b", true),  // "." is unreserved: a value may hold it
        ("f{.e}", "f.a/b", false),
        ("p/{x:3}", "p/abc", true),
        ("p/{x:3}", "p/a%20c", true),
        ("p/{x:3}", "p/", true),
        ("p/{x:3}", "p/abcd", false),
        ("p/{x:3}", "p/a,b", false),  // prefixes apply to strings only
        ("p{?x:2}", "p?x=ab", true),
        ("p{?x:2}", "p?x=abc", false),
        // An expression RFC 6570 does not define admits nothing beyond the text itself.
        ("x{=bad}y", "x1y", false),
        ("x{=bad}y", "x{=bad}y", true),
        ("x{a b}", "x1", false),
        // `*` stays a glob.
        ("docs/*/{name}.md", "docs/a/b/readme.md", true),
        ("docs/*/{name}.md", "docs/a/b/read/me.md", true),
        ("docs/{name}.md", "docs/read/me.md", false),
    ])
    func allowingAdmitsExactlyWhatATemplateCanProduce(pattern: String, uri: String, admitted: Bool) {
        #expect(URITemplatePattern(pattern).admits(uri) == admitted, "\(pattern) admits \(uri)")
    }

    /// RFC 6570 section 3.2's examples (level 4 included): each expansion is admitted by its template.
    @Test(arguments: [
        ("{var}", "value"), ("{hello}", "Hello%20World%21"), ("{half}", "50%25"), ("O{empty}X", "OX"),
        ("{x,y}", "1024,768"), ("{x,hello,y}", "1024,Hello%20World%21,768"), ("?{x,empty}", "?1024,"),
        ("{var:3}", "val"), ("{list}", "red,green,blue"), ("{list*}", "red,green,blue"),
        ("{keys}", "semi,%3B,dot,.,comma,%2C"), ("{keys*}", "semi=%3B,dot=.,comma=%2C"),
        ("{+var}", "value"), ("{+hello}", "Hello%20World!"), ("{+path}/here", "/foo/bar/here"),
        ("here?ref={+path}", "here?ref=/foo/bar"), ("{+path:6}/here", "/foo/b/here"), ("{+keys*}", "semi=;,dot=.,comma=,"),
        ("{#var}", "#value"), ("{#hello}", "#Hello%20World!"), ("{#path:6}/here", "#/foo/b/here"), ("{#keys}", "#semi,;,dot,.,comma,,"),
        ("X{.var}", "X.value"), ("X{.x,y}", "X.1024.768"), ("X{.list*}", "X.red.green.blue"), ("X{.keys*}", "X.semi=%3B.dot=..comma=%2C"),
        ("{/var}", "/value"), ("{/var,x}/here", "/value/1024/here"), ("{/list*,path:4}", "/red/green/blue/%2Ffoo"),
        ("{/keys*}", "/semi=%3B/dot=./comma=%2C"),
        ("{;x,y}", ";x=1024;y=768"), ("{;x,y,empty}", ";x=1024;y=768;empty"), ("{;list*}", ";list=red;list=green;list=blue"),
        ("{;keys*}", ";semi=%3B;dot=.;comma=%2C"), ("{;hello:5}", ";hello=Hello"),
        ("{?x,y,empty}", "?x=1024&y=768&empty="), ("{?list}", "?list=red,green,blue"), ("{?keys*}", "?semi=%3B&dot=.&comma=%2C"),
        ("?fixed=yes{&x}", "?fixed=yes&x=1024"), ("{&x,y,empty}", "&x=1024&y=768&empty="), ("{&list*}", "&list=red&list=green&list=blue"),
    ])
    func rfc6570ExamplesAreAdmitted(template: String, expansion: String) {
        #expect(URITemplatePattern(template).admits(expansion), "\(template) → \(expansion)")
        #expect(URITemplatePattern(template).covers(expansion), "\(template) → \(expansion)")
    }

    /// Hostile URIs against patterns built to make a backtracking matcher explode cost work linear in the URI: the
    /// work of a URI twice as long is about twice as much, never four times.
    @Test(arguments: [
        ("{a}{b}{c}{d}{e}{f}{g}{h}x", "a"),
        ("*a*a*a*a*a*a*a*b", "a"),
        ("{/a*}{/b*}{/c*}{/d*}{/e*}!", "/x"),
        ("{?a*}{&b*}{&c*}#", "&a=b"),
        ("x{+a}{+b}{+c}{+d}{#e}y", "%41"),
        ("{a:256}{b:256}{c:256}!", "a"),
    ])
    func hostileInputCostsLinearWork(pattern: String, unit: String) {
        let compiled = URITemplatePattern(pattern)
        func work(_ n: Int) -> Int {
            let uri = String(repeating: unit, count: n) + "?"
            return WorkMeter.measure {
                _ = compiled.covers(uri)
                _ = compiled.admits(uri)
            }
        }
        let small = work(500)
        let large = work(1_000)
        #expect(small > 0)
        #expect(Double(large) <= 2.3 * Double(small), "work \(small) for n, \(large) for 2n: not linear")
    }

    @Test func anAutomatonStaysSmallForLargePrefixes() {
        // `:9999` is honoured up to `:256`: the automaton is linear in the pattern, and a longer prefix is refused.
        let pattern = URITemplatePattern("p/{x:9999}")
        #expect(pattern.admits("p/" + String(repeating: "a", count: 256)))
        #expect(!pattern.admits("p/" + String(repeating: "a", count: 257)))
        #expect(pattern.covers("p/" + String(repeating: "a", count: 100_000)))
    }
}

/// A URI is judged under the spellings a server may read it as: hiding covers them all, allowing needs the URI and its
/// normal form both allowed.
@Suite struct URINormalFormTests {
    @Test(arguments: [
        ("SECRET://Alice/token", "secret://alice/token", "secret://alice/token"),
        ("secret://k%65ys", "secret://keys", "secret://keys"),
        ("file:///srv/docs/../secret/key", "file:///srv/secret/key", "file:///srv/secret/key"),
        ("file:///srv/docs/%2E%2E/secret", "file:///srv/secret", "file:///srv/secret"),
        ("file:///a%2fb", "file:///a%2Fb", "file:///a/b"),
        ("file:///a/./b/../../..", "file:///", "file:///"),
        ("x:a/../../b?q=%41#f", "x:b?q=A#f", "x:b?q=A#f"),
        ("no scheme/%7e", "no scheme/~", "no scheme/~"),
        ("1x://A", "1x://A", "1x://A"),
        ("a%", "a%", "a%"),
    ])
    func spellings(uri: String, normalized: String, decoded: String) {
        #expect(URINormalForm.normalized(uri) == normalized)
        #expect(URINormalForm.decoded(uri) == decoded)
    }

    @Test func hidingCoversEverySpellingAndAllowingNeedsTheNormalForm() throws {
        let policy = try Policy.parse(
            #"""
            {"version":"1","tools":{},
             "resources":{"default":"deny","allow":["file:///srv/docs/*","secret://*"],"hide":["secret://{name}/token","secret://keys"]}}
            """#, file: "p.json")
        let resources = try #require(policy.resources)
        for hidden in ["secret://keys", "SECRET://keys", "secret://k%65ys", "Secret://x/token", "secret://x%2Ftoken",
                       "secret://a/b/../../x/token"] {
            #expect(!resources.allows(hidden), "\(hidden)")
        }
        #expect(resources.allows("secret://other"))
        #expect(resources.allows("file:///srv/docs/a.md"))
        #expect(!resources.allows("file:///srv/docs/../secret/key"))
        #expect(!resources.allows("file:///srv/docs/%2E%2E/%2E%2E/etc/passwd"))
    }

    @Test func spellingsCostLinearWork() {
        func work(_ n: Int) -> Int {
            let uri = "file:///" + String(repeating: "a/../%2E%2E/%41/", count: n)
            return WorkMeter.measure { _ = URINormalForm.spellings(of: uri) }
        }
        #expect(Double(work(4_000)) <= 2.3 * Double(work(2_000)))
    }
}

/// Random templates expanded with random values by an independent RFC 6570 expander (appendix A, written from the RFC,
/// not from the matcher): every expansion is admitted by `allow` and covered by `hide`, and whatever `allow` admits,
/// `hide` covers.
@Suite struct URITemplatePropertyTests {
    enum Value {
        case undefined
        case string(String)
        case list([String])
        case map([(String, String)])
    }

    struct Operator {
        let symbol: String, first: String, separator: String, named: Bool, ifEmpty: String, reserved: Bool
    }

    static let operators: [Operator] = [
        .init(symbol: "", first: "", separator: ",", named: false, ifEmpty: "", reserved: false),
        .init(symbol: "+", first: "", separator: ",", named: false, ifEmpty: "", reserved: true),
        .init(symbol: "#", first: "#", separator: ",", named: false, ifEmpty: "", reserved: true),
        .init(symbol: ".", first: ".", separator: ".", named: false, ifEmpty: "", reserved: false),
        .init(symbol: "/", first: "/", separator: "/", named: false, ifEmpty: "", reserved: false),
        .init(symbol: ";", first: ";", separator: ";", named: true, ifEmpty: "", reserved: false),
        .init(symbol: "?", first: "?", separator: "&", named: true, ifEmpty: "=", reserved: false),
        .init(symbol: "&", first: "&", separator: "&", named: true, ifEmpty: "=", reserved: false),
    ]

    static func encode(_ text: String, reserved: Bool) -> String {
        let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
        let reservedSet = Set(":/?#[]@!$&'()*+,;=".utf8)
        var out = ""
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if reserved, b == UInt8(ascii: "%"), i + 2 < bytes.count, bytes[(i + 1)...(i + 2)].allSatisfy({ Set("0123456789ABCDEFabcdef".utf8).contains($0) }) {
                out += String(decoding: bytes[i...(i + 2)], as: UTF8.self)
                i += 3
                continue
            }
            if unreserved.contains(b) || (reserved && reservedSet.contains(b)) {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
            }
            i += 1
        }
        return out
    }

    /// RFC 6570 appendix A, for one expression.
    static func expand(_ op: Operator, _ specs: [(name: String, explode: Bool, prefix: Int?)], _ values: [Value]) -> String {
        var parts: [String] = []
        for (spec, value) in zip(specs, values) {
            let enc = { (s: String) in encode(s, reserved: op.reserved) }
            switch value {
            case .undefined: continue
            case .list(let items) where items.isEmpty: continue
            case .map(let pairs) where pairs.isEmpty: continue
            case .string(let s):
                let v = spec.prefix.map { String(s.prefix($0)) } ?? s
                parts.append(op.named ? spec.name + (v.isEmpty ? op.ifEmpty : "=" + enc(v)) : enc(v))
            case .list(let items):
                if !spec.explode {
                    parts.append((op.named ? spec.name + "=" : "") + items.map(enc).joined(separator: ","))
                } else {
                    parts.append(items.map { op.named ? spec.name + ($0.isEmpty ? op.ifEmpty : "=" + enc($0)) : enc($0) }
                        .joined(separator: op.separator))
                }
            case .map(let pairs):
                if !spec.explode {
                    parts.append((op.named ? spec.name + "=" : "") + pairs.map { enc($0.0) + "," + enc($0.1) }.joined(separator: ","))
                } else {
                    parts.append(pairs.map { enc($0.0) + ($0.1.isEmpty && op.named ? op.ifEmpty : "=" + enc($0.1)) }
                        .joined(separator: op.separator))
                }
            }
        }
        return parts.isEmpty ? "" : op.first + parts.joined(separator: op.separator)
    }

    @Test func everyExpansionIsAdmittedAndCovered() {
        var rng = SeededGenerator(seed: 0x6570)
        let alphabet = Array("ab/.,=&?#;% ~-é:")
        func text() -> String { String((0..<Int.random(in: 0...4, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }) }
        for round in 0..<1_000 {
            var template = "s:"
            var expansion = "s:"
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let op = Self.operators.randomElement(using: &rng)!
                var specs: [(name: String, explode: Bool, prefix: Int?)] = []
                var values: [Value] = []
                for v in 0..<Int.random(in: 1...3, using: &rng) {
                    let kind = Int.random(in: 0..<4, using: &rng)
                    let explode = kind >= 2 && Bool.random(using: &rng)
                    let prefix = kind == 1 && Bool.random(using: &rng) ? Int.random(in: 1...5, using: &rng) : nil
                    specs.append(("v\(v)", explode, prefix))
                    switch kind {
                    case 0: values.append(.undefined)
                    case 1: values.append(.string(text()))
                    case 2: values.append(.list((0..<Int.random(in: 0...3, using: &rng)).map { _ in text() }))
                    default: values.append(.map((0..<Int.random(in: 0...3, using: &rng)).map { _ in (text(), text()) }))
                    }
                }
                template += "{" + op.symbol + specs.map { $0.name + ($0.explode ? "*" : $0.prefix.map { ":\($0)" } ?? "") }
                    .joined(separator: ",") + "}"
                expansion += Self.expand(op, specs, values)
                if Bool.random(using: &rng) {
                    template += "/x"
                    expansion += "/x"
                }
            }
            let pattern = URITemplatePattern(template)
            let (admitted, covered) = (pattern.admits(expansion), pattern.covers(expansion))
            #expect(admitted, "round \(round): \(template) → \(expansion)")
            #expect(covered, "round \(round): \(template) → \(expansion)")
            let other = "s:" + text() + text() + text()
            let (otherAdmitted, otherCovered) = (pattern.admits(other), pattern.covers(other))
            #expect(!otherAdmitted || otherCovered, "\(template) admits \(other) but does not cover it")
        }
    }
}
