import ArgumentParser
import Crypto
import Foundation

/// `toolgate hash-token`: the SHA-256 a grants file stores for a token (DESIGN.md section 2). The token comes on
/// stdin, so it is not left in shell history; one trailing newline (what `echo` adds) is not part of it, which is
/// the mistake that made digests made with `sha256sum` never match.
struct HashTokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-token",
        abstract: "Read a token on stdin and print its SHA-256 for a grants file.",
        discussion: "One trailing newline is ignored: echo \"$TOKEN\" | toolgate hash-token"
    )

    func run() throws {
        var bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
        if bytes.last == UInt8(ascii: "\n") {
            bytes.removeLast()
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        }
        guard !bytes.isEmpty else {
            printError("hash-token: no token on stdin (echo \"$TOKEN\" | toolgate hash-token)")
            throw ExitCode.failure
        }
        print(SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined())
    }
}
