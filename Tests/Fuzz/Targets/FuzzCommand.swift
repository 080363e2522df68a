#if canImport(Glibc)
import Glibc
#endif
#if TOOLGATE_FUZZ
import CLibFuzzer
#endif

/// `toolgate-fuzz TARGET ...`. Built with `-sanitize=fuzzer` and `-DTOOLGATE_FUZZ` (scripts/fuzz.sh), it hands
/// the remaining arguments (libFuzzer's flags and corpus folders) to libFuzzer's driver. A plain build replays
/// saved inputs instead, `toolgate-fuzz TARGET FILE|DIR...`: that reproduces a crash file from a fuzz run under
/// a debugger, and keeps the targets compiling in every build.
@main
struct FuzzCommand {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first, let target = FuzzTarget.named(name) else {
            let names = FuzzTarget.all.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
            printError("usage: toolgate-fuzz TARGET FILE|DIR...\ntargets:\n\(names)")
            exit(64)
        }
        selected = target
        target.setUp()
        #if TOOLGATE_FUZZ
        runLibFuzzer(arguments: [CommandLine.arguments[0]] + arguments.dropFirst())
        #else
        replay(target, paths: Array(arguments.dropFirst()))
        #endif
    }

    /// The target libFuzzer's callback runs: a C function pointer cannot capture it.
    nonisolated(unsafe) static var selected: FuzzTarget?

    #if TOOLGATE_FUZZ
    static func runLibFuzzer(arguments: [String]) -> Never {
        var argc = CInt(arguments.count)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let status = argv.withUnsafeMutableBufferPointer { buffer -> CInt in
            var base = buffer.baseAddress
            return LLVMFuzzerRunDriver(&argc, &base) { data, count in fuzzOneInput(data, count) }
        }
        exit(status)
    }
    #endif

    static func replay(_ target: FuzzTarget, paths: [String]) {
        var replayed = 0
        for path in paths {
            for file in files(at: path) {
                guard let bytes = read(file) else {
                    printError("toolgate-fuzz: cannot read \(file)")
                    exit(66)
                }
                bytes.withUnsafeBytes { target.run($0) }
                replayed += 1
            }
        }
        print("toolgate-fuzz \(target.name): \(replayed) inputs replayed, no property violated")
    }

    /// A file, or the regular files directly in a directory (a corpus), in name order.
    static func files(at path: String) -> [String] {
        guard let directory = opendir(path) else { return [path] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if !name.hasPrefix(".") { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            bytes += buffer[..<n]
            if n < buffer.count { return ferror(file) == 0 ? bytes : nil }
        }
    }
}

#if TOOLGATE_FUZZ
/// The callback, also under the name libFuzzer's runtime links against (its own `main`, unused here, refers to it).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzCommand.selected!.run(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}
#endif
