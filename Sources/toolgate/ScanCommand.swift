import ArgumentParser
import Foundation
import ToolgateCore
import ToolgateServer

/// `toolgate scan`: every tool the agent could call, from every server, classified (DESIGN.md section 11).
struct ScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "List every server's tools with category, risk, confidence and evidence; and their resources and prompts.",
        discussion: """
            Connects to each server as an MCP client (every page of every list) and classifies each tool as read, \
            write, execute, destructive or financial from its annotations, name, description and input schema. \
            Servers are given as `serve` takes them. Exit 1 when a server cannot be listed (the others are still \
            printed).
            """)

    @Option(help: "Servers file (JSON, or YAML for .yaml/.yml), as `serve --servers` reads it.") var servers: String?
    @Option(help: "One MCP endpoint, e.g. http://127.0.0.1:8000/mcp.") var upstream: String?
    @Option(name: .customLong("upstream-command"), help: "One stdio MCP server to start for the scan (run by /bin/sh -c).")
    var upstreamCommand: String?
    @Option(help: "table (default), json or markdown.") var format: String = "table"

    func validate() throws {
        let given = [servers, upstream, upstreamCommand].compactMap { $0 }
        guard given.count == 1 else {
            throw ValidationError("give one of --servers FILE, --upstream URL or --upstream-command CMD")
        }
        guard ["table", "json", "markdown"].contains(format) else {
            throw ValidationError("--format must be table, json or markdown, got \"\(format)\"")
        }
        if let upstream, !(upstream.hasPrefix("http://") || upstream.hasPrefix("https://")) {
            throw ValidationError("--upstream must be an http:// or https:// URL, got \"\(upstream)\"")
        }
    }

    func run() async throws {
        var results: [(String, Result<UpstreamToolCatalog.Inventory, LiveServer.Failure>)] = []
        if let servers {
            switch PolicyFile.loadServers(servers, environment: ProcessInfo.processInfo.environment) {
            case .success(let file):
                for server in file.servers { results.append((server.name, await LiveServer.inventory(of: server))) }
            case .failure(let error):
                for problem in error.errors { printError(problem.description) }
                throw ExitCode.failure
            }
        } else if let upstream {
            results.append((upstream, await LiveServer.inventory(url: upstream)))
        } else if let upstreamCommand {
            let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TOOLGATE_") }
            results.append((
                upstreamCommand,
                await LiveServer.inventory(command: upstreamCommand, environment: environment, startTimeout: .seconds(30), name: "upstream")))
        }
        let report = ScanReport(servers: results.map { name, result in
            switch result {
            case .success(let inventory):
                ScanReport.server(
                    name: name, tools: inventory.tools, resources: inventory.resources, templates: inventory.resourceTemplates,
                    prompts: inventory.prompts)
            case .failure(let failure):
                ScanReport.failed(name: name, error: failure.description)
            }
        })
        switch format {
        case "json": print(String(decoding: JSONPrettyWriter.bytes(report.json), as: UTF8.self), terminator: "")
        case "markdown": print(report.markdown, terminator: "")
        default: print(report.table, terminator: "")
        }
        for server in report.servers where server.error != nil { printError("scan: \(server.name): \(server.error!)") }
        if report.servers.contains(where: { $0.error != nil }) { throw ExitCode.failure }
    }
}
