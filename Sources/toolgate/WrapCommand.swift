import ArgumentParser
import Foundation
import ToolgateCore

/// `toolgate wrap CLIENT_CONFIG` (DESIGN.md section 10): from "my agent uses five MCP servers" to "all five are
/// guarded" in one command. The transformation is `ClientConfigWrap`; this is the files around it: the backup, the
/// servers file, a starter policy, and writes a client reading its config never sees half done.
struct WrapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wrap",
        abstract: "Point a client's MCP servers at toolgate (and --undo it).",
        discussion: """
            Reads a client's MCP config (Claude Desktop, Cursor, Claude Code's .mcp.json: {"mcpServers": …}; VS \
            Code's mcp.json: {"servers": …}), moves every server as written (headers, env and ${ENV} references \
            included) to a servers file for toolgate, and rewrites the config so each server goes through \
            toolgate: an HTTP server to http://LISTEN/mcp/NAME of `toolgate serve --servers`, a stdio server to \
            `toolgate stdio --servers FILE --server NAME`, which the client starts itself. Other keys are kept. \
            The original is kept byte for byte in CLIENT_CONFIG.toolgate-backup; --undo puts it back. Without \
            --policy, toolgate-policy.json next to the config is used, and created denying every tool if absent. \
            Exits 0 when done, 1 when a file is invalid or cannot be written (nothing is changed then), 64 on \
            usage errors.
            """
    )

    static let backupSuffix = ".toolgate-backup"
    static let defaultListen = "127.0.0.1:8931"

    @Argument(help: "The client's MCP config, e.g. claude_desktop_config.json, .cursor/mcp.json, .vscode/mcp.json or .mcp.json.")
    var clientConfig: String
    @Option(help: "HOST:PORT where `toolgate serve` will listen, for HTTP servers' new URLs (default \(defaultListen)).")
    var listen: String?
    @Option(help: "The policy the rewritten servers use (default: toolgate-policy.json next to the config).")
    var policy: String?
    @Option(name: .customLong("servers-file"), help: "Where to write the servers file (default: toolgate-servers.json next to the config).")
    var serversFile: String?
    @Flag(help: "Restore the config from its backup and remove the backup.")
    var undo = false

    func validate() throws {
        if undo, listen != nil || policy != nil || serversFile != nil {
            throw ValidationError("--undo restores the backup and takes no other option")
        }
        if let listen {
            guard let (_, port) = ServeSettings.parseListen(listen), port > 0 else {
                throw ValidationError("--listen must be HOST:PORT with a port from 1 to 65535, got \"\(listen)\"")
            }
        }
        if [".yaml", ".yml"].contains(where: clientConfig.lowercased().hasSuffix) {
            throw ValidationError("\(clientConfig): MCP clients keep their config in JSON; wrap reads and writes JSON only")
        }
    }

    func run() throws {
        if undo { try restore() } else { try wrap() }
    }

    private var backupPath: String { clientConfig + Self.backupSuffix }

    private func wrap() throws {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: backupPath) {
            fail(
                "\(backupPath) exists: \(clientConfig) was wrapped already. Run `toolgate wrap --undo \(ShellQuoting.quote(clientConfig))` to restore it first (or delete the backup if it is stale).")
        }
        let original = read(clientConfig)
        let document: JSONValue
        do {
            document = try JSONParser.parse(original)
        } catch {
            fail("\(clientConfig): \(error.description(in: original))" + (Self.hasComments(original) ? " (comments are not JSON: remove them first)" : ""))
        }
        let directory = Self.absolute((clientConfig as NSString).deletingLastPathComponent)
        let serversPath = Self.absolute(serversFile ?? (directory as NSString).appendingPathComponent("toolgate-servers.json"))
        let policyPath = Self.absolute(policy ?? (directory as NSString).appendingPathComponent("toolgate-policy.json"))
        let listen = self.listen ?? Self.defaultListen
        let binary = Self.executablePath()
        let target = ClientConfigWrap.Target(
            clientFile: clientConfig, listen: listen, toolgateBinary: binary, serversFile: serversPath, policyFile: policyPath)
        let outcome: ClientConfigWrap.Outcome
        do {
            outcome = try ClientConfigWrap.wrap(document, target)
        } catch {
            for problem in error.errors { printError(problem.description) }
            throw ExitCode.failure
        }
        let indent = JSONPrettyWriter.indentation(of: original) ?? "  "
        let clientBytes = JSONPrettyWriter.bytes(outcome.client, indent: indent, trailingNewline: original.last == 0x0A)
        let serversBytes = JSONPrettyWriter.bytes(outcome.servers)

        // Nothing is written until every check passed; the client's file is written last, so a failure before it
        // leaves the client as it was.
        var newServers: [UInt8]? = serversBytes
        if let existing = fileManager.contents(atPath: serversPath) {
            // The same servers (a wrap after an --undo): left as it is.
            guard Array(existing) == serversBytes else {
                fail(
                    "\(serversPath) exists and holds something else than this config's servers; move it away, or name another file with --servers-file")
            }
            newServers = nil
        }
        try finish(outcome, target, clientBytes: clientBytes, serversBytes: newServers, original: original)
    }

    /// Writes the backup, the servers file (when new), a starter policy (when absent) and the client's config, then
    /// says what changed.
    private func finish(
        _ outcome: ClientConfigWrap.Outcome, _ target: ClientConfigWrap.Target, clientBytes: [UInt8], serversBytes: [UInt8]?,
        original: [UInt8]
    ) throws {
        let mode = AtomicFile.mode(of: clientConfig) ?? 0o644
        let policyExists = FileManager.default.fileExists(atPath: target.policyFile)
        do throws(AtomicFile.Failure) {
            try AtomicFile.write(original, to: backupPath, mode: mode)
            do throws(AtomicFile.Failure) {
                // It holds the servers' headers and env, secrets often: the owner's alone.
                if let serversBytes { try AtomicFile.write(serversBytes, to: target.serversFile, mode: 0o600) }
                if !policyExists { try AtomicFile.write(Self.starterPolicy, to: target.policyFile, mode: 0o644) }
                try AtomicFile.write(clientBytes, to: clientConfig, mode: mode)
            } catch {
                unlink(backupPath)
                throw error
            }
        } catch {
            fail(error.description)
        }

        print("wrapped \(clientConfig) (the original is in \(backupPath))")
        for change in outcome.changes {
            let name = change.isRenamed ? "\(change.clientName) (renamed \(change.name): toolgate's names match [a-z0-9][a-z0-9_-]{0,31})" : change.name
            print("  \(name): \(change.before) → \(change.after)\(change.isDisabled ? " (disabled, in both files)" : "")")
        }
        print("servers file: \(target.serversFile)\(serversBytes == nil ? " (unchanged)" : "") (holds the servers' headers and env)")
        if policyExists {
            print("policy: \(target.policyFile) (existing, unchanged)")
        } else {
            print("policy: \(target.policyFile) (new: it denies every tool until you add entries for the tools your agent may call)")
        }
        let check = ShellQuoting.commandLine([target.toolgateBinary, "check", target.policyFile, "--servers", target.serversFile])
        print("check it with: \(check)")
        let http = outcome.changes.filter { !$0.isStdio && !$0.isDisabled }.map(\.name)
        if outcome.needsSidecar {
            let serve = ShellQuoting.commandLine([
                target.toolgateBinary, "serve", "--servers", target.serversFile, "--policy", target.policyFile, "--listen", target.listen,
            ])
            print("start the sidecar for the HTTP servers (\(http.joined(separator: ", "))):")
            print("  \(serve)")
        }
        if outcome.changes.contains(where: \.isStdio) {
            print("the client starts toolgate itself for the stdio servers; restart the client to pick up the change")
        }
    }

    private func restore() throws {
        guard let backup = FileManager.default.contents(atPath: backupPath) else {
            printError("\(clientConfig): no backup to restore (\(backupPath) does not exist): the config is not wrapped")
            throw ExitCode.failure
        }
        let mode = AtomicFile.mode(of: clientConfig) ?? AtomicFile.mode(of: backupPath) ?? 0o644
        do throws(AtomicFile.Failure) {
            try AtomicFile.write(Array(backup), to: clientConfig, mode: mode)
        } catch {
            fail(error.description)
        }
        guard unlink(backupPath) == 0 else {
            fail("\(backupPath): restored \(clientConfig), but cannot remove the backup: \(AtomicFile.reason(errno))")
        }
        print("restored \(clientConfig) from \(backupPath), and removed the backup")
        print("the servers file and policy wrap wrote are left in place (the servers file holds the servers' headers and env)")
    }

    /// Denies everything: inventing a permissive policy would guard nothing while looking like it does.
    static let starterPolicy = Array(
        """
        {
          "version": "1",
          "default": "deny",
          "description": "Written by toolgate wrap. Every tool is denied until an entry under \\"tools\\" (or servers.NAME.tools) allows it; see toolgate check."
        }

        """.utf8)

    private func read(_ path: String) -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            fail("\(path): cannot read file: \(reason)")
        }
    }

    private func fail(_ line: String) -> Never {
        printError(line)
        Toolgate.exit(withError: ExitCode.failure)
    }

    /// Whether a line starts with `//` or `/*`: VS Code's mcp.json allows comments, which JSON does not. (Not any
    /// `//`: every URL has one.)
    static func hasComments(_ bytes: [UInt8]) -> Bool {
        String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline).contains { line in
            let text = line.drop { $0 == " " || $0 == "\t" }
            return text.hasPrefix("//") || text.hasPrefix("/*")
        }
    }

    static func absolute(_ path: String) -> String {
        let base = path.isEmpty ? "." : path
        return URL(fileURLWithPath: base, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
    }

    /// This binary's own path, so a client that starts it for a stdio server needs no PATH.
    static func executablePath() -> String {
        #if os(Linux)
            if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
        #endif
        return Bundle.main.executablePath.map(absolute) ?? absolute(CommandLine.arguments[0])
    }
}
