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
    @Option(help: "A servers file (as `serve --servers` reads it) to validate and hold the policies' servers.NAME sections against.")
    var servers: String?
    @Flag(help: "With --servers: hold each server's rules against the tools it lists (stdio servers are started for it).")
    var live = false
    @Flag(help: "Exit 1 when --upstream or --live finds anything to warn about.") var strict = false

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one policy file") }
        if servers != nil, upstream != nil {
            throw ValidationError("--upstream checks one unnamed server; with --servers, add --live to check every server of the file")
        }
        if live, servers == nil { throw ValidationError("--live needs --servers FILE (for one server, use --upstream URL)") }
    }

    func run() async throws {
        var failed = false
        var warned = false
        var tools: [PolicyCoverage.UpstreamTool]?
        if let upstream {
            let transport = LiveServer.httpTransport()
            defer { transport.shutdown() }
            do {
                tools = try await UpstreamToolCatalog.fetch(transport: transport, url: upstream)
            } catch {
                printError("check: \(error.description)")
                throw ExitCode.failure
            }
        }
        var serversFile: ServersFile?
        if let servers {
            serversFile = Self.loadServers(servers)
            failed = serversFile == nil
        }
        var catalogs: [String: [PolicyCoverage.UpstreamTool]] = [:]
        if live, let serversFile {
            for server in serversFile.servers {
                switch await Self.fetchTools(of: server) {
                case .success(let list): catalogs[server.name] = list
                case .failure(let error):
                    printError("check: \(server.name): \(error.description)")
                    failed = true
                }
            }
        }
        for file in files {
            switch PolicyFile.load(file) {
            case .success(let policy):
                let count = policy.entries.count + (policy.wildcard == nil ? 0 : 1)
                let sections = policy.sections.isEmpty ? "" : ", \(policy.sections.count) server section\(policy.sections.count == 1 ? "" : "s")"
                if policy.defaultAction == .deny, policy.resources == nil {
                    printError("\(file): note: no \"resources\" section, so resources (and, without a \"prompts\" section, prompts) pass through unchecked: \"default\": \"deny\" covers tools only")
                }
                if let servers, let serversFile {
                    let errors = PolicyServerSections.errors(policy: policy, policyFile: file, servers: serversFile, serversFile: servers)
                    for problem in errors { printError(problem.description) }
                    if !errors.isEmpty {
                        failed = true
                        continue
                    }
                }
                print("\(file): ok (\(count) tool \(count == 1 ? "entry" : "entries")\(sections), default \(policy.defaultAction.rawValue), sha256 \(policy.sha256))")
                if let tools {
                    let warnings = PolicyCoverage.warnings(policy: policy, file: file, tools: tools)
                    for warning in warnings { printError("warning: " + warning) }
                    if warnings.isEmpty { print("\(file): covers the upstream's \(tools.count) tools") }
                    warned = warned || !warnings.isEmpty
                }
                for server in serversFile?.servers ?? [] {
                    guard let tools = catalogs[server.name] else { continue }
                    let section = policy.sections[server.name] == nil ? nil : server.name
                    let warnings = PolicyCoverage.warnings(policy: policy.forServer(server.name), file: file, section: section, tools: tools)
                    for warning in warnings { printError("warning: \(server.name): " + warning) }
                    if warnings.isEmpty { print("\(file): covers server \(server.name)'s \(tools.count) tools") }
                    warned = warned || !warnings.isEmpty
                }
            case .failure(let error):
                failed = true
                for problem in error.errors { printError(problem.description) }
            }
        }
        if failed || (strict && warned) { throw ExitCode.failure }
    }

    /// The servers file as `serve` reads it (`${ENV}` from this environment): its errors and notes printed; nil when
    /// it is invalid.
    static func loadServers(_ path: String) -> ServersFile? {
        switch PolicyFile.loadServers(path, environment: ProcessInfo.processInfo.environment) {
        case .success(let file):
            for note in file.notes { printError("note: " + note) }
            let list = file.servers.map { "\($0.name) (\($0.isStdio ? "stdio" : "http"))" }.joined(separator: ", ")
            print("\(path): ok (\(file.servers.count) server\(file.servers.count == 1 ? "" : "s"): \(list))")
            return file
        case .failure(let error):
            for problem in error.errors { printError(problem.description) }
            return nil
        }
    }

    /// The tools one server lists (`LiveServer`).
    static func fetchTools(of server: ServerDefinition) async -> Result<[PolicyCoverage.UpstreamTool], LiveCheckFailure> {
        switch await LiveServer.inventory(of: server, lists: [.tools]) {
        case .success(let inventory):
            return .success(inventory.tools.compactMap { tool in
                tool["name"]?.stringValue.map { PolicyCoverage.UpstreamTool(name: $0, inputSchema: tool["inputSchema"]) }
            })
        case .failure(let failure):
            return .failure(LiveCheckFailure(description: failure.description))
        }
    }

    struct LiveCheckFailure: Error, CustomStringConvertible {
        let description: String
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
