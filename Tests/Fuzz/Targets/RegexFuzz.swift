import ToolgateCore

extension FuzzTarget {
    /// Policy `regex` rules. The input up to its first NUL is a pattern and the rest a subject: any pattern either
    /// compiles or is refused with a message, and matching ends (the limits stop PCRE2, never a hang or a crash).
    /// The subject's scalars, each written as `\x{…}`, must also match exactly where the subject's scalars occur
    /// in the pattern text, and anchored exactly when they begin it: a reference that needs no regex engine.
    static let regex = FuzzTarget(name: "regex", summary: "regex rules: adversarial patterns and subjects") { input in
        let bytes = Array(input)
        let cut = bytes.firstIndex(of: 0) ?? bytes.count
        let pattern = String(decoding: bytes[..<cut], as: UTF8.self)
        let subject = String(decoding: bytes[min(cut + 1, bytes.count)...], as: UTF8.self)

        do {
            let compiled = try CompiledRegex(pattern)
            _ = compiled.match(subject)
            _ = compiled.match(pattern)
        } catch let error as CompiledRegex.CompileError {
            guard !error.message.isEmpty else { violated("regex", "a pattern was refused without a message: \(pattern)") }
        } catch {
            violated("regex", "an unexpected error: \(error)")
        }

        let needle = Array(subject.unicodeScalars.prefix(64))
        let escaped = needle.map { "\\x{" + String($0.value, radix: 16) + "}" }.joined()
        let haystack = Array(pattern.unicodeScalars)
        guard let literal = try? CompiledRegex(escaped), let anchored = try? CompiledRegex("^" + escaped) else {
            violated("regex", "escaped scalars did not compile: \(escaped)")
        }
        let occurs = needle.isEmpty || (needle.count <= haystack.count
            && (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle })
        let begins = haystack.starts(with: needle)
        guard literal.match(pattern) == (occurs ? .matched : .notMatched) else {
            violated("regex", "\(escaped) against \(haystack.count) scalars: \(literal.match(pattern)), expected occurs=\(occurs)")
        }
        guard anchored.match(pattern) == (begins ? .matched : .notMatched) else {
            violated("regex", "^\(escaped): \(anchored.match(pattern)), expected begins=\(begins)")
        }
    }
}
