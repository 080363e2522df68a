import Foundation
import Testing

@testable import ToolgateCore

/// `toolgate wrap`'s transformation (DESIGN.md section 10) on a real-looking config of each client: the servers
/// file holds every server as the client wrote it, and the client's file points each at toolgate, the rest kept.
@Suite struct ClientConfigWrapTests {
    static let target = ClientConfigWrap.Target(
        clientFile: "mcp.json", listen: "127.0.0.1:8931", toolgateBinary: "/opt/toolgate/bin/toolgate",
        serversFile: "/home/me/.config/toolgate/servers.json", policyFile: "/home/me/.config/toolgate/policy.json")

    /// Each `wrap/NAME.json` with its two expected outputs, `NAME.client.expected` and `NAME.servers.expected`,
    /// compared byte for byte as the command writes them.
    static let fixtures = ["claude_desktop_config", "cursor_mcp", "vscode_mcp", "claude_code_mcp"]

    func wrap(_ text: String, target: ClientConfigWrap.Target = target) throws -> ClientConfigWrap.Outcome {
        try ClientConfigWrap.wrap(JSONParser.parse(text), target)
    }

    func errors(_ text: String, target: ClientConfigWrap.Target = target) -> [String] {
        do {
            _ = try ClientConfigWrap.wrap(JSONParser.parse(text), target)
            return []
        } catch let error as PolicyValidationError {
            return error.errors.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    @Test(arguments: fixtures)
    func eachClientsConfigIsWrappedAsExpected(name: String) throws {
        let original = try Fixture.bytes("wrap/\(name).json")
        let outcome = try ClientConfigWrap.wrap(JSONParser.parse(original), Self.target)
        let client = JSONPrettyWriter.bytes(outcome.client, indent: JSONPrettyWriter.indentation(of: original) ?? "  ")
        let servers = JSONPrettyWriter.bytes(outcome.servers)
        #expect(String(decoding: client, as: UTF8.self) == String(decoding: try Fixture.bytes("wrap/\(name).client.expected"), as: UTF8.self))
        #expect(String(decoding: servers, as: UTF8.self) == String(decoding: try Fixture.bytes("wrap/\(name).servers.expected"), as: UTF8.self))
    }

    @Test(arguments: fixtures)
    func theServersFileHoldsEachServerAsTheClientWroteIt(name: String) throws {
        let original = try JSONParser.parse(try Fixture.bytes("wrap/\(name).json"))
        let outcome = try ClientConfigWrap.wrap(original, Self.target)
        let key = original["mcpServers"] == nil ? "servers" : "mcpServers"
        let before = try #require(original[key]?.objectValue)
        let after = try #require(outcome.servers[key]?.objectValue)
        #expect(outcome.servers.objectValue?.keys == [key], "only the servers: a client's other keys stay in its file")
        #expect(after.members.count == before.members.count)
        for (old, new) in zip(before.members, after.members) {
            #expect(new.value == old.value, "\(old.key): values as written, ${ENV} references unexpanded")
            #expect(ServerName.isValid(new.key))
        }
        // And toolgate reads it, once the variables it names are set.
        let environment = ["GITHUB_TOKEN": "t", "NOTES_KEY": "k", "SENTRY_TOKEN": "s", "workspaceFolder": "/w"]
        let parsed = try ServersFile.parse(JSONPrettyWriter.bytes(outcome.servers), file: "servers.json", environment: environment)
        let enabled = outcome.changes.filter { !$0.isDisabled }
        #expect(parsed.servers.map(\.name) == enabled.map(\.name))
        #expect(parsed.servers.map(\.isStdio) == enabled.map(\.isStdio))
    }

    @Test func claudeDesktopServersPointAtTheSidecarAndAtToolgateStdio() throws {
        let outcome = try ClientConfigWrap.wrap(JSONParser.parse(try Fixture.bytes("wrap/claude_desktop_config.json")), Self.target)
        let servers = try #require(outcome.client["mcpServers"]?.objectValue)
        #expect(servers["github"] == ["url": "http://127.0.0.1:8931/mcp/github"], "no headers: toolgate adds them upstream")
        #expect(
            servers["filesystem"]
                == [
                    "command": "/opt/toolgate/bin/toolgate",
                    "args": [
                        "stdio", "--servers", "/home/me/.config/toolgate/servers.json", "--server", "filesystem", "--policy",
                        "/home/me/.config/toolgate/policy.json",
                    ],
                ])
        #expect(outcome.client["globalShortcut"] == "Ctrl+Space")
        #expect(outcome.client.objectValue?.keys == ["mcpServers", "globalShortcut"])
        #expect(outcome.needsSidecar)
        #expect(
            outcome.changes == [
                .init(
                    clientName: "github", name: "github", isStdio: false, isDisabled: false, before: "https://api.githubcopilot.com/mcp/",
                    after: "http://127.0.0.1:8931/mcp/github"),
                .init(
                    clientName: "filesystem", name: "filesystem", isStdio: true, isDisabled: false,
                    before: "npx -y @modelcontextprotocol/server-filesystem /Users/me/Desktop '/Users/me/My Documents'",
                    after: "toolgate stdio --server filesystem"),
            ])
    }

    @Test func vsCodeEntriesKeepTheirTypeAndTheClientsOwnKeysInPlace() throws {
        let outcome = try ClientConfigWrap.wrap(JSONParser.parse(try Fixture.bytes("wrap/vscode_mcp.json")), Self.target)
        let servers = try #require(outcome.client["servers"]?.objectValue)
        #expect(servers["memory"]?.objectValue?.keys == ["type", "command", "args", "envFile", "dev"])
        #expect(servers["memory"]?["type"] == "stdio")
        #expect(servers["notes"]?.objectValue?.keys == ["type", "url"])
        #expect(servers["notes"]?["type"] == "http")
        #expect(outcome.client.objectValue?.keys == ["inputs", "servers"])
        #expect(outcome.client["inputs"] == (try JSONParser.parse(try Fixture.bytes("wrap/vscode_mcp.json")))["inputs"])
    }

    @Test func vsCodeHandsItsOwnVariablesToToolgatesEnvironment() throws {
        let outcome = try ClientConfigWrap.wrap(JSONParser.parse(try Fixture.bytes("wrap/vscode_mcp.json")), Self.target)
        #expect(outcome.client["servers"]?["workspace-files"]?["env"] == ["workspaceFolder": "${workspaceFolder}"])
        #expect(outcome.client["servers"]?["memory"]?["env"] == nil, "an envFile stays VS Code's own business")
        let other = try wrap(#"{"mcpServers": {"f": {"command": "x", "args": ["${workspaceFolder}"]}}}"#)
        #expect(other.client["mcpServers"]?["f"]?["env"] == nil, "only VS Code substitutes them")
    }

    @Test func vsCodeEntryWithoutATypeGetsOne() throws {
        let outcome = try wrap(#"{"servers": {"git": {"command": "uvx", "args": ["mcp-server-git"]}}}"#)
        #expect(outcome.client["servers"]?["git"]?.objectValue?.keys == ["type", "command", "args"])
        #expect(outcome.client["servers"]?["git"]?["type"] == "stdio")
    }

    @Test func aNameThatDoesNotFitIsRenamedInBothFiles() throws {
        let outcome = try ClientConfigWrap.wrap(JSONParser.parse(try Fixture.bytes("wrap/cursor_mcp.json")), Self.target)
        #expect(outcome.client["mcpServers"]?.objectValue?.keys == ["linear-issues", "postgres"])
        #expect(outcome.servers["mcpServers"]?.objectValue?.keys == ["linear-issues", "postgres"])
        #expect(outcome.client["mcpServers"]?["linear-issues"]?["url"] == "http://127.0.0.1:8931/mcp/linear-issues")
        #expect(outcome.changes[0].clientName == "Linear Issues" && outcome.changes[0].isRenamed)
        #expect(!outcome.changes[1].isRenamed)
    }

    @Test func aDisabledServerStaysDisabledInBothFilesWithTheClientsKeys() throws {
        let outcome = try ClientConfigWrap.wrap(JSONParser.parse(try Fixture.bytes("wrap/cursor_mcp.json")), Self.target)
        let postgres = try #require(outcome.client["mcpServers"]?["postgres"]?.objectValue)
        #expect(postgres.keys == ["command", "args", "disabled", "autoApprove"])
        #expect(postgres["autoApprove"] == ["query"])
        #expect(outcome.servers["mcpServers"]?["postgres"]?["disabled"] == true)
        #expect(outcome.changes[1].isDisabled)
        #expect(outcome.needsSidecar, "linear-issues is HTTP and enabled")
    }

    @Test func onlyStdioServersNeedNoSidecar() throws {
        let outcome = try wrap(#"{"mcpServers": {"a": {"command": "a"}, "b": {"url": "https://b.example/mcp", "disabled": true}}}"#)
        #expect(!outcome.needsSidecar)
    }

    @Test func claudeCodeTypesAreKeptAndHTTPVariantsStayAsWritten() throws {
        let outcome = try wrap(
            #"{"mcpServers": {"a": {"type": "streamable-http", "url": "https://a.example/mcp"}, "b": {"url": "https://b.example/mcp"}}}"#)
        #expect(outcome.client["mcpServers"]?["a"] == ["type": "streamable-http", "url": "http://127.0.0.1:8931/mcp/a"])
        #expect(outcome.client["mcpServers"]?["b"] == ["url": "http://127.0.0.1:8931/mcp/b"], "no type where the client wrote none")
    }

    @Test func windsurfsServerUrlKeyStaysItsOwn() throws {
        let outcome = try wrap(#"{"mcpServers": {"a": {"serverUrl": "https://a.example/mcp", "headers": {"K": "v"}}}}"#)
        #expect(outcome.client["mcpServers"]?["a"] == ["serverUrl": "http://127.0.0.1:8931/mcp/a"])
    }

    @Test func theOldSSETransportIsRefusedWithServersFilesWords() throws {
        for text in [
            #"{"mcpServers": {"old": {"type": "sse", "url": "https://old.example/mcp"}}}"#,
            #"{"mcpServers": {"old": {"url": "https://old.example/sse"}}}"#,
            #"{"mcpServers": {"old": {"url": "https://old.example/sse", "disabled": true}}}"#,
        ] {
            let wrapErrors = errors(text)
            var undisabled = try JSONParser.parse(text).objectValue!
            var old = undisabled["mcpServers"]!["old"]!.objectValue!
            old["disabled"] = nil
            undisabled["mcpServers"] = ["old": .object(old)]
            var serversFileErrors: [String] = []
            do {
                _ = try ServersFile.parse(JSONWriter.bytes(.object(undisabled)), file: "mcp.json", environment: [:])
            } catch {
                serversFileErrors = error.errors.map(\.description)
            }
            #expect(wrapErrors.count == 1 && wrapErrors == serversFileErrors, "\(text)")
            #expect(wrapErrors.first?.contains("old HTTP+SSE transport") == true)
        }
    }

    @Test func renamedServersErrorsCarryTheClientsName() {
        #expect(
            errors(#"{"mcpServers": {"Old One": {"type": "sse", "url": "https://old.example/x"}}}"#)
                == [
                    #"mcp.json: mcpServers["Old One"].type: server "old-one" uses the old HTTP+SSE transport, which toolgate does not speak; point it at the server's Streamable HTTP endpoint (often /mcp) with "type": "http""#
                ])
    }

    @Test func namesThatCollideAfterRenamingAreAnError() {
        #expect(
            errors(#"{"mcpServers": {"my-server": {"command": "a"}, "My Server": {"command": "b"}}}"#)
                == [#"mcp.json: mcpServers["My Server"]: server "My Server" would be named "my-server" in toolgate, as server "my-server" is; rename one of them"#])
        #expect(errors(#"{"mcpServers": {"✨": {"command": "a"}}}"#).first?.contains("has no letter or digit") == true)
    }

    @Test func aConfigThatAlreadyGoesThroughToolgateIsRefused() {
        let stdio = errors(#"{"mcpServers": {"f": {"command": "/usr/bin/toolgate", "args": ["stdio", "--server", "f"]}}}"#)
        #expect(stdio.count == 1 && stdio[0].hasPrefix("mcp.json: mcpServers.f.command: already goes through toolgate"))
        #expect(stdio[0].contains("toolgate wrap --undo mcp.json"))
        let http = errors(#"{"mcpServers": {"g": {"url": "http://127.0.0.1:8931/mcp/g"}}}"#)
        #expect(http.count == 1 && http[0].hasPrefix("mcp.json: mcpServers.g.url: already goes through toolgate"))
        #expect(errors(#"{"mcpServers": {"g": {"url": "http://127.0.0.1:8932/mcp/g"}}}"#).isEmpty, "another server on another port")
    }

    @Test func unsetVariablesAreLeftForServeButVSCodeInputsAreRefused() {
        #expect(errors(#"{"mcpServers": {"g": {"url": "${GITLAB_URL}", "headers": {"A": "Bearer ${UNSET_TOKEN}"}}}}"#).isEmpty)
        let input = errors(#"{"servers": {"g": {"type": "http", "url": "https://g.example/mcp", "headers": {"A": "${input:token}"}}}}"#)
        #expect(input.count == 1 && input[0].hasPrefix("mcp.json: servers.g.headers.A: ${input:token} asks a person for a value"))
    }

    @Test func badShapesAreErrorsWithPaths() {
        #expect(errors(#"[]"#) == [#"mcp.json: must be an object with "mcpServers" (Claude Desktop, Cursor, Claude Code) or "servers" (VS Code), got array"#])
        #expect(errors(#"{"other": {}}"#).first?.hasPrefix("mcp.json: has no \"mcpServers\"") == true)
        #expect(errors(#"{"mcpServers": {}}"#) == ["mcp.json: mcpServers: names no server: nothing to wrap"])
        #expect(errors(#"{"mcpServers": {"a": {"url": "ftp://a"}}}"#) == [#"mcp.json: mcpServers.a.url: must be an http:// or https:// URL, got "ftp://a""#])
        #expect(errors(#"{"mcpServers": {"a": {}}}"#) == [#"mcp.json: mcpServers.a: has neither "url" (an HTTP server) nor "command" (a stdio server)"#])
        #expect(errors(#"{"mcpServers": {"a": 3}}"#) == ["mcp.json: mcpServers.a: must be an object, got number"])
    }
}

/// The writer `wrap` uses for files people edit.
@Suite struct JSONPrettyWriterTests {
    @Test func writesOneMemberPerLineAndShortScalarArraysInline() {
        let value: JSONValue = ["a": ["x", 1, true, nil], "b": [:], "c": [], "d": ["e": [["f": "g"]]]]
        let text = String(decoding: JSONPrettyWriter.bytes(value), as: UTF8.self)
        #expect(
            text == """
                {
                  "a": ["x", 1, true, null],
                  "b": {},
                  "c": [],
                  "d": {
                    "e": [
                      {
                        "f": "g"
                      }
                    ]
                  }
                }

                """)
    }

    @Test func longArraysBreakAndTheResultParsesBackToTheSameValue() throws {
        let long = JSONValue.array((0..<30).map { .string("argument-\($0)") })
        let value: JSONValue = ["args": long, "s": "quote \" and \\ and \n and é"]
        let bytes = JSONPrettyWriter.bytes(value, indent: "\t", trailingNewline: false)
        #expect(bytes.last != 0x0A)
        #expect(String(decoding: bytes, as: UTF8.self).contains("\n\t\t\"argument-0\",\n"))
        #expect(try JSONParser.parse(bytes) == value)
    }

    @Test func indentationIsReadFromTheFirstIndentedLine() {
        #expect(JSONPrettyWriter.indentation(of: Array("{\n    \"a\": 1\n}".utf8)) == "    ")
        #expect(JSONPrettyWriter.indentation(of: Array("{\n\n\t\"a\": 1\n}".utf8)) == "\t")
        #expect(JSONPrettyWriter.indentation(of: Array("{\"a\": 1}".utf8)) == nil)
    }
}

@Suite struct ShellQuotingTests {
    @Test func plainWordsStayAndOthersAreSingleQuoted() {
        #expect(ShellQuoting.quote("/usr/bin/toolgate") == "/usr/bin/toolgate")
        #expect(ShellQuoting.quote("127.0.0.1:8931") == "127.0.0.1:8931")
        #expect(ShellQuoting.quote("/Users/me/Library/Application Support/x.json") == "'/Users/me/Library/Application Support/x.json'")
        #expect(ShellQuoting.quote("") == "''")
        #expect(ShellQuoting.quote("it's") == #"'it'\''s'"#)
        #expect(ShellQuoting.quote("$(id)") == "'$(id)'")
        // A quote with a combining mark after it is one Character but still a quote to the shell.
        #expect(ShellQuoting.quote("a'\u{301}b") == "'a'\\''\u{301}b'")
    }

    @Test func aQuotedCommandLineRunsAsTheArgvItCameFrom() throws {
        let words = ["printf", "%s|", "a b", "it's", "$HOME", "`id`", "x\"y", "a'\u{301}b", ""]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", ShellQuoting.commandLine(words)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(String(decoding: output, as: UTF8.self) == words.dropFirst(2).map { $0 + "|" }.joined())
    }
}

/// `check --servers`: a policy section naming no server of the file.
@Suite struct PolicyServerSectionsTests {
    @Test func aSectionForAnUnknownServerIsAnErrorWithADidYouMean() throws {
        let policy = try Policy.parse(
            #"{"version": "1", "servers": {"github": {}, "gitlab": {}, "fils": {}, "zzz": {}}}"#, file: "policy.json")
        let servers = try ServersFile.parse(
            Array(#"{"mcpServers": {"github": {"url": "https://g.example/mcp"}, "files": {"command": "x"}}}"#.utf8), file: "s.json",
            environment: [:])
        #expect(
            PolicyServerSections.errors(policy: policy, policyFile: "policy.json", servers: servers, serversFile: "servers.json").map(\.description)
                == [
                    #"policy.json: servers.fils: no server "fils" in servers.json (did you mean "files"?) (servers: github, files)"#,
                    #"policy.json: servers.gitlab: no server "gitlab" in servers.json (did you mean "github"?) (servers: github, files)"#,
                    #"policy.json: servers.zzz: no server "zzz" in servers.json (servers: github, files)"#,
                ])
    }
}
