import Foundation
import Testing

/// `toolgate check POLICY --servers FILE [--live]` (DESIGN.md section 10): the servers file validated too, policy
/// sections held against its names, and with --live each server's rules against the tools it lists.
@Suite struct CheckServersTests {
    /// A fresh directory with the given files.
    func directory(_ files: [String: String]) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("toolgate-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, text) in files { try Data(text.utf8).write(to: directory.appendingPathComponent(name)) }
        return directory
    }

    static let servers = #"""
        {"mcpServers": {
          "github": {"url": "https://api.example.com/mcp", "autoApprove": ["x"]},
          "files": {"command": "npx", "args": ["-y", "fs"]}},
         "globalShortcut": ""}
        """#

    @Test func aValidServersFileAndPolicyPassWithTheFilesNotes() throws {
        let directory = try directory([
            "servers.json": Self.servers,
            "policy.json": #"{"version": "1", "default": "allow", "servers": {"github": {"default": "deny"}}}"#,
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try ToolgateProcess.run(["check", "policy.json", "--servers", "servers.json"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout.split(separator: "\n").map(String.init) == [
                "servers.json: ok (2 servers: github (http), files (stdio))",
                "policy.json: ok (0 tool entries, 1 server section, default allow, sha256 \(try sha256(directory.appendingPathComponent("policy.json"))))",
            ])
        #expect(
            result.stderr.split(separator: "\n").map(String.init) == [
                "note: servers.json: globalShortcut: not used by toolgate; ignored",
                "note: servers.json: mcpServers.github.autoApprove: not used by toolgate; ignored",
            ])
    }

    @Test func aSectionNamingNoServerOfTheFileIsAnError() throws {
        let directory = try directory([
            "servers.json": Self.servers,
            "policy.json": #"{"version": "1", "default": "allow", "servers": {"gitlab": {}, "files": {}}}"#,
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try ToolgateProcess.run(["check", "policy.json", "--servers", "servers.json"], in: directory)
        #expect(result.status == 1)
        #expect(result.stderr.contains(#"policy.json: servers.gitlab: no server "gitlab" in servers.json (did you mean "github"?) (servers: github, files)"#))
        #expect(!result.stdout.contains("policy.json: ok"))
        // Without --servers the same policy is valid: a section alone names nothing to check against.
        #expect(try ToolgateProcess.run(["check", "policy.json"], in: directory).status == 0)
    }

    @Test func anInvalidServersFileFailsWithItsPaths() throws {
        let directory = try directory([
            "servers.json": #"{"mcpServers": {"old": {"url": "https://x.example/sse"}, "gh": {"url": "https://x.example/mcp", "headers": {"A": "${TOOLGATE_CHECK_TEST_UNSET}"}}}}"#,
            "policy.json": #"{"version": "1"}"#,
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try ToolgateProcess.run(["check", "policy.json", "--servers", "servers.json"], in: directory)
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("servers.json: mcpServers.old.url: server \"old\" looks like the old HTTP+SSE transport") })
        #expect(lines.contains("servers.json: mcpServers.gh.headers.A: environment variable TOOLGATE_CHECK_TEST_UNSET is not set (used in \"${TOOLGATE_CHECK_TEST_UNSET}\")"))
        let missing = try ToolgateProcess.run(["check", "policy.json", "--servers", "absent.json"], in: directory)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("absent.json: cannot read file"))
    }

    @Test func usageErrors() throws {
        let both = try ToolgateProcess.run(["check", "examples/policy.json", "--servers", "s.json", "--upstream", "http://127.0.0.1:1/mcp"])
        #expect(both.status == 64)
        #expect(both.stderr.contains("with --servers, add --live"))
        let live = try ToolgateProcess.run(["check", "examples/policy.json", "--live"])
        #expect(live.status == 64)
        #expect(live.stderr.contains("--live needs --servers"))
    }

    /// A stdio MCP server in a few lines of sh: answers initialize and lists one tool, `read_file`.
    static let stdioServer = #"""
        while IFS= read -r line; do
          id=$(printf '%s\n' "$line" | sed -n 's/.*"id":\("[^"]*"\|-\{0,1\}[0-9][0-9]*\).*/\1/p')
          case "$line" in
            *'"method":"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"sh","version":"1"}}}\n' "$id" ;;
            *'"method":"tools/list"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"read_file","inputSchema":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}]}}\n' "$id" ;;
            *'"id":'*) printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"not here"}}\n' "$id" ;;
          esac
        done
        """#

    @Test func liveHoldsEachServersRulesAgainstItsOwnTools() throws {
        let upstream = try ExampleUpstream.start()
        defer { upstream.stop() }
        let policy = #"""
            {"version": "1", "default": "deny", "tools": {"echo": {}, "imageBackgroundRemoval": {}, "shell_exec": {}, "delete_repository": {"action": "deny"}},
             "servers": {"files": {"tools": {"read_fil": {}}}}}
            """#
        let directory = try directory(["policy.json": policy, "server.sh": Self.stdioServer])
        defer { try? FileManager.default.removeItem(at: directory) }
        let servers = #"{"mcpServers": {"example": {"url": "\#(upstream.url)", "headers": {"X-Test": "1"}}, "files": {"command": "/bin/sh", "args": ["\#(directory.appendingPathComponent("server.sh").path)"], "cwd": "/"}}}"#
        try Data(servers.utf8).write(to: directory.appendingPathComponent("servers.json"))

        let result = try ToolgateProcess.run(["check", "policy.json", "--servers", "servers.json", "--live"], in: directory)
        #expect(result.status == 0, "warnings alone do not fail without --strict: \(result.stderr)")
        #expect(result.stdout.contains("policy.json: covers server example's 4 tools\n"), "\(result.stdout)")
        #expect(
            result.stderr.split(separator: "\n").map(String.init) == [
                #"policy.json: note: no "resources" section, so resources (and, without a "prompts" section, prompts) pass through unchecked: "default": "deny" covers tools only"#,
                #"warning: files: policy.json: servers.files.tools.read_fil: the upstream has no tool "read_fil" (did you mean "read_file"?)"#,
                #"warning: files: policy.json: servers.files: no entry covers the upstream's tools "read_file"; default deny hides them"#,
            ])
        let strict = try ToolgateProcess.run(["check", "policy.json", "--servers", "servers.json", "--live", "--strict"], in: directory)
        #expect(strict.status == 1)
    }

    @Test func liveFailsWhenAServerCannotBeReached() throws {
        let directory = try directory([
            "policy.json": #"{"version": "1", "default": "allow"}"#,
            "servers.json": #"{"mcpServers": {"gone": {"url": "http://127.0.0.1:9/mcp"}, "broken": {"command": "/bin/false"}}}"#,
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try ToolgateProcess.run(["check", "policy.json", "--servers", "servers.json", "--live"], in: directory)
        #expect(result.status == 1)
        #expect(result.stderr.contains("check: gone: cannot reach http://127.0.0.1:9/mcp"), "\(result.stderr)")
        #expect(result.stderr.contains("check: broken: its command did not start"), "\(result.stderr)")
    }

    func sha256(_ url: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [url.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(String(decoding: output, as: UTF8.self).prefix(64))
    }
}

/// The `example-upstream` binary SwiftPM builds beside toolgate, on a free port.
struct ExampleUpstream {
    let process: Process
    let url: String

    static func start() throws -> ExampleUpstream {
        let process = Process()
        process.executableURL = ToolgateProcess.binary.deletingLastPathComponent().appendingPathComponent("example-upstream")
        process.arguments = ["0"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        // It prints "listening on HOST:PORT" once bound.
        var line: [UInt8] = []
        while !line.contains(0x0A) {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("listening on ") else {
            process.terminate()
            throw ExampleUpstreamFailure(description: "example-upstream said \"\(text)\"")
        }
        return ExampleUpstream(process: process, url: "http://\(text.dropFirst("listening on ".count))/mcp")
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }

    struct ExampleUpstreamFailure: Error, CustomStringConvertible {
        let description: String
    }
}
