import Testing
@testable import ToolgateCore

/// What the approver sees: invisible and look-changing characters as highlighted escapes, long space runs counted,
/// numbers as written; and the approvals list a page at a time.
@Suite struct ArgumentDisplayTests {
    typealias S = ArgumentDisplay.Segment

    static func parse(_ text: String) -> JSONValue { try! JSONParser.parse(text) }

    @Test func bidiOverrideIsAnEscapeNotAnInvisibleCharacter() {
        let value: JSONValue = ["command": .string("echo \u{202E}~ fr- mr\u{202C}")]
        #expect(ArgumentDisplay.pretty(value) == [
            .text("{\n  \"command\": \"echo "), .escape("\\u202e"), .text("~ fr- mr"), .escape("\\u202c"), .text("\"\n}"),
        ])
    }

    @Test(arguments: [
        0x00, 0x07, 0x1B, 0x7F, 0x85, 0x9F, 0xA0, 0xAD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180E, 0x180F,
        0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060, 0x2061,
        0x2064, 0x2066, 0x2067, 0x2068, 0x2069, 0x206F, 0x3164, 0xFE00, 0xFE0F, 0xFEFF, 0xFFA0, 0xFFF0, 0xFFF8, 0x1BCA0,
        0x1BCA3, 0x1D173, 0x1D17A, 0xE0000, 0xE0001, 0xE007F, 0xE0100, 0xE0FFF,
    ] as [UInt32])
    func everyListedCodePointIsEscaped(value: UInt32) {
        let scalar = Unicode.Scalar(value)!
        var text = "a"
        text.unicodeScalars.append(scalar)
        text += "b"
        let segments = ArgumentDisplay.text(text)
        #expect(segments.count == 3, "U+\(String(value, radix: 16))")
        #expect(segments[1] == .escape(ArgumentDisplay.escape(scalar)))
        #expect(!ArgumentDisplay.plain(segments).unicodeScalars.contains(scalar))
    }

    @Test func escapeSpelling() {
        #expect(ArgumentDisplay.escape("\u{202E}") == "\\u202e")
        #expect(ArgumentDisplay.escape("\u{0}") == "\\u0000")
        #expect(ArgumentDisplay.escape("\n") == "\\n")
        #expect(ArgumentDisplay.escape("\t") == "\\t")
        #expect(ArgumentDisplay.escape("\u{E0041}") == "\\u{e0041}")
    }

    @Test func ordinaryTextIsUntouched() {
        for text in ["rm -rf ~", "héllo wörld", "日本語", "emoji 👍🏽", "a b  c   d", "\u{301}e", "عربى"] {
            #expect(ArgumentDisplay.text(text) == [.text(text)], "\(text)")
        }
    }

    @Test func longRunsOfSpacesAreCounted() {
        let text = "ls" + String(repeating: " ", count: 5_000) + "; rm -rf ~"
        #expect(ArgumentDisplay.text(text) == [.text("ls"), .escape("[5000 spaces]"), .text("; rm -rf ~")])
        #expect(ArgumentDisplay.text("a    b") == [.text("a"), .escape("[4 spaces]"), .text("b")])
        #expect(ArgumentDisplay.text("a   b") == [.text("a   b")])
    }

    @Test func aLiteralBackslashUIsNotMistakenForAnEscape() {
        // The six characters \u202e typed by the agent show as \\u202e, plain: only real escapes are highlighted.
        #expect(ArgumentDisplay.pretty(.string("\\u202e \"q\"")) == [.text("\"\\\\u202e \\\"q\\\"\"")])
    }

    @Test func keysAreEscapedTooAndNumbersKeepTheirLiteral() {
        let value = Self.parse(#"{"a\u200bb": 9007199254740993, "list": [1.50, true, null, {}], "n\nl": []}"#)
        #expect(ArgumentDisplay.plain(ArgumentDisplay.pretty(value)) == """
            {
              "a\\u200bb": 9007199254740993,
              "list": [
                1.50,
                true,
                null,
                {}
              ],
              "n\\nl": []
            }
            """)
    }

    // MARK: Paging

    static func approval(_ created: Int64, _ id: String) -> Approval {
        Approval(
            id: id, state: .pending, grant: "g", tool: "t", arguments: "{}", policySHA256: "", createdAtMillis: created,
            expiresAtMillis: created + 1_000)
    }

    @Test func pagesAreOldestFirstFiftyAtATime() throws {
        let all = (0..<120).map { Self.approval(Int64(1_000 + $0 / 3), String(format: "id-%03d", 119 - $0)) }.shuffled()
        var seen: [Approval] = []
        var after: String?
        var pages = 0
        repeat {
            let page = try ApprovalListPage(all, after: after)
            #expect(page.total == 120)
            #expect(page.approvals.count <= 50)
            seen += page.approvals
            after = page.next
            pages += 1
        } while after != nil
        #expect(pages == 3)
        #expect(seen.count == 120)
        #expect(seen == all.sorted { ApprovalListPage.precedes($0, $1) })
        #expect(seen.first?.createdAtMillis == 1_000)
    }

    @Test func aCursorKeepsItsPlaceWhenApprovalsBeforeItGo() throws {
        let all = (0..<60).map { Self.approval(Int64($0), "id-\($0)") }
        let first = try ApprovalListPage(all, after: nil)
        #expect(first.next == "49:id-49")
        // Ten of the first page were decided and used meanwhile: the second page still starts after id-49.
        let second = try ApprovalListPage(Array(all.dropFirst(10)), after: first.next)
        #expect(second.approvals.map(\.id) == (50..<60).map { "id-\($0)" })
        #expect(second.next == nil)
    }

    @Test func badCursorsAreRefused() {
        for cursor in ["", "abc", "12", ":id", "x:id", "12:"] {
            #expect(throws: ApprovalListPage.BadCursor.self, "\(cursor)") { try ApprovalListPage([], after: cursor) }
        }
    }
}
