import Foundation
import Testing

/// `toolgate wrap` on files, as a user runs it: the backup, the servers file, the starter policy, what it prints,
/// the refusals, and `--undo` back to the original byte for byte.
@Suite struct WrapCommandTests {
    static let claudeDesktop = """
        {
            "mcpServers": {
                "github": {"url": "https://api.example.com/mcp", "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"}},
                "My Files": {"command": "npx", "args": ["-y", "some-filesystem-server", "/srv"], "env": {"LOG": "warn"}}
            },
            "globalShortcut": ""
        }
        """

    /// A fresh directory holding `name` with `text`, its mode set.
    func directory(with text: String, name: String = "claude_desktop_config.json", mode: Int = 0o640) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("toolgate-wrap-\(UUID().uuidString)/Application Support")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file.path)
        return directory
    }

    func mode(_ url: URL) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    func json(_ url: URL) throws -> Any {
        try JSONSerialization.jsonObject(with: try Data(contentsOf: url))
    }

    @Test func wrapsThenUndoesByteForByte() throws {
        let directory = try directory(with: Self.claudeDesktop)
        defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
        let config = directory.appendingPathComponent("claude_desktop_config.json")
        let original = try Data(contentsOf: config)

        let wrapped = try ToolgateProcess.run(["wrap", "claude_desktop_config.json"], in: directory)
        #expect(wrapped.status == 0, "\(wrapped.stderr)")
        #expect(try Data(contentsOf: directory.appendingPathComponent("claude_desktop_config.json.toolgate-backup")) == original)
        #expect(try mode(config) == 0o640, "the client's file keeps its permissions")
        #expect(try mode(directory.appendingPathComponent("claude_desktop_config.json.toolgate-backup")) == 0o640)

        let servers = directory.appendingPathComponent("toolgate-servers.json")
        let policy = directory.appendingPathComponent("toolgate-policy.json")
        #expect(try mode(servers) == 0o600, "it holds the headers and env")
        let serversFile = try #require(try json(servers) as? [String: Any])
        let moved = try #require(serversFile["mcpServers"] as? [String: [String: Any]])
        #expect(Set(moved.keys) == ["github", "my-files"])
        #expect((moved["github"]?["headers"] as? [String: String]) == ["Authorization": "Bearer ${GITHUB_TOKEN}"], "unexpanded")
        #expect((moved["my-files"]?["env"] as? [String: String]) == ["LOG": "warn"])

        let client = try #require(try json(config) as? [String: Any])
        #expect(client["globalShortcut"] as? String == "")
        let entries = try #require(client["mcpServers"] as? [String: [String: Any]])
        #expect(entries["github"]?.count == 1)
        #expect(entries["github"]?["url"] as? String == "http://127.0.0.1:8931/mcp/github")
        let files = try #require(entries["my-files"])
        #expect(files["command"] as? String == ToolgateProcess.binary.resolvingSymlinksInPath().path)
        #expect(
            files["args"] as? [String]
                == ["stdio", "--servers", servers.path, "--server", "my-files", "--policy", policy.path])
        #expect(String(decoding: try Data(contentsOf: config), as: UTF8.self).hasPrefix("{\n    \"mcpServers\": {\n        \"github\": {\n"), "indented as it was")

        // The starter policy denies everything and says so; `check` accepts it with the servers file.
        let starter = try #require(try json(policy) as? [String: Any])
        #expect(starter["default"] as? String == "deny")
        #expect(starter["tools"] == nil)
        #expect(wrapped.stdout.contains("denies every tool"))
        #expect(wrapped.stdout.contains("  github: https://api.example.com/mcp → http://127.0.0.1:8931/mcp/github\n"))
        #expect(wrapped.stdout.contains("  My Files (renamed my-files: "))
        #expect(wrapped.stdout.contains("npx -y some-filesystem-server /srv → toolgate stdio --server my-files\n"))
        let serveLine = "  \(ToolgateProcess.binary.resolvingSymlinksInPath().path) serve --servers '\(servers.path)' --policy '\(policy.path)' --listen 127.0.0.1:8931\n"
        #expect(wrapped.stdout.contains(serveLine), "\(wrapped.stdout)")

        let again = try ToolgateProcess.run(["wrap", "claude_desktop_config.json"], in: directory)
        #expect(again.status == 1)
        #expect(again.stderr.contains("was wrapped already") && again.stderr.contains("--undo"))

        let undone = try ToolgateProcess.run(["wrap", "--undo", "claude_desktop_config.json"], in: directory)
        #expect(undone.status == 0, "\(undone.stderr)")
        #expect(try Data(contentsOf: config) == original)
        #expect(try mode(config) == 0o640)
        #expect(!FileManager.default.fileExists(atPath: config.path + ".toolgate-backup"))

        let twice = try ToolgateProcess.run(["wrap", "--undo", "claude_desktop_config.json"], in: directory)
        #expect(twice.status == 1)
        #expect(twice.stderr.contains("no backup to restore"))

        // Wrapped again after the undo: the same servers file is no obstacle.
        let rewrapped = try ToolgateProcess.run(["wrap", "claude_desktop_config.json"], in: directory)
        #expect(rewrapped.status == 0, "\(rewrapped.stderr)")
        #expect(rewrapped.stdout.contains("(unchanged)"))
    }

    @Test func aConfigPointingAtToolgateIsRefusedEvenWithoutABackup() throws {
        let directory = try directory(with: Self.claudeDesktop)
        defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
        let config = directory.appendingPathComponent("claude_desktop_config.json")
        #expect(try ToolgateProcess.run(["wrap", config.path]).status == 0)
        try FileManager.default.removeItem(atPath: config.path + ".toolgate-backup")
        let wrapped = try Data(contentsOf: config)
        let again = try ToolgateProcess.run(["wrap", config.path, "--servers-file", directory.appendingPathComponent("other.json").path])
        #expect(again.status == 1)
        #expect(again.stderr.contains("mcpServers.github.url: already goes through toolgate"), "\(again.stderr)")
        #expect(again.stderr.contains("mcpServers.my-files.command: already goes through toolgate"))
        #expect(try Data(contentsOf: config) == wrapped)
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("other.json").path))
    }

    @Test func theOldSSETransportIsRefusedAndNothingIsWritten() throws {
        let text = #"{"mcpServers": {"old": {"url": "https://old.example.com/sse"}, "ok": {"command": "x"}}}"#
        let directory = try directory(with: text, name: "mcp.json")
        defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
        let result = try ToolgateProcess.run(["wrap", "mcp.json"], in: directory)
        #expect(result.status == 1)
        #expect(
            result.stderr
                == "mcp.json: mcpServers.old.url: server \"old\" looks like the old HTTP+SSE transport (its URL ends in /sse), which toolgate does not speak; use the server's Streamable HTTP endpoint (often /mcp), or add \"type\": \"http\" if this URL is one\n"
        )
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["mcp.json"])
        #expect(String(decoding: try Data(contentsOf: directory.appendingPathComponent("mcp.json")), as: UTF8.self) == text)
    }

    @Test func anExistingPolicyIsKeptAndOptionsNameTheFiles() throws {
        let text = #"{"servers": {"notes": {"type": "http", "url": "https://notes.example/mcp"}}}"#
        let directory = try directory(with: text, name: "mcp.json", mode: 0o600)
        defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
        let policy = directory.appendingPathComponent("mine.json")
        try Data(#"{"version": "1", "default": "allow"}"#.utf8).write(to: policy)
        let result = try ToolgateProcess.run(
            ["wrap", "mcp.json", "--policy", "mine.json", "--servers-file", "sub/../servers.json", "--listen", "127.0.0.1:9000"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(String(decoding: try Data(contentsOf: policy), as: UTF8.self) == #"{"version": "1", "default": "allow"}"#)
        #expect(result.stdout.contains("(existing, unchanged)"))
        let rewritten = """
            {
              "servers": {
                "notes": {
                  "type": "http",
                  "url": "http://127.0.0.1:9000/mcp/notes"
                }
              }
            }
            """
        #expect(
            String(decoding: try Data(contentsOf: directory.appendingPathComponent("mcp.json")), as: UTF8.self) == rewritten,
            "one line in, pretty out; no trailing newline where there was none")
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("servers.json").path))
        #expect(try mode(directory.appendingPathComponent("mcp.json")) == 0o600)
    }

    @Test func aDifferentServersFileIsNotOverwritten() throws {
        let directory = try directory(with: Self.claudeDesktop)
        defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
        try Data("{}".utf8).write(to: directory.appendingPathComponent("toolgate-servers.json"))
        let original = try Data(contentsOf: directory.appendingPathComponent("claude_desktop_config.json"))
        let result = try ToolgateProcess.run(["wrap", "claude_desktop_config.json"], in: directory)
        #expect(result.status == 1)
        #expect(result.stderr.contains("toolgate-servers.json exists and holds something else"))
        #expect(try Data(contentsOf: directory.appendingPathComponent("claude_desktop_config.json")) == original)
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("claude_desktop_config.json.toolgate-backup").path))
    }

    @Test func badInputIsAnErrorWithTheFile() throws {
        let directory = try directory(with: "{\n  // my servers\n  \"mcpServers\": {}\n}", name: "mcp.json")
        defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
        let result = try ToolgateProcess.run(["wrap", "mcp.json"], in: directory)
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("mcp.json: ") && result.stderr.contains("comments are not JSON"), "\(result.stderr)")
        try Data(#"{"mcpServers": {"a": {"url": "https://a.example/mcp"},}}"#.utf8).write(to: directory.appendingPathComponent("comma.json"))
        let comma = try ToolgateProcess.run(["wrap", "comma.json"], in: directory)
        #expect(comma.status == 1)
        #expect(comma.stderr.hasPrefix("comma.json: ") && !comma.stderr.contains("comments"), "a URL's // is no comment: \(comma.stderr)")
        let missing = try ToolgateProcess.run(["wrap", "absent.json"], in: directory)
        #expect(missing.status == 1)
        #expect(missing.stderr.hasPrefix("absent.json: cannot read file"))
    }

    @Test func usageErrorsExit64() throws {
        for arguments in [
            ["wrap"], ["wrap", "mcp.json", "--undo", "--listen", "127.0.0.1:1"], ["wrap", "mcp.json", "--listen", "nowhere"],
            ["wrap", "mcp.json", "--listen", "127.0.0.1:0"], ["wrap", "mcp.yaml"],
        ] {
            let result = try ToolgateProcess.run(arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
        }
    }
}
