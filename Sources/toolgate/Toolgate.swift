import ArgumentParser

@main
struct Toolgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "toolgate",
        abstract: "A tool-call policy sidecar for MCP servers.",
        version: ToolgateVersion.current,
        subcommands: [ServeCommand.self, StdioCommand.self, CheckCommand.self, ScanCommand.self, WrapCommand.self, DemoCommand.self, ApprovalsCommand.self, HashTokenCommand.self]
    )
}

enum ToolgateVersion {
    static let current = "0.1.0"
}
