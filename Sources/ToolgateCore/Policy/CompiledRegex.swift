/// A regular expression compiled once, at policy load.
public struct CompiledRegex: @unchecked Sendable {
    // Regex is an immutable value; matching it from many threads is safe.
    private let regex: Regex<AnyRegexOutput>
    public let pattern: String

    public init(_ pattern: String) throws {
        self.regex = try Regex(pattern)
        self.pattern = pattern
    }

    /// Unanchored: the pattern may match anywhere in the string.
    public func matches(_ string: String) -> Bool {
        (try? regex.firstMatch(in: string)) != nil
    }
}
