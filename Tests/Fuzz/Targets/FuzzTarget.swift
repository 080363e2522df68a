/// One parser or evaluator under fuzzing: `run` takes libFuzzer's bytes and stops the process (a crash that
/// libFuzzer records with the input) when a property fails. A target that only returns has found nothing.
struct FuzzTarget: Sendable {
    let name: String
    let summary: String
    let run: @Sendable (UnsafeRawBufferPointer) -> Void
    /// Builds what every input shares before the first input runs. LeakSanitizer cannot follow a pointer stored
    /// in an enum payload's spare bits, so an object first retained by a global during an input looks leaked.
    var setUp: @Sendable () -> Void = {}

    static let all: [FuzzTarget] = [
        .jsonRPC, .sseParser, .policyJSON, .policyYAML, .grants, .redisURL, .mcpName, .argumentRules, .regex,
    ]

    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// A property the input broke: printed, then the process stops so libFuzzer keeps the input as a crash file.
func violated(_ target: String, _ message: @autoclosure () -> String) -> Never {
    printError("toolgate-fuzz \(target): property violated: \(message())")
    abort()
}

/// One line to standard error, written at once (no shared `FILE *`, which strict concurrency rejects).
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
