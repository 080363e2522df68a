import Testing
@testable import ToolgateCore

@Suite struct JSONParserTests {
    @Test func parsesEveryKindOfValue() throws {
        let value = try JSONParser.parse(#" {"a": [1, -2.5e3, true, false, null, "x"], "b": {"c": "\u00e9\n\"q\""}} "#)
        #expect(value["a"] == [1, .number(JSONNumber(literal: "-2.5e3")), true, false, nil, "x"])
        #expect(value["b"]?["c"] == .string("é\n\"q\""))
    }

    @Test func keepsNumberLiteralsAndKeyOrderWhenWritten() throws {
        let text = #"{"z":1.50,"a":[1e2,-0,12345678901234567890],"m":{}}"#
        #expect(JSONWriter.string(try JSONParser.parse(text)) == text)
    }

    @Test func joinsSurrogatePairs() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00""#) == .string("😀"))
    }

    @Test(arguments: [
        ("", "unexpected end of input"),
        ("{", "expected a string key"),
        ("[1,]", "unexpected character ']'"),
        ("{\"a\":1,}", "expected a string key"),
        ("01", "unexpected data after the document"),
        ("1.", "invalid number"),
        ("-", "invalid number"),
        ("\"abc", "unterminated string"),
        ("\"\u{01}\"", "unescaped control character in string"),
        ("\"\\x\"", "invalid escape"),
        ("\"\\ud83d\"", "unpaired surrogate in \\u escape"),
        ("tru", "unexpected end of input"),
        ("{\"a\":1,\"a\":2}", "duplicate key \"a\""),
        ("[1] [2]", "unexpected data after the document"),
    ])
    func rejectsMalformedInput(input: String, message: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(input) }
        do {
            _ = try JSONParser.parse(input)
        } catch {
            #expect(error.message == message, "input: \(input)")
        }
    }

    /// Plain string bytes are skipped eight at a time: a quote, a backslash, a control byte or a multi-byte
    /// character must be seen wherever it falls relative to those words.
    @Test func findsEveryStringSpecialByteAtEveryOffset() throws {
        for length in 0..<24 {
            for position in 0..<max(length, 1) {
                for special in ["\\\"", "\\\\", "\\n", "é", "\u{1F600}"] {
                    var plain = Array(repeating: "a", count: length)
                    if length > 0 { plain[position] = special }
                    let text = plain.joined()
                    // Both the document's own offset and the string's start vary: 0–2 spaces before the quote.
                    for pad in 0..<3 {
                        let parsed = try JSONParser.parse(String(repeating: " ", count: pad) + "\"" + text + "\"")
                        let expected = text.replacingOccurrences(of: "\\\"", with: "\"")
                            .replacingOccurrences(of: "\\\\", with: "\\").replacingOccurrences(of: "\\n", with: "\n")
                        #expect(parsed == .string(expected), "length \(length), position \(position), \(special)")
                    }
                }
                var raw = Array(repeating: UInt8(ascii: "a"), count: max(length, 1))
                raw[position] = 0x01
                #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22] + raw + [0x22]) }
            }
        }
    }

    @Test func rejectsDuplicateKeysInLargeObjects() {
        let members = (0..<20).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{\(members),\"k7\":0}") }
        #expect(throws: Never.self) { try JSONParser.parse("{\(members)}") }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func capsNestingDepth() {
        let deep = String(repeating: "[", count: JSONParser.maximumDepth + 1) + String(repeating: "]", count: JSONParser.maximumDepth + 1)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let ok = String(repeating: "[", count: JSONParser.maximumDepth) + String(repeating: "]", count: JSONParser.maximumDepth)
        #expect(throws: Never.self) { try JSONParser.parse(ok) }
    }

    @Test func escapesControlCharactersWhenWriting() throws {
        let value = JSONValue.string("a\u{01}\"\\\n")
        let written = JSONWriter.string(value)
        #expect(written == #""a\u0001\"\\\n""#)
        #expect(try JSONParser.parse(written) == value)
    }

    @Test func comparesNumbersByValue() {
        #expect(JSONValue.number(JSONNumber(literal: "1")) == .number(JSONNumber(literal: "1.0")))
        #expect(JSONNumber(literal: "2") < JSONNumber(literal: "10"))
        #expect(JSONNumber(literal: "1e3").int64Value == 1000)
        #expect(JSONNumber(literal: "1.5").int64Value == nil)
    }

    @Test func comparesObjectsRegardlessOfOrder() throws {
        #expect(try JSONParser.parse(#"{"a":1,"b":2}"#) == JSONParser.parse(#"{"b":2,"a":1}"#))
        #expect(try JSONParser.parse(#"{"a":1}"#) != JSONParser.parse(#"{"a":1,"b":2}"#))
    }
}
