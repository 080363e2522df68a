import Testing
@testable import ToolgateCore

/// The servers file (DESIGN.md section 10) in each client's shape, and every way one can be wrong.
@Suite struct ServersFileTests {
    let environment = ["GITHUB_TOKEN": "ghp_secret", "ROOT": "/srv"]

    func parse(_ text: String, file: String = "servers.json") throws(PolicyValidationError) -> ServersFile {
        try ServersFile.parse(Array(text.utf8), file: file, environment: environment)
    }

    func errors(_ text: String, file: String = "servers.json") -> [String] {
        do {
            _ = try parse(text, file: file)
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test func claudeDesktopShapeWithHTTPAndStdioServers() throws {
        let file = try parse(
            #"""
            {"mcpServers": {
               "github":  {"url": "https://api.example.com/mcp", "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"}},
               "files":   {"command": "npx", "args": ["-y", "some-filesystem-server", "${ROOT}"], "env": {"LOG": "warn"}},
               "runware": {"url": "https://mcp.example.com/mcp", "toolgate": {"headersTimeout": "600s", "maxConnections": 64}}}}
            """#)
        #expect(file.servers.map(\.name) == ["github", "files", "runware"], "file order is kept")
        #expect(
            file.servers[0].transport
                == .http(url: "https://api.example.com/mcp", headers: [HTTPHeader("Authorization", "Bearer ghp_secret")]))
        #expect(
            file.servers[1].transport
                == .stdio(command: "npx", arguments: ["-y", "some-filesystem-server", "/srv"], environment: ["LOG": "warn"], workingDirectory: nil))
        #expect(file.servers[2].settings.headersTimeout == .seconds(600))
        #expect(file.servers[2].settings.maxConnections == 64)
        #expect(file.notes.isEmpty)
        #expect(file.sha256.count == 64)
    }

    @Test func vsCodeShapeWithTypesAndEnvVariables() throws {
        let file = try parse(
            #"""
            {"inputs": [{"id": "key", "type": "promptString"}],
             "servers": {
               "web": {"type": "http", "url": "http://127.0.0.1:9000/mcp", "headers": {"X-Key": "${env:GITHUB_TOKEN}"}},
               "local": {"type": "stdio", "command": "python3", "args": ["server.py"], "toolgate": {"isolation": "session", "startTimeout": 10}}}}
            """#)
        #expect(file.servers.map(\.name) == ["web", "local"])
        #expect(file.servers[0].transport == .http(url: "http://127.0.0.1:9000/mcp", headers: [HTTPHeader("X-Key", "ghp_secret")]))
        #expect(file.servers[1].settings.isolation == .session)
        #expect(file.servers[1].settings.startTimeout == .seconds(10))
        #expect(file.notes == ["servers.json: inputs: not used by toolgate; ignored"])
    }

    @Test func yamlIsReadToo() throws {
        let file = try parse(
            """
            mcpServers:
              notes:
                command: python3
                args: [notes.py]
            """, file: "servers.yaml")
        #expect(file.servers.map(\.name) == ["notes"])
    }

    @Test func theOldSSETransportIsRefusedNamingTheServer() {
        let typed = errors(#"{"mcpServers": {"legacy": {"type": "sse", "url": "http://h/sse"}}}"#)
        #expect(typed.count == 1)
        #expect(typed[0].contains("mcpServers.legacy.type: server \"legacy\" uses the old HTTP+SSE transport"), "\(typed)")
        #expect(typed[0].contains("\"type\": \"http\""))
        let byURL = errors(#"{"mcpServers": {"old": {"url": "http://h:8000/sse/"}}}"#)
        #expect(byURL.count == 1 && byURL[0].contains("server \"old\" looks like the old HTTP+SSE transport"), "\(byURL)")
        // Said to be Streamable HTTP: believed.
        #expect(errors(#"{"mcpServers": {"ok": {"type": "http", "url": "http://h:8000/sse"}}}"#).isEmpty)
    }

    @Test func namesMustFitAPathSegmentAndALabel() {
        let found = errors(#"{"mcpServers": {"My GitHub Server": {"url": "http://h/mcp"}}}"#)
        #expect(found.count == 1)
        #expect(found[0].contains("must match [a-z0-9][a-z0-9_-]{0,31}; rename it, for example to \"my-github-server\""), "\(found)")
        #expect(ServerName.suggestion(for: "__X__") == "x__")
        #expect(ServerName.suggestion(for: "!!!") == nil)
        #expect(ServerName.isValid(String(repeating: "a", count: 32)))
        #expect(!ServerName.isValid(String(repeating: "a", count: 33)))
        #expect(!ServerName.isValid("-a"))
    }

    @Test func everyErrorIsReportedWithItsPath() {
        let found = errors(
            #"""
            {"mcpServers": {
              "a": {"url": "ftp://h"},
              "b": {"command": "x", "headers": {}},
              "c": {"url": "http://h/mcp", "headers": {"X": "${MISSING}"}},
              "d": {},
              "e": {"url": "http://h/mcp", "command": "x"},
              "f": {"url": "http://h/mcp", "toolgate": {"headerTimeout": "5s", "isolation": "session"}},
              "g": {"command": "x", "toolgate": {"maxProcesses": 0, "startTimeout": "soon"}},
              "h": {"url": "http://h/mcp", "headers": {"Bad Name": "v", "Split": "a\r\nb"}}}}
            """#)
        let expected = [
            "servers.json: mcpServers.a.url: must be an http:// or https:// URL, got \"ftp://h\"",
            "servers.json: mcpServers.b.headers: is for an HTTP server; this one is stdio",
            "servers.json: mcpServers.c.headers.X: environment variable MISSING is not set (used in \"${MISSING}\")",
            "servers.json: mcpServers.d: has neither \"url\" (an HTTP server) nor \"command\" (a stdio server)",
            "servers.json: mcpServers.e: has both \"url\" and \"command\"; an HTTP server has a url, a stdio server a command",
        ]
        for line in expected { #expect(found.contains(line), "missing: \(line)\nall: \(found)") }
        #expect(found.contains { $0.hasPrefix("servers.json: mcpServers.f.toolgate.headerTimeout: unknown key") && $0.contains("did you mean \"headersTimeout\"") })
        #expect(found.contains("servers.json: mcpServers.f.toolgate.isolation: applies to stdio servers only"))
        #expect(found.contains { $0.hasPrefix("servers.json: mcpServers.g.toolgate.maxProcesses: must be a whole number from 1 to 4096") })
        #expect(found.contains { $0.hasPrefix("servers.json: mcpServers.g.toolgate.startTimeout: must be a duration") })
        #expect(found.contains("servers.json: mcpServers.h.headers[\"Bad Name\"]: \"Bad Name\" is not a valid header name"))
        #expect(found.contains { $0.hasPrefix("servers.json: mcpServers.h.headers.Split: the value contains CR, LF or NUL") })
    }

    @Test func shapesThatAreNotAServersFile() {
        #expect(errors("[]") == ["servers.json: must be an object with \"mcpServers\" (Claude Desktop, Cursor) or \"servers\" (VS Code), got array"])
        #expect(errors("{}") == ["servers.json: has no \"mcpServers\" (Claude Desktop, Cursor) or \"servers\" (VS Code) object"])
        #expect(errors(#"{"mcpServers": {}, "servers": {}}"#) == ["servers.json: has both \"mcpServers\" and \"servers\"; keep one"])
        #expect(errors(#"{"mcpServers": {}}"#) == ["servers.json: mcpServers: names no server"])
        #expect(errors("{\"mcpServers\": {\n  \"a\": {\"url\": }}}").first?.contains("line 2") == true)
        #expect(errors(#"{"servers": {"x": {"type": "websocket", "url": "ws://h"}}}"#) == ["servers.json: servers.x.type: unknown server type \"websocket\"; expected \"stdio\" or \"http\""])
        #expect(errors(#"{"servers": {"x": {"type": "http", "url": "${input:key}"}}}"#).first?.contains("asks a person for a value") == true)
    }

    @Test func clientKeysToolgateDoesNotUseAreNotedAndDisabledServersLeftOut() throws {
        let file = try parse(
            #"{"mcpServers": {"a": {"command": "x", "autoApprove": ["t"]}, "b": {"url": "http://h/mcp", "disabled": true}}}"#)
        #expect(file.servers.map(\.name) == ["a"])
        #expect(file.notes == ["servers.json: mcpServers.a.autoApprove: not used by toolgate; ignored", "servers.json: mcpServers.b: disabled by the client; toolgate leaves it out too"])
    }
}

/// `servers.NAME` in the policy (DESIGN.md section 10).
@Suite struct PolicyServerSectionTests {
    @Test func aSectionIsThatServersWholePolicyAndOthersGetTheTop() throws {
        let policy = try Policy.parse(
            #"""
            {"version": "1", "default": "allow", "hide": ["drop"],
             "servers": {
               "github": {"default": "deny", "tools": {"create_issue": {"limits": [{"counter": "writes", "window": "minute", "max": 5, "scope": "global"}]}}},
               "files": {"default": "deny", "tools": {"write_file": {"limits": [{"counter": "writes", "window": "minute", "max": 5, "scope": "global"}]}}}}}
            """#, file: "p.json")
        #expect(policy.forServer(nil).defaultAction == .allow)
        #expect(policy.forServer("other").defaultAction == .allow)
        #expect(policy.forServer("other").isHidden("drop"))
        let github = policy.forServer("github")
        #expect(github.defaultAction == .deny)
        #expect(!github.isHidden("drop"), "a section does not inherit the top's rules")
        #expect(github.entry(for: "create_issue") != nil && github.entry(for: "write_file") == nil)
        #expect(policy.forServer("files").entry(for: "write_file")?.limits.first?.counter == "writes")
        #expect(github.sha256 == policy.sha256)
    }

    @Test func oneCounterAcrossSectionsMustBeDefinedAlike() {
        do {
            _ = try Policy.parse(
                #"""
                {"version": "1",
                 "tools": {"a": {"limits": [{"counter": "writes", "window": "minute", "max": 5, "scope": "global"}]}},
                 "servers": {"files": {"tools": {"b": {"limits": [{"counter": "writes", "window": "hour", "max": 5, "scope": "global"}]}}}}}
                """#, file: "p.json")
            Issue.record("accepted two definitions of one counter")
        } catch {
            #expect(error.errors.count == 1)
            #expect(error.errors[0].description.hasPrefix("p.json: servers.files.tools.b.limits[0]: counter \"writes\" (scope global) is defined differently at tools.a.limits[0]"), "\(error)")
        }
    }

    @Test func sectionErrorsCarryTheirPath() {
        do {
            _ = try Policy.parse(
                #"{"version": "1", "servers": {"Bad Name": {}, "ok": {"defualt": "deny", "version": "1"}, "x": []}}"#, file: "p.json")
            Issue.record("accepted")
        } catch {
            let lines = error.errors.map(\.description)
            #expect(lines.contains { $0.hasPrefix("p.json: servers[\"Bad Name\"]: server name \"Bad Name\" must match") })
            #expect(lines.contains { $0.hasPrefix("p.json: servers.ok.defualt: unknown key \"defualt\" (did you mean \"default\"?)") }, "\(lines)")
            #expect(lines.contains { $0.hasPrefix("p.json: servers.ok.version: unknown key") })
            #expect(lines.contains("p.json: servers.x: must be an object, got array"))
        }
    }
}

/// `toolgate stdio --server NAME` expands only its own server's values.
@Suite struct ServersFileSelectionTests {
    @Test func otherServersSecretsAreNotNeeded() throws {
        let text = #"""
            {"mcpServers": {
              "notes": {"url": "${NOTES_URL}", "headers": {"Authorization": "Bearer ${NOTES_KEY}"}},
              "files": {"command": "files-server", "args": ["${ROOT}"]}}}
            """#
        let file = try ServersFile.parse(Array(text.utf8), file: "s.json", environment: ["ROOT": "/srv"], expandingOnly: "files")
        #expect(file.server(named: "files")?.transport == .stdio(command: "files-server", arguments: ["/srv"], environment: [:], workingDirectory: nil))
        #expect(throws: PolicyValidationError.self) {
            try ServersFile.parse(Array(text.utf8), file: "s.json", environment: ["ROOT": "/srv"], expandingOnly: "notes")
        }
        #expect(throws: PolicyValidationError.self) {
            try ServersFile.parse(Array(text.utf8), file: "s.json", environment: ["ROOT": "/srv"])
        }
    }
}

