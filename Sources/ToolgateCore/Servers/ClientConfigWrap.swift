/// `toolgate wrap` without the files (DESIGN.md section 10): a client's MCP config in; out, the servers file for
/// toolgate (every server as the client had it, secrets and `${ENV}` references included, so they leave the client's
/// file) and the client's config with every server pointed at toolgate. Pure, so each client's shape is tested
/// without a disk; the command does the reading, writing and backup.
public enum ClientConfigWrap {
    /// Where the pieces live, as absolute paths the client can use from any working directory.
    public struct Target: Sendable {
        /// The client's config as the user named it: errors carry it.
        public var clientFile: String
        /// `HOST:PORT` of `toolgate serve`, for HTTP servers' new URLs.
        public var listen: String
        /// The toolgate binary a client runs for a stdio server.
        public var toolgateBinary: String
        public var serversFile: String
        public var policyFile: String

        public init(clientFile: String, listen: String, toolgateBinary: String, serversFile: String, policyFile: String) {
            self.clientFile = clientFile
            self.listen = listen
            self.toolgateBinary = toolgateBinary
            self.serversFile = serversFile
            self.policyFile = policyFile
        }
    }

    /// One server, before and after, for the command to print.
    public struct Change: Sendable, Equatable {
        /// The client's name for it, and toolgate's (the same unless the client's does not fit `ServerName`).
        public let clientName: String
        public let name: String
        public let isStdio: Bool
        /// The client had it disabled: it stays disabled in both files.
        public let isDisabled: Bool
        /// The URL, or the command line, as the client had it; and what it is now.
        public let before: String
        public let after: String

        public var isRenamed: Bool { !clientName.isExactly(name) }
    }

    public struct Outcome: Sendable {
        /// The client's config, pointed at toolgate.
        public let client: JSONValue
        /// The servers file.
        public let servers: JSONValue
        public let changes: [Change]

        /// Whether any (enabled) server needs `toolgate serve` running; stdio servers do not.
        public var needsSidecar: Bool { changes.contains { !$0.isStdio && !$0.isDisabled } }
    }

    /// The keys that say how to reach a server: they move to the servers file. Every other key stays in the client's
    /// file too (`disabled`, `autoApprove`, `envFile`, …), since the client uses them and toolgate does not.
    static let transportKeys: Set<String> = ["type", "url", "serverUrl", "headers", "command", "args", "env", "cwd", "toolgate"]

    /// VS Code's own variables that a server's command, args or env may hold (its `${env:…}` and `${input:…}` aside).
    static let vsCodeVariables: Set<String> = ["workspaceFolder", "workspaceFolderBasename", "userHome", "pathSeparator", "cwd"]

    public static func wrap(_ document: JSONValue, _ target: Target) throws(PolicyValidationError) -> Outcome {
        let file = target.clientFile
        func failure(_ path: PolicyPath, _ message: String) -> PolicyValidationError {
            PolicyValidationError(errors: [PolicyError(file: file, path: path.description, message: message)])
        }
        guard case .object(let root) = document else {
            throw failure(.root, "must be an object with \"mcpServers\" (Claude Desktop, Cursor, Claude Code) or \"servers\" (VS Code), got \(document.typeName)")
        }
        let key: String
        switch (root["mcpServers"], root["servers"]) {
        case (.some, .some): throw failure(.root, "has both \"mcpServers\" and \"servers\"; keep one")
        case (.some, nil): key = "mcpServers"
        case (nil, .some): key = "servers"
        case (nil, nil):
            throw failure(.root, "has no \"mcpServers\" (Claude Desktop, Cursor, Claude Code) or \"servers\" (VS Code) object")
        }
        let isVSCode = key == "servers"
        let serversPath = PolicyPath.root.key(key)
        guard case .object(let entries) = root[key]! else {
            throw failure(serversPath, "must be an object of servers by name, got \(root[key]!.typeName)")
        }
        guard !entries.members.isEmpty else { throw failure(serversPath, "names no server: nothing to wrap") }

        var errors: [PolicyError] = []
        func fail(_ path: PolicyPath, _ message: String) {
            errors.append(PolicyError(file: file, path: path.description, message: message))
        }

        // Names first: toolgate's must fit a URL segment and a metric label; the client's file follows the rename.
        var names: [String] = []
        for member in entries.members {
            let path = serversPath.key(member.key)
            if ServerName.isValid(member.key) {
                names.append(member.key)
            } else if let suggestion = ServerName.suggestion(for: member.key) {
                names.append(suggestion)
            } else {
                fail(path, "server name \"\(String(member.key.unicodeScalars.prefix(64)))\" has no letter or digit toolgate could name it by; rename it to match [a-z0-9][a-z0-9_-]{0,31}")
                names.append("")
            }
        }
        for (i, name) in names.enumerated() where !name.isEmpty {
            if let j = names[..<i].firstIndex(where: { $0.isExactly(name) }) {
                let mine = entries.members[i].key
                let theirs = entries.members[j].key
                fail(
                    serversPath.key(mine),
                    "server \"\(mine)\" would be named \"\(name)\" in toolgate, as server \"\(theirs)\" is; rename one of them")
            }
        }

        // A config that already goes through toolgate: wrapping it again would put toolgate in front of itself and
        // write a servers file of toolgate entries over the real one.
        let sidecarPrefix = "http://\(target.listen)/mcp"
        for member in entries.members {
            guard case .object(let server) = member.value else { continue }
            if case .string(let command) = server["command"], isToolgate(command, target: target) {
                fail(serversPath.key(member.key).key("command"), alreadyWrapped(target))
            } else if case .string(let url) = server["url"], url == sidecarPrefix || url.hasPrefix(sidecarPrefix + "/") {
                fail(serversPath.key(member.key).key("url"), alreadyWrapped(target))
            }
        }
        guard errors.isEmpty else { throw PolicyValidationError(errors: errors) }

        // The servers file: each server exactly as the client wrote it, under toolgate's name.
        let servers = JSONObject(zip(names, entries.members).map { JSONObject.Member(key: $0, value: $1.value) })
        try validate(servers, key: key, clientNames: entries.members.map(\.key), names: names, file: file)

        var changes: [Change] = []
        var rewritten: [JSONObject.Member] = []
        for (name, member) in zip(names, entries.members) {
            guard case .object(let server) = member.value else { continue }  // validate refused it
            let isStdio = isStdioServer(server)
            let isDisabled = server["disabled"] == .bool(true)
            var transport: [JSONObject.Member] = []
            if server["type"] != nil || isVSCode {
                let type: JSONValue = isStdio ? "stdio" : (server["type"] ?? "http")
                transport.append(JSONObject.Member(key: "type", value: type))
            }
            let before: String
            let after: String
            if isStdio {
                let arguments = ["stdio", "--servers", target.serversFile, "--server", name, "--policy", target.policyFile]
                transport.append(JSONObject.Member(key: "command", value: .string(target.toolgateBinary)))
                transport.append(JSONObject.Member(key: "args", value: .array(arguments.map(JSONValue.string))))
                // VS Code substitutes its own variables (`${workspaceFolder}`) in what it starts, and toolgate reads
                // `${NAME}` from its environment: VS Code hands each one to toolgate's environment under its name.
                let expanded = JSONObject(server.members.filter { ["command", "args", "env", "cwd"].contains($0.key) })
                let handed = isVSCode ? referencedVariables(.object(expanded)).intersection(vsCodeVariables).sorted() : []
                if !handed.isEmpty {
                    let env = JSONObject(handed.map { JSONObject.Member(key: $0, value: .string("${\($0)}")) })
                    transport.append(JSONObject.Member(key: "env", value: .object(env)))
                }
                let words = [server["command"]?.stringValue ?? ""] + (server["args"]?.arrayValue ?? []).map { $0.stringValue ?? "" }
                before = ShellQuoting.commandLine(words)
                after = "toolgate stdio --server \(name)"
            } else {
                after = "\(sidecarPrefix)/\(name)"
                // Windsurf's `serverUrl` stays `serverUrl`: the client reads only its own key.
                let urlKey = server["url"] == nil && server["serverUrl"] != nil ? "serverUrl" : "url"
                transport.append(JSONObject.Member(key: urlKey, value: .string(after)))
                before = (server["url"] ?? server["serverUrl"])?.stringValue ?? ""
            }
            rewritten.append(JSONObject.Member(key: name, value: .object(replacingTransport(of: server, with: transport))))
            changes.append(
                Change(clientName: member.key, name: name, isStdio: isStdio, isDisabled: isDisabled, before: before, after: after))
        }

        var client = root
        client[key] = .object(JSONObject(rewritten))
        return Outcome(client: .object(client), servers: .object(JSONObject([JSONObject.Member(key: key, value: .object(servers))])), changes: changes)
    }

    /// Checks the servers file as `serve` will read it, so what toolgate would refuse at start (the old HTTP+SSE
    /// transport, a server with neither url nor command, a VS Code `${input:…}`) is refused now with the same
    /// words, before anything is written. `${ENV}` references are not looked up (wrap may run where the secrets are
    /// not set); they stand in as a URL, so a URL made of them still reads as one. A disabled server is checked too:
    /// the client may enable it later. Errors carry the client's file and the client's names.
    static func validate(_ servers: JSONObject, key: String, clientNames: [String], names: [String], file: String) throws(PolicyValidationError) {
        var checked = servers
        for index in checked.members.indices {
            if case .object(var server) = checked.members[index].value {
                server["disabled"] = nil
                checked.members[index].value = .object(server)
            }
        }
        let document: JSONValue = .object(JSONObject([JSONObject.Member(key: key, value: .object(checked))]))
        var environment: [String: String] = [:]
        for name in referencedVariables(document) { environment[name] = "http://variable.invalid" }
        var decoder = ServersFileDecoder(file: file, expansion: EnvironmentExpansion(environment: environment))
        _ = decoder.decode(document)
        guard !decoder.errors.isEmpty else { return }
        let root = PolicyPath.root.key(key)
        let errors = decoder.errors.map { error -> PolicyError in
            for (clientName, name) in zip(clientNames, names) where !clientName.isExactly(name) {
                let renamed = root.key(name).description
                if error.path == renamed || error.path.hasPrefix(renamed + ".") || error.path.hasPrefix(renamed + "[") {
                    let path = root.key(clientName).description + error.path.dropFirst(renamed.count)
                    return PolicyError(file: error.file, path: path, message: error.message)
                }
            }
            return error
        }
        throw PolicyValidationError(errors: errors)
    }

    /// The names in every `${NAME}` and `${env:NAME}` of the document's strings.
    static func referencedVariables(_ value: JSONValue) -> Set<String> {
        switch value {
        case .string(let text):
            var names: Set<String> = []
            var rest = Substring(text)
            while let start = rest.range(of: "${"), let end = rest[start.upperBound...].firstIndex(of: "}") {
                var name = String(rest[start.upperBound..<end])
                if name.hasPrefix("env:") { name.removeFirst(4) }
                names.insert(name)
                rest = rest[rest.index(after: end)...]
            }
            return names
        case .array(let elements): return elements.reduce(into: Set<String>()) { $0.formUnion(referencedVariables($1)) }
        case .object(let object): return object.members.reduce(into: Set<String>()) { $0.formUnion(referencedVariables($1.value)) }
        default: return []
        }
    }

    /// How `ServersFile` tells them apart: an explicit `"type": "stdio"`, or a command and no type.
    static func isStdioServer(_ server: JSONObject) -> Bool {
        if case .string(let type) = server["type"] { return type == "stdio" }
        return server["command"] != nil
    }

    /// The server's own keys in their order, its transport keys replaced by `transport` where the first of them was.
    static func replacingTransport(of server: JSONObject, with transport: [JSONObject.Member]) -> JSONObject {
        var members: [JSONObject.Member] = []
        var placed = false
        for member in server.members {
            if transportKeys.contains(member.key) {
                if !placed { members += transport }
                placed = true
            } else {
                members.append(member)
            }
        }
        return JSONObject(placed ? members : transport + members)
    }

    /// A command that runs toolgate: this binary, or any program named `toolgate`.
    static func isToolgate(_ command: String, target: Target) -> Bool {
        command == target.toolgateBinary || command.split(separator: "/").last == "toolgate"
    }

    static func alreadyWrapped(_ target: Target) -> String {
        "already goes through toolgate: this config was wrapped before; run `toolgate wrap --undo \(ShellQuoting.quote(target.clientFile))` to restore the original first"
    }
}
