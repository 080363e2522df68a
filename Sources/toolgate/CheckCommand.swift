import ArgumentParser
import Foundation
import ToolgateCore
import ToolgateServer

/// `toolgate check FILE...`: validates policies the way `serve` would load them.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate policy files.",
        discussion: """
            Prints every error with its file and JSON path. Exits 0 when all files are valid, 1 otherwise.
            Files ending in .yaml or .yml are read as YAML, all others as JSON.
            """
    )

    @Argument(help: "Policy files to validate.")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one policy file") }
    }

    func run() throws {
        var failed = false
        for file in files {
            switch PolicyFile.load(file) {
            case .success(let policy):
                let tools = policy.entries.count + (policy.wildcard == nil ? 0 : 1)
                print("\(file): ok (\(tools) tool \(tools == 1 ? "entry" : "entries"), default \(policy.defaultAction.rawValue), sha256 \(policy.sha256))")
            case .failure(let error):
                failed = true
                for problem in error.errors { printError(problem.description) }
            }
        }
        if failed { throw ExitCode.failure }
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
