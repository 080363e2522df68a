import ArgumentParser
import ToolgateServer

/// `toolgate stdio`: an MCP client launches toolgate as its server, and toolgate enforces the policy in front of
/// the real one.
struct StdioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stdio",
        abstract: "Speak MCP on stdin/stdout to one client, enforcing the policy in front of an upstream MCP server.",
        discussion: """
            An MCP client launches `toolgate stdio --policy FILE --upstream URL` (or `--servers FILE --server NAME`, \
            one server of a servers file, as `toolgate wrap` writes it; or `--servers FILE` alone: every server of \
            the file as one, tools and prompts named SERVER__NAME) as its server. Every message is the \
            grant's named by --grant (default "default"); the process is one session. stdout carries protocol \
            messages only; logs go to stderr. It exits 0 when stdin closes, after the messages in flight are \
            answered; on SIGTERM/SIGINT it exits 0 once nothing is in flight (at most --drain-timeout). Requests run \
            concurrently; nothing overtakes initialize, and a notification is sent after the requests written \
            before it. The flags below are all it takes; `serve`'s HTTP-front flags (--listen, --grants, \
            --admin-token-file, --admin-listen, --allowed-origin, --allowed-host, --max-connections, \
            --client-idle-timeout) do not apply, and --audit-log needs a file (stdout is the protocol's). \
            /metrics needs --metrics-listen. Every flag also reads from TOOLGATE_<FLAG> (e.g. TOOLGATE_POLICY).
            """
    )

    @OptionGroup var options: ServeOptions
    @Option(help: "The grant every message counts against (default \"default\").") var grant: String?
    @Option(help: "With --servers FILE: the server of the file this client talks to (its section of the policy applies).")
    var server: String?
    /// `serve`'s HTTP-front flags: parsed only to refuse them by name, and left out of this command's help.
    @OptionGroup(visibility: .private) var refused: ListenerOptions

    func run() async throws {
        let environment = EnvironmentOptions()
        var settings: ServeSettings
        do throws(ServeSettings.Failure) {
            // The command line refuses every HTTP-front flag; of their variables, those that would change who the
            // client is or where toolgate listens (a stray TOOLGATE_ALLOWED_ORIGIN changes nothing here).
            let variables = ["listen", "grants", "admin-token-file", "admin-listen"].filter { environment.value(nil, flag: $0) != nil }
            if let flag = refused.given.first ?? variables.first {
                throw ServeSettings.Failure(
                    lines: [
                        "toolgate stdio: --\(flag) does not apply: the client is on stdin/stdout"
                            + (flag == "grants" ? " (use --grant to name its grant)" : "")
                    ],
                    exitCode: 64)
            }
            settings = try ServeSettings(
                options, listener: nil, environment: environment, commandName: "stdio",
                serverSelection: environment.value(server, flag: "server"))
            if settings.auditLogPath == "-" {
                throw ServeSettings.Failure(
                    lines: ["toolgate stdio: --audit-log - would mix audit lines into the protocol on stdout; give a file"], exitCode: 64)
            }
        } catch {
            for line in error.lines { printError(line) }
            throw ExitCode(error.exitCode)
        }
        let grant = environment.value(grant, flag: "grant") ?? ServerConfiguration.defaultGrant
        guard !grant.isEmpty else {
            printError("toolgate stdio: --grant needs a name")
            throw ExitCode(64)
        }
        settings.server.fixedGrant = grant
        for index in settings.namedServers.indices { settings.namedServers[index].configuration.fixedGrant = grant }
        try await ToolgateProcess.run(settings, command: "stdio")
    }
}
