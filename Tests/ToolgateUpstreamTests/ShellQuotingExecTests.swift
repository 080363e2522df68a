import Foundation
import Testing
import ToolgateCore

/// A servers file's `command` and `args` reach the program word for word through `/bin/sh -c`: nothing in them is
/// read by the shell.
@Suite struct ShellQuotingExecTests {
    func run(_ line: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", line]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func wordsArriveAsWritten() throws {
        let words = ["a b", "it's", "$HOME", "`id`", "\"q\"", "*", "", "x;y", "back\\slash", "new\nline"]
        let line = ShellQuoting.exec("printf", arguments: ["[%s]"] + words)
        #expect(try run(line) == words.map { "[\($0)]" }.joined())
    }

    @Test func workingDirectoryIsEnteredFirst() throws {
        let line = ShellQuoting.exec("pwd", arguments: [], workingDirectory: "/tmp")
        #expect(line == "cd /tmp && exec pwd")
        #expect(try run(line) == "/tmp\n")
    }
}
