import CPCRE2

/// A policy `regex`, compiled once at policy load by PCRE2 (Perl-compatible syntax) and matched on Unicode scalars
/// (DESIGN.md section 4): `.` and a negated class match one code point, and CR LF is two. Matching is unanchored: the
/// pattern may match anywhere in the string.
///
/// Matching costs time linear in the subject: PCRE2's DFA matcher runs the pattern as `(?s:.*?)(?:pattern)`,
/// anchored, so one pass over the subject follows every start position at once, holding a set of states capped by
/// a fixed workspace; nothing backtracks, and the work per character is bounded. (The backtracking matcher restarts its step count at every start
/// position of an unanchored search, and a repeat such as `[a-z]*` scans without counting: `[a-z]*\d` against 40,000
/// `a` took 20 s with it, quadratic.) The DFA matcher cannot run backreferences, which are refused at load; any
/// other item it cannot run, and a match that reaches the match, depth or heap limit or outgrows its workspace, ends
/// with `.limitExceeded`, which a rule treats as failing (deny), never as holding.
///
/// `$` matches only at the very end (`PCRE2_DOLLAR_ENDONLY`): a trailing newline is part of the value the upstream
/// gets, so `^[a-z]+$` does not accept `"main\n"` (Perl, Python and PCRE2's default would).
///
/// A cheap `Sendable` value: copies share one compiled pattern, which many threads may match at once.
public struct CompiledRegex: Sendable {
    /// How a match ended.
    public enum Outcome: Sendable, Equatable {
        case matched
        case notMatched
        /// PCRE2 stopped before it could decide (match, depth or heap limit). The rule fails.
        case limitExceeded
    }

    /// Most backtracking steps (calls of PCRE2's internal `match()`) from one start position of the subject. The
    /// exponential `^(\w+\s?)*$` against `"a"` × 30 + `"!"` reaches it in about 2 ms; a rule whose repeats need
    /// no backtracking (`^[a-z0-9-]+$` over 1 MiB) takes a few steps in all. PCRE2's default is 10,000,000.
    public static let matchLimit: UInt32 = 100_000
    /// Most nested backtracking points: one or more per iteration of a repeated group (`^(?:ab)*$` reaches it at
    /// about 10,000 `ab`, `^(\w+\s?)*$` at about 2,500 words), none per character of a single-item repeat
    /// (`[a-z]*`, `.{1,8}`). PCRE2's default is 10,000,000.
    public static let depthLimit: UInt32 = 10_000
    /// Most memory for PCRE2's backtracking frames, in KiB, per match. A frame is about 128 bytes plus 16 per
    /// capturing group, so at the depth limit a pattern needs about 1.3 MiB plus 160 KiB per group; this caps
    /// patterns with about 90 groups or more. PCRE2's default is 20,000,000 KiB.
    public static let heapLimitKiB: UInt32 = 16 * 1024

    /// The pattern as written in the policy.
    public let pattern: String
    private let compiled: PCRE2Pattern

    /// Compiles `pattern`; a syntax error, or a feature that cannot run in linear time (a backreference), throws
    /// `CompileError` with PCRE2's message and where it was found.
    public init(_ pattern: String) throws {
        self.pattern = pattern
        self.compiled = try PCRE2Pattern(pattern)
    }

    /// Whether the pattern matches anywhere in `string`, or the limits stopped PCRE2 first.
    public func match(_ string: String) -> Outcome {
        // The DFA takes one step per subject byte for each state of this (policy-sized) pattern.
        WorkMeter.charge(string.utf8.count + 1)
        return compiled.match(string)
    }


    /// A pattern PCRE2 rejects. `description` reads "missing closing parenthesis at offset 9", which policy
    /// validation prints after the rule's JSON path.
    public struct CompileError: Error, Sendable, Equatable, CustomStringConvertible {
        /// PCRE2's error code: a compile error (positive; 114 is a missing closing parenthesis), or
        /// `PCRE2_ERROR_NOMEMORY` when the match context could not be allocated.
        public let code: Int32
        /// PCRE2's error text.
        public let message: String
        /// Where in the pattern PCRE2 gave up, in Unicode scalars from its start.
        public let offset: Int

        public var description: String { "\(message) at offset \(offset)" }
    }
}

/// The one place that touches PCRE2: it owns a compiled pattern and its match context.
///
/// Ownership: `code` and `matchContext` are created in `init` and freed only in `deinit`, so they live exactly as
/// long as this object; nothing hands them out. After `init` neither is ever written: PCRE2 does not modify a
/// compiled pattern (no JIT here) or a match context while matching, so any number of threads may match with them at
/// once. Each call gets its own `pcre2_match_data`, freed before the call returns. That is what makes the
/// `@unchecked Sendable` sound.
private final class PCRE2Pattern: @unchecked Sendable {
    /// The pattern as written: what validation and error offsets refer to.
    private let code: OpaquePointer
    /// `(?s:.*?)(?:pattern\E)`, matched anchored by the DFA matcher: every start position in one pass.
    private let searchCode: OpaquePointer
    private let matchContext: OpaquePointer

    /// UTF: the pattern and subjects are UTF-8 and `.`, classes and quantifiers work on code points. UCP: `\w`, `\d`,
    /// `\s`, `\b` and POSIX classes follow Unicode properties, as Python's `re` does for str. NEVER_BACKSLASH_C:
    /// `\C` would match one byte, inside a code point.
    /// DOLLAR_ENDONLY: `$` is the end of the value, never "before a final newline".
    private static let compileOptions: UInt32 = PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C | PCRE2_DOLLAR_ENDONLY

    /// Subjects are Swift `String`s, whose UTF-8 is always valid (the JSON parser turns `\uXXXX` escapes into
    /// scalars and rejects lone surrogates; `String` cannot hold invalid UTF-8), so PCRE2's per-match validity scan
    /// of the whole subject is skipped. Patterns keep the check: it runs once, at load.
    private static let matchOptions: UInt32 = PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED | PCRE2_DFA_SHORTEST

    /// The DFA matcher's working memory, in ints: three per active state, so at most about 680 states per
    /// character, which bounds the work per character whatever the pattern. Ordinary rules need a few dozen; a
    /// repeated group over a long value (`^(\w+\s?)*$` over a thousand characters) can need more, and then the
    /// match fails closed.
    private static let workspaceInts = 2_048

    init(_ pattern: String) throws {
        var errorCode: Int32 = 0
        var errorOffset = 0
        // Created here, freed in deinit (see the type's ownership note). The length is explicit, so a NUL in the
        // pattern is part of it.
        let compiled = Self.withUTF8(pattern) { bytes, count in
            pcre2_compile_8(bytes, count, Self.compileOptions, &errorCode, &errorOffset, nil)
        }
        guard let compiled else {
            throw CompiledRegex.CompileError(
                code: errorCode,
                message: Self.errorMessage(errorCode),
                offset: Self.scalarOffset(ofByte: errorOffset, in: pattern)
            )
        }
        var backreferences: UInt32 = 0
        _ = pcre2_pattern_info_8(compiled, UInt32(PCRE2_INFO_BACKREFMAX), &backreferences)
        guard backreferences == 0 else {
            pcre2_code_free_8(compiled)
            throw CompiledRegex.CompileError(
                code: 0, message: "backreferences are not supported (they cannot be matched in linear time)", offset: 0)
        }
        // The search form, created here and freed in deinit. `\E` closes a `\Q` the pattern left open. A pattern that
        // cannot be wrapped (a `#` comment under `(?x)` running to its end) fails to load, not to match.
        let search = Self.withUTF8("(?s:.*?)(?:" + pattern + "\\E)") { bytes, count in
            pcre2_compile_8(bytes, count, Self.compileOptions, &errorCode, &errorOffset, nil)
        }
        guard let search else {
            pcre2_code_free_8(compiled)
            throw CompiledRegex.CompileError(
                code: errorCode, message: "cannot be searched in linear time: " + Self.errorMessage(errorCode), offset: 0)
        }
        // Created here, freed in deinit; read-only from here on, shared by every match.
        guard let context = pcre2_match_context_create_8(nil) else {
            pcre2_code_free_8(compiled)
            pcre2_code_free_8(search)
            throw CompiledRegex.CompileError(code: PCRE2_ERROR_NOMEMORY, message: "out of memory", offset: 0)
        }
        pcre2_set_match_limit_8(context, CompiledRegex.matchLimit)
        pcre2_set_depth_limit_8(context, CompiledRegex.depthLimit)
        pcre2_set_heap_limit_8(context, CompiledRegex.heapLimitKiB)
        self.code = compiled
        self.searchCode = search
        self.matchContext = context
    }

    deinit {
        pcre2_match_context_free_8(matchContext)
        pcre2_code_free_8(searchCode)
        pcre2_code_free_8(code)
    }

    func match(_ subject: String) -> CompiledRegex.Outcome {
        // Per call, freed before return: match data is written during a match, so threads cannot share one. One
        // ovector pair is enough, since no caller reads captures; with more groups than pairs PCRE2 still matches
        // and returns 0 ("ovector too small"), which is why any rc >= 0 counts as matched.
        guard let matchData = pcre2_match_data_create_8(1, nil) else { return .limitExceeded }
        defer { pcre2_match_data_free_8(matchData) }
        let rc = withUnsafeTemporaryAllocation(of: Int32.self, capacity: Self.workspaceInts) { workspace in
            Self.withUTF8(subject) { bytes, count in
                pcre2_dfa_match_8(
                    searchCode, bytes, count, 0, Self.matchOptions, matchData, matchContext, workspace.baseAddress,
                    workspace.count)
            }
        }
        if rc >= 0 { return .matched }
        if rc == PCRE2_ERROR_NOMATCH { return .notMatched }
        // A limit, a full workspace, memory, or an item the DFA matcher cannot run: PCRE2 could not decide within
        // its bounds, and the rule must fail, never hold.
        return .limitExceeded
    }

    /// The string's UTF-8 bytes and their count. PCRE2 10.42 rejects a NULL pointer even with length 0, so an
    /// empty string gets a real (unused) byte to point at.
    private static func withUTF8<R>(_ string: String, _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
        var string = string
        return string.withUTF8 { buffer in
            if let base = buffer.baseAddress { return body(base, buffer.count) }
            var none: UInt8 = 0
            return withUnsafePointer(to: &none) { body($0, 0) }
        }
    }

    private static func errorMessage(_ errorCode: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let length = pcre2_get_error_message_8(errorCode, &buffer, buffer.count)
        guard length > 0 else { return "PCRE2 error \(errorCode)" }
        return String(decoding: buffer[..<Int(length)], as: UTF8.self)
    }

    /// PCRE2 reports offsets in bytes; a policy author counts characters. Counts the scalars that start before it.
    private static func scalarOffset(ofByte byteOffset: Int, in pattern: String) -> Int {
        pattern.utf8.prefix(byteOffset).reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
    }
}
