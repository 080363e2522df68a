import Foundation
import Synchronization
import Testing
import ToolgateCore

/// `regex` rules run on Unicode scalars with bounded work (DESIGN.md section 4; issue 8, findings 2 and 3).
@Suite struct CompiledRegexTests {
    /// The issue's shell-metacharacter rule: no `;`, `&`, `|`, backquote, `$` or LF anywhere in the value.
    static let noShellMetacharacters = #"^[^;&|`$\n]*$"#

    // MARK: Code points, not grapheme clusters (finding 3)

    @Test func crLFIsTwoCodePointsSoTheNegatedClassSeesTheLF() throws {
        let r = try CompiledRegex(Self.noShellMetacharacters)
        #expect(r.match("echo hi") == .matched)
        // Swift's Regex saw "\r\n" as one cluster, which is not LF, and let `id` through to `bash -c`.
        #expect(r.match("echo hi #\r\nid") == .notMatched)
    }

    @Test func aCombiningMarkDoesNotHideTheCharacterBeforeIt() throws {
        let r = try CompiledRegex(Self.noShellMetacharacters)
        #expect(r.match("ls -l") == .matched)
        #expect(r.match("ls;\u{301} id") == .notMatched)
    }

    @Test func aNULHiddenBehindACombiningMarkIsSeen() throws {
        // The escape form, and the pattern holding a real NUL (the pattern's length is passed, so it is not cut).
        for pattern in [#"^[^\x00]*$"#, "^[^\u{0}]*$"] {
            let r = try CompiledRegex(pattern)
            #expect(r.match("plain text\u{301}") == .matched)
            #expect(r.match("\u{0}\u{301}") == .notMatched)
            #expect(r.match("abc\u{0}") == .notMatched)
        }
    }

    @Test func aSlashHiddenBehindACombiningMarkIsSeen() throws {
        let r = try CompiledRegex("^[^/]*$")
        #expect(r.match("file.txt") == .matched)
        #expect(r.match("/\u{301}") == .notMatched)
    }

    @Test func repetitionCountsCodePoints() throws {
        let r = try CompiledRegex("^.{1,8}$")
        // One grapheme cluster of 5,001 code points: Swift's Regex counted it as one character.
        let cluster = "e" + String(repeating: "\u{301}", count: 5_000)
        #expect(cluster.unicodeScalars.count == 5_001)
        #expect(r.match(cluster) == .notMatched)
        #expect(r.match("e\u{301}") == .matched)
        #expect(r.match(String(repeating: "\u{301}", count: 8)) == .matched)
        #expect(r.match(String(repeating: "\u{301}", count: 9)) == .notMatched)
        // An astral scalar (4 UTF-8 bytes) is one code point, not four bytes.
        #expect(r.match(String(repeating: "\u{1F600}", count: 8)) == .matched)
    }

    @Test func dotMatchesOneCodePointOfCRLF() throws {
        #expect(try CompiledRegex(#"(?s)^..\z"#).match("\r\n") == .matched)
        #expect(try CompiledRegex(#"(?s)^.\z"#).match("\r\n") == .notMatched)
    }

    @Test func dollarMatchesOnlyAtTheEndOfTheValue() throws {
        // Unlike Perl's and Python's `$`, never "before a final LF": the newline is part of what the upstream gets.
        #expect(try CompiledRegex("^[a-z]+$").match("main\n") == .notMatched)
        #expect(try CompiledRegex("^[a-z]+$").match("main") == .matched)
        #expect(try CompiledRegex(#"^[a-z]+\z"#).match("main\n") == .notMatched)
        #expect(try CompiledRegex("(?m)^[a-z]+$").match("main\nx") == .matched)
    }

    @Test func classesFollowUnicodeProperties() throws {
        // UCP: \w and \d are Unicode-aware, as in Python's re for str patterns.
        #expect(try CompiledRegex(#"^\w+$"#).match("café") == .matched)
        #expect(try CompiledRegex(#"^\d+$"#).match("\u{663}\u{664}") == .matched)  // Arabic-Indic digits
    }

    // MARK: Bounded work (finding 2)

    @Test func catastrophicBacktrackingIsDecidedInOnePass() throws {
        let r = try CompiledRegex(#"^(\w+\s?)*$"#)
        #expect(r.match("hello world again") == .matched)
        // Swift's Regex ran for minutes on this, PCRE2's backtracking matcher stops at its step limit; the DFA
        // matcher has nothing to backtrack and simply answers.
        let hostile = String(repeating: "a", count: 30) + "!"
        #expect(r.match(hostile) == .notMatched)
        // Over a long value the repeated group's states outgrow the fixed workspace: decided as failing.
        #expect(r.match(String(repeating: "a", count: 100_000) + "!") != .matched)
    }

    /// Patterns that fail late from every start position: quadratic for a backtracking search (`[a-z]*\d` over
    /// 40,000 `a` took 20 s with PCRE2's backtracking matcher), one pass here.
    @Test func unanchoredSearchesThatFailLateAreOnePass() throws {
        #expect(try CompiledRegex(#"[a-z]*\d"#).match(String(repeating: "a", count: 1 << 20)) == .notMatched)
        #expect(try CompiledRegex(#"[a-z]*[0-9]"#).match(String(repeating: "a", count: 1 << 20) + "7") == .matched)
        #expect(try CompiledRegex("^(?:ab)*$").match(String(repeating: "ab", count: 200_000)) == .matched)
        #expect(try CompiledRegex("^(?:" + String(repeating: "(a)", count: 200) + ")*$").match(String(repeating: "a", count: 200 * 100)) == .matched)
    }

    /// What the DFA matcher cannot run: backreferences are refused at load; other items (backtracking verbs) fail
    /// closed at match time.
    @Test func whatCannotRunInLinearTimeFailsClosed() throws {
        #expect(throws: CompiledRegex.CompileError.self) { try CompiledRegex(#"(a)\1"#) }
        let verbs = try CompiledRegex("a(*SKIP)b")
        #expect(verbs.match("ab") == .limitExceeded)
        // A limit fails the rule, it never holds; and the evaluator says the rule was undecided.
        let rule = ArgumentRule(path: ["c"], op: .regex(verbs))
        #expect(!rule.holds(for: ["c": "ab"]))
        #expect(rule.wasUndecided(for: ["c": "ab"]))
        #expect(!ArgumentRule(path: ["c"], op: .regex(try CompiledRegex("^a$"))).wasUndecided(for: ["c": "ab"]))
    }

    @Test func singleItemRepeatsOverLongStringsStayWithinTheLimits() throws {
        // A 1 MiB value against the usual anchored class rule: no backtracking frames per character.
        let long = String(repeating: "a", count: 1 << 20)
        #expect(try CompiledRegex("^[a-z]+$").match(long) == .matched)
        #expect(try CompiledRegex(Self.noShellMetacharacters).match(long) == .matched)
        #expect(try CompiledRegex("needle").match(long + "needle") == .matched)
    }

    // MARK: Matching semantics

    @Test func matchingIsUnanchored() throws {
        #expect(try CompiledRegex("wor").match("hello world") == .matched)
        #expect(try CompiledRegex("^world").match("hello world") == .notMatched)
        #expect(try CompiledRegex(#"\d+"#).match("abc123def") == .matched)
        #expect(try CompiledRegex("xyz").match("hello world") == .notMatched)
    }

    @Test func emptyPatternsAndSubjects() throws {
        #expect(try CompiledRegex("").match("") == .matched)
        #expect(try CompiledRegex("").match("anything") == .matched)
        #expect(try CompiledRegex("^$").match("") == .matched)
        #expect(try CompiledRegex("a").match("") == .notMatched)
    }

    @Test func patternsWithManyGroupsStillMatch() throws {
        // Captures are never read (one ovector pair); PCRE2 then answers 0, which is a match.
        let r = try CompiledRegex("^(a)(b)(c)(d)$")
        #expect(r.match("abcd") == .matched)
        #expect(r.match("abce") == .notMatched)
    }

    // MARK: Compile errors

    @Test func aSyntaxErrorThrowsPCRE2sMessageAndOffset() throws {
        let error = try #require(throws: CompiledRegex.CompileError.self) { try CompiledRegex("(unclosed") }
        #expect(error.message == "missing closing parenthesis")
        #expect(error.offset == 9)
        #expect(error.code > 0)
        #expect("\(error)" == "missing closing parenthesis at offset 9")
    }

    @Test func errorOffsetsCountCodePointsNotBytes() throws {
        // "é€" is 2 scalars but 5 UTF-8 bytes; the unmatched ")" sits at scalar offset 2.
        let error = try #require(throws: CompiledRegex.CompileError.self) { try CompiledRegex("é€)") }
        #expect(error.offset == 2, "\(error)")
    }

    @Test func otherSyntaxErrorsNameTheirCause() throws {
        for (pattern, fragment) in [
            ("[a-", "missing terminating ]"),
            ("a{2,1}", "out of order"),
            (#"\"#, "\\ at end of pattern"),
            ("*a", "quantifier does not follow a repeatable item"),
        ] {
            let error = try #require(throws: CompiledRegex.CompileError.self) { try CompiledRegex(pattern) }
            #expect(error.message.contains(fragment), "\(pattern): \(error)")
        }
    }

    @Test func backslashCIsRefusedBecauseItMatchesOneByte() throws {
        #expect(throws: CompiledRegex.CompileError.self) { try CompiledRegex(#"^\C$"#) }
    }

    @Test func policyValidationPrintsTheMessage() throws {
        let json = #"{"version": "1", "tools": {"x": {"arguments": [{"path": "a", "op": "regex", "value": "ab(c"}]}}}"#
        let error = try #require(throws: PolicyValidationError.self) { try Policy.parse(json, file: "p.json") }
        #expect(error.errors.map(\.description) == [
            #"p.json: tools.x.arguments[0].value: invalid regex "ab(c": missing closing parenthesis at offset 4"#
        ])
    }

    // MARK: Sharing

    @Test func manyThreadsMatchingOnePatternAgree() throws {
        let r = try CompiledRegex(#"^(\w+\s?)*$"#)
        let subjects = [
            "hello world", "a b c", "", "tab\there", String(repeating: "a", count: 30) + "!", "x!", "ok ok ok",
            String(repeating: "word ", count: 200),
        ]
        let expected = subjects.map { r.match($0) }
        #expect(expected.contains(.matched) && expected.contains(.notMatched))

        let threadCount = 8
        let rounds = 50
        let disagreements = Tally()
        let done = DispatchGroup()
        for t in 0..<threadCount {
            done.enter()
            let thread = Thread {
                var wrong = 0
                for round in 0..<rounds {
                    for i in subjects.indices {
                        let k = (i + t + round) % subjects.count
                        if r.match(subjects[k]) != expected[k] { wrong += 1 }
                    }
                }
                disagreements.count.withLock { $0 += wrong }
                done.leave()
            }
            thread.start()
        }
        done.wait()
        #expect(disagreements.count.withLock { $0 } == 0)
    }
}

/// A shared count the matching threads add to.
private final class Tally: Sendable {
    let count = Mutex(0)
}
