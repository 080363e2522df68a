import Crypto

/// The servers file (`--servers FILE`, DESIGN.md section 10): the MCP servers one sidecar guards, in the shapes MCP
/// clients already write, so a user starts from the file their client has.
///
/// - `{"mcpServers": {NAME: {"url": …, "headers": {…}} | {"command": …, "args": […], "env": {…}}}}` (Claude Desktop,
///   Cursor, Claude Code; `"type"` optional);
/// - `{"servers": {NAME: {"type": "stdio" | "http", …}}}` (VS Code).
///
/// Keys a client uses and toolgate does not are kept out with a note, not an error: the file is the client's too.
public struct ServersFile: Sendable, Equatable {
    /// In file order: the order is how a URI two servers claim is routed on the merged endpoint.
    public let servers: [ServerDefinition]
    /// What was read but not used, one line each with its path (`check` prints them).
    public let notes: [String]
    /// Hex SHA-256 of the file's bytes: a reload of an unchanged file swaps nothing.
    public let sha256: String

    public init(servers: [ServerDefinition], notes: [String] = [], sha256: String = "") {
        self.servers = servers
        self.notes = notes
        self.sha256 = sha256
    }

    public func server(named name: String) -> ServerDefinition? { servers.first { $0.name == name } }

    /// Parses and checks a servers file; YAML for `.yaml`/`.yml`, JSON otherwise. Every error carries the file and the
    /// path of what failed, and all of them are reported at once.
    ///
    /// `expandingOnly`: `${ENV}` is expanded (and a missing variable an error) for this server alone; the others are
    /// checked as written. `toolgate stdio --server NAME` runs in a desktop client's environment, which holds what
    /// its one server needs, not every other server's secrets.
    public static func parse(
        _ bytes: [UInt8], file: String, environment: [String: String], expandingOnly: String? = nil
    ) throws(PolicyValidationError) -> ServersFile {
        let document = try ConfigDocument.parse(bytes, file: file)
        var decoder = ServersFileDecoder(file: file, expansion: EnvironmentExpansion(environment: environment))
        decoder.expandingOnly = expandingOnly
        let servers = decoder.decode(document)
        guard decoder.errors.isEmpty else { throw PolicyValidationError(errors: decoder.errors) }
        return ServersFile(servers: servers, notes: decoder.notes, sha256: SHA256.hash(data: bytes).hexString)
    }
}

/// Reads a parsed servers document, collecting every error with its path.
struct ServersFileDecoder {
    let file: String
    let expansion: EnvironmentExpansion
    var expandingOnly: String?
    /// The server being read: its values are expanded unless `expandingOnly` names another.
    private var current = ""
    private(set) var errors: [PolicyError] = []
    private(set) var notes: [String] = []

    init(file: String, expansion: EnvironmentExpansion) {
        self.file = file
        self.expansion = expansion
    }

    private mutating func fail(_ path: PolicyPath, _ message: String) {
        errors.append(PolicyError(file: file, path: path.description, message: message))
    }

    private mutating func note(_ path: PolicyPath, _ message: String) {
        notes.append("\(file): \(path): \(message)")
    }

    static let httpKeys: Set<String> = ["type", "url", "headers", "toolgate"]
    static let stdioKeys: Set<String> = ["type", "command", "args", "env", "cwd", "toolgate"]

    mutating func decode(_ root: JSONValue) -> [ServerDefinition] {
        guard case .object(let object) = root else {
            fail(.root, "must be an object with \"mcpServers\" (Claude Desktop, Cursor) or \"servers\" (VS Code), got \(root.typeName)")
            return []
        }
        let key: String
        switch (object["mcpServers"], object["servers"]) {
        case (.some, .some):
            fail(.root, "has both \"mcpServers\" and \"servers\"; keep one")
            return []
        case (.some, nil): key = "mcpServers"
        case (nil, .some): key = "servers"
        case (nil, nil):
            fail(.root, "has no \"mcpServers\" (Claude Desktop, Cursor) or \"servers\" (VS Code) object")
            return []
        }
        for other in object.keys where other != key {
            note(PolicyPath.root.key(other), "not used by toolgate; ignored")
        }
        let path = PolicyPath.root.key(key)
        guard case .object(let entries) = object[key]! else {
            fail(path, "must be an object of servers by name, got \(object[key]!.typeName)")
            return []
        }
        var servers: [ServerDefinition] = []
        for member in entries.members {
            if let server = server(member.value, name: member.key, path.key(member.key)) { servers.append(server) }
        }
        if servers.isEmpty, errors.isEmpty { fail(path, "names no server") }
        return servers
    }

    private mutating func server(_ value: JSONValue, name: String, _ path: PolicyPath) -> ServerDefinition? {
        current = name
        if !ServerName.isValid(name) {
            let hint = ServerName.suggestion(for: name).map { "; rename it, for example to \"\($0)\"" } ?? ""
            fail(path, "server name \"\(String(name.unicodeScalars.prefix(64)))\" must match [a-z0-9][a-z0-9_-]{0,31}\(hint)")
        }
        guard case .object(let object) = value else {
            fail(path, "must be an object, got \(value.typeName)")
            return nil
        }
        if case .bool(true) = object["disabled"] {
            note(path, "disabled by the client; toolgate leaves it out too")
            return nil
        }
        var type: String?
        if let value = object["type"] {
            guard case .string(let text) = value else {
                fail(path.key("type"), "must be a string, got \(value.typeName)")
                return nil
            }
            type = text
        }
        let url = object["url"] ?? object["serverUrl"]
        switch type {
        case "sse"?:
            fail(
                path.key("type"),
                "server \"\(name)\" uses the old HTTP+SSE transport, which toolgate does not speak; point it at the server's Streamable HTTP endpoint (often /mcp) with \"type\": \"http\""
            )
            return nil
        case nil, "http"?, "streamable-http"?, "streamableHttp"?, "stdio"?: break
        case let other?:
            fail(path.key("type"), "unknown server type \"\(String(other.prefix(64)))\"; expected \"stdio\" or \"http\"")
            return nil
        }
        let isStdio: Bool
        switch (type, url, object["command"]) {
        case ("stdio"?, _, _): isStdio = true
        case (nil, nil, .some): isStdio = true
        case (nil, .some, nil), ("http"?, _, _), ("streamable-http"?, _, _), ("streamableHttp"?, _, _): isStdio = false
        case (nil, .some, .some):
            fail(path, "has both \"url\" and \"command\"; an HTTP server has a url, a stdio server a command")
            return nil
        default:
            fail(path, "has neither \"url\" (an HTTP server) nor \"command\" (a stdio server)")
            return nil
        }
        let allowed = isStdio ? Self.stdioKeys : Self.httpKeys
        for key in object.keys where !allowed.contains(key) && key != "disabled" && !(key == "serverUrl" && !isStdio) {
            let other = isStdio ? Self.httpKeys : Self.stdioKeys
            if other.contains(key) {
                fail(path.key(key), "is for \(isStdio ? "an HTTP" : "a stdio") server; this one is \(isStdio ? "stdio" : "HTTP")")
            } else {
                note(path.key(key), "not used by toolgate; ignored")
            }
        }
        let settings = object["toolgate"].map { self.settings($0, path.key("toolgate"), isStdio: isStdio) } ?? ServerSettings()
        if isStdio {
            return stdioServer(object, name: name, path, settings: settings)
        }
        let urlPath = path.key(object["url"] == nil ? "serverUrl" : "url")
        guard let url, let text = expanded(url, urlPath) else {
            if url == nil { fail(path.key("url"), "required for an HTTP server") }
            return nil
        }
        // A server read without expansion (another than `expandingOnly`) may hold its URL in a variable.
        let unexpanded = expandingOnly.map { $0 != current } ?? false
        guard text.hasPrefix("http://") || text.hasPrefix("https://") || (unexpanded && text.hasPrefix("${")) else {
            fail(urlPath, "must be an http:// or https:// URL, got \"\(String(text.prefix(200)))\"")
            return nil
        }
        if type == nil, Self.looksLikeSSE(text) {
            fail(
                urlPath,
                "server \"\(name)\" looks like the old HTTP+SSE transport (its URL ends in /sse), which toolgate does not speak; use the server's Streamable HTTP endpoint (often /mcp), or add \"type\": \"http\" if this URL is one"
            )
            return nil
        }
        var headers: [HTTPHeader] = []
        if let value = object["headers"] {
            guard case .object(let fields) = value else {
                fail(path.key("headers"), "must be an object of header names and values, got \(value.typeName)")
                return nil
            }
            for member in fields.members {
                let headerPath = path.key("headers").key(member.key)
                guard Self.isHeaderName(member.key) else {
                    fail(headerPath, "\"\(String(member.key.prefix(64)))\" is not a valid header name")
                    continue
                }
                guard let value = expanded(member.value, headerPath) else { continue }
                guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\u{0}" }) else {
                    fail(headerPath, "the value contains CR, LF or NUL (after ${ENV} expansion), which would split the header")
                    continue
                }
                headers.append(HTTPHeader(member.key, value))
            }
        }
        return ServerDefinition(name: name, transport: .http(url: text, headers: headers), settings: settings)
    }

    private mutating func stdioServer(
        _ object: JSONObject, name: String, _ path: PolicyPath, settings: ServerSettings
    ) -> ServerDefinition? {
        guard let commandValue = object["command"] else {
            fail(path.key("command"), "required for a stdio server")
            return nil
        }
        guard let command = expanded(commandValue, path.key("command")) else { return nil }
        guard !command.trimmingWhitespace.isEmpty else {
            fail(path.key("command"), "must not be empty")
            return nil
        }
        var arguments: [String] = []
        if let value = object["args"] {
            guard case .array(let array) = value else {
                fail(path.key("args"), "must be an array of strings, got \(value.typeName)")
                return nil
            }
            for (i, element) in array.enumerated() {
                if let argument = expanded(element, path.key("args").index(i)) { arguments.append(argument) }
            }
        }
        var environment: [String: String] = [:]
        if let value = object["env"] {
            guard case .object(let fields) = value else {
                fail(path.key("env"), "must be an object of variable names and values, got \(value.typeName)")
                return nil
            }
            for member in fields.members {
                guard !member.key.isEmpty, !member.key.contains("="), !member.key.contains("\u{0}") else {
                    fail(path.key("env").key(member.key), "is not a valid environment variable name")
                    continue
                }
                if let text = expanded(member.value, path.key("env").key(member.key)) { environment[member.key] = text }
            }
        }
        let workingDirectory = object["cwd"].flatMap { expanded($0, path.key("cwd")) }
        return ServerDefinition(
            name: name,
            transport: .stdio(command: command, arguments: arguments, environment: environment, workingDirectory: workingDirectory),
            settings: settings)
    }

    private mutating func settings(_ value: JSONValue, _ path: PolicyPath, isStdio: Bool) -> ServerSettings {
        var settings = ServerSettings()
        guard case .object(let object) = value else {
            fail(path, "must be an object, got \(value.typeName)")
            return settings
        }
        let stdioOnly: Set<String> = ["isolation", "maxProcesses", "startTimeout"]
        let keys = ServerSettings.keys.map(\.key)
        for member in object.members {
            let keyPath = path.key(member.key)
            guard keys.contains(member.key) else {
                fail(keyPath, NameSuggestion.unknownKeyMessage(member.key, allowed: keys))
                continue
            }
            if stdioOnly.contains(member.key), !isStdio {
                fail(keyPath, "applies to stdio servers only")
                continue
            }
            switch member.key {
            case "connectTimeout": settings.connectTimeout = duration(member.value, keyPath)
            case "headersTimeout": settings.headersTimeout = duration(member.value, keyPath)
            case "idleTimeout": settings.idleTimeout = duration(member.value, keyPath)
            case "startTimeout": settings.startTimeout = duration(member.value, keyPath)
            case "maxConnections": settings.maxConnections = count(member.value, keyPath, upTo: 1 << 20)
            case "maxProcesses": settings.maxProcesses = count(member.value, keyPath, upTo: 4096)
            default:
                if case .string(let text) = member.value, let isolation = ServerSettings.Isolation(rawValue: text) {
                    settings.isolation = isolation
                } else {
                    fail(keyPath, "must be \"shared\" or \"session\", got \(JSONWriter.string(member.value))")
                }
            }
        }
        return settings
    }

    /// `"600s"`, `"5m"`, or a number of seconds.
    private mutating func duration(_ value: JSONValue, _ path: PolicyPath) -> Duration? {
        if case .number(let n) = value, let seconds = Double(n.literal), seconds > 0, seconds.isFinite, seconds <= 86_400 {
            return .milliseconds(Int64(seconds * 1_000))
        }
        if case .string = value, case .success(let window) = Window.parse(value, allowZero: false), window.seconds <= 86_400 {
            return .seconds(window.seconds)
        }
        fail(path, "must be a duration up to a day, such as \"30s\" or \"5m\", or a number of seconds; got \(JSONWriter.string(value))")
        return nil
    }

    private mutating func count(_ value: JSONValue, _ path: PolicyPath, upTo limit: Int) -> Int? {
        if case .number(let n) = value, let m = n.int64Value, !n.literal.contains("."), m >= 1, m <= Int64(limit) {
            return Int(m)
        }
        fail(path, "must be a whole number from 1 to \(limit), got \(JSONWriter.string(value))")
        return nil
    }

    private mutating func expanded(_ value: JSONValue, _ path: PolicyPath) -> String? {
        guard case .string(let text) = value else {
            fail(path, "must be a string, got \(value.typeName)")
            return nil
        }
        if let expandingOnly, expandingOnly != current { return text }
        do {
            return try expansion.expand(text)
        } catch {
            fail(path, error.message)
            return nil
        }
    }

    /// The old transport's endpoints end in `/sse` by convention (the SDKs' default).
    static func looksLikeSSE(_ url: String) -> Bool {
        let withoutQuery = url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
        var path = withoutQuery
        while path.hasSuffix("/") { path.removeLast() }
        return path.lowercased().hasSuffix("/sse")
    }

    /// RFC 9110 token characters.
    static func isHeaderName(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
    }
}
