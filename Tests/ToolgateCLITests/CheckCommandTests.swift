import Foundation
import Testing

@Suite struct CheckCommandTests {
    static let invalidDirectory = ToolgateProcess.repositoryRoot.appendingPathComponent("Tests/ToolgateCoreTests/Fixtures/invalid")

    static let invalidFixtures: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: invalidDirectory.path)) ?? []
        return names.filter { !$0.hasSuffix(".expected") }.sorted()
    }()

    @Test func validPoliciesExitZero() throws {
        let result = try ToolgateProcess.run(["check", "examples/policy.json", "examples/seed-policy.json"])
        #expect(result.status == 0, "\(result.stderr)")
        // Both are default deny without a `resources` section: one note line each, nothing else (DESIGN.md section 4).
        let notes = result.stderr.split(separator: "\n")
        #expect(notes.count == 2 && notes.allSatisfy { $0.contains(": note: no \"resources\" section") }, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("examples/policy.json: ok"))
        #expect(lines[1].hasPrefix("examples/seed-policy.json: ok (1 tool entry, default deny, sha256 "))
    }

    @Test(arguments: invalidFixtures)
    func everyInvalidFixturePrintsItsErrorsAndExitsOne(fixture: String) throws {
        let result = try ToolgateProcess.run(["check", fixture], in: Self.invalidDirectory)
        #expect(result.status == 1)
        let stem = fixture.split(separator: ".").dropLast().joined(separator: ".")
        let expected = try String(contentsOf: Self.invalidDirectory.appendingPathComponent("\(stem).expected"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let actual = result.stderr.split(separator: "\n").map(String.init)
        #expect(actual.count == expected.count, "\(actual)")
        for (line, want) in zip(actual, expected) {
            if want.hasSuffix("…") { #expect(line.hasPrefix(String(want.dropLast()))) } else { #expect(line == want) }
        }
    }

    @Test func oneInvalidFileAmongValidOnesFailsTheRunAndReportsOnlyItsErrors() throws {
        let bad = Self.invalidDirectory.appendingPathComponent("misspelled_window.json").path
        let result = try ToolgateProcess.run(["check", "examples/seed-policy.json", bad, "examples/policy.json"])
        #expect(result.status == 1)
        #expect(result.stdout.split(separator: "\n").count == 2)
        let errors = result.stderr.split(separator: "\n").filter { !$0.contains(": note: ") }
        #expect(errors == ["\(bad): tools.imageBackgroundRemoval.limits[0].window: unknown window \"minit\" (expected second, minute, hour, day, a number of seconds, or a duration such as 90s, 15m, 2h, 1d)"])
    }

    @Test func unreadableFileIsAnError() throws {
        let result = try ToolgateProcess.run(["check", "does-not-exist.json"])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("does-not-exist.json: cannot read file: "))
    }

    @Test func noFilesIsAUsageError() throws {
        let result = try ToolgateProcess.run(["check"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("give at least one policy file") || result.stderr.contains("Missing expected argument"))
    }

    @Test func unknownFlagsAreRejected() throws {
        let result = try ToolgateProcess.run(["check", "--frobnicate", "examples/policy.json"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--frobnicate"))
    }
}
