import ArgumentParser
import Foundation
import ToolgateCore
import ToolgateServer
import ToolgateUpstream

/// `toolgate check FILE...`: validates policies the way `serve` would load them, and with `--upstream` holds them
/// against the tools a live server lists.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate policy files.",
        discussion: """
            Prints every error with its file and JSON path. Exits 0 when all files are valid, 1 otherwise.
            Files ending in .yaml or .yml are read as YAML, all others as JSON. With --upstream, also warns about
            entries naming tools the server does not have, argument paths absent from a tool's inputSchema, rules
            (not "optional": true) on arguments the tool does not require, which deny every call that leaves them
            out, and server tools no entry covers; --strict makes warnings fail.
            """
    )

    @Argument(help: "Policy files to validate.")
    var files: [String]

    @Option(help: "A live MCP endpoint to hold the policies against, e.g. http://127.0.0.1:8000/mcp.") var upstream: String?
    @Flag(help: "Exit 1 when --upstream finds anything to warn about.") var strict = false

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one policy file") }
    }

    func run() async throws {
        var failed = false
        var warned = false
        var tools: [PolicyCoverage.UpstreamTool]?
        if let upstream {
            let transport = CurlUpstreamTransport(
                configuration: .init(connectTimeout: .seconds(5), headersTimeout: .seconds(30), idleTimeout: .seconds(30)))
            defer { transport.shutdown() }
            do {
                tools = try await UpstreamToolCatalog.fetch(transport: transport, url: upstream)
            } catch {
                printError("check: \(error.description)")
                throw ExitCode.failure
            }
        }
        for file in files {
            switch PolicyFile.load(file) {
            case .success(let policy):
                let count = policy.entries.count + (policy.wildcard == nil ? 0 : 1)
                print("\(file): ok (\(count) tool \(count == 1 ? "entry" : "entries"), default \(policy.defaultAction.rawValue), sha256 \(policy.sha256))")
                if policy.defaultAction == .deny, policy.resources == nil {
                    printError("\(file): note: no \"resources\" section, so resources (and, without a \"prompts\" section, prompts) pass through unchecked: \"default\": \"deny\" covers tools only")
                }
                if let tools {
                    let warnings = PolicyCoverage.warnings(policy: policy, file: file, tools: tools)
                    for warning in warnings { printError("warning: " + warning) }
                    if warnings.isEmpty { print("\(file): covers the upstream's \(tools.count) tools") }
                    warned = warned || !warnings.isEmpty
                }
            case .failure(let error):
                failed = true
                for problem in error.errors { printError(problem.description) }
            }
        }
        if failed || (strict && warned) { throw ExitCode.failure }
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
