import Foundation
import Testing
import ToolgateCore

/// One fixture per validation error: `Fixtures/invalid/NAME.json` (or `.yaml`/`.yml`) and `NAME.expected`,
/// the exact lines `toolgate check` prints. A line ending in `…` is matched as a prefix.
@Suite struct PolicyValidationFixtureTests {
    static let fixtures: [String] = {
        let names = (try? Fixture.names(in: "invalid")) ?? []
        return names.filter { !$0.hasSuffix(".expected") }
    }()

    @Test func thereIsAFixtureForEveryCase() {
        #expect(Self.fixtures.count >= 60)
    }

    @Test(arguments: fixtures)
    func reportsTheExactPath(fixture: String) throws {
        let stem = fixture.split(separator: ".").dropLast().joined(separator: ".")
        let expectedText = String(decoding: try Fixture.bytes("invalid/\(stem).expected"), as: UTF8.self)
        let expected = expectedText.split(separator: "\n").map(String.init)
        let error = try #require(throws: PolicyValidationError.self) {
            try Policy.parse(try Fixture.bytes("invalid/\(fixture)"), file: fixture)
        }
        let actual = error.errors.map(\.description)
        #expect(actual.count == expected.count, "\(actual)")
        for (line, want) in zip(actual, expected) {
            if want.hasSuffix("…") {
                #expect(line.hasPrefix(String(want.dropLast())), "\(line)")
            } else {
                #expect(line == want)
            }
        }
    }
}
