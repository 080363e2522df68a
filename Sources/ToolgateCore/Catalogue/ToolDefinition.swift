/// A tool as a server lists it (`tools/list`), reduced to what classification reads: facts the server publishes.
public struct ToolDefinition: Sendable, Equatable {
    /// MCP's behaviour hints. Absent is not false: the spec gives each a default the classifier does not assume.
    public struct Annotations: Sendable, Equatable {
        public var readOnly: Bool?
        public var destructive: Bool?
        public var idempotent: Bool?
        public var openWorld: Bool?

        public init(readOnly: Bool? = nil, destructive: Bool? = nil, idempotent: Bool? = nil, openWorld: Bool? = nil) {
            self.readOnly = readOnly
            self.destructive = destructive
            self.idempotent = idempotent
            self.openWorld = openWorld
        }

        public var isEmpty: Bool { readOnly == nil && destructive == nil && idempotent == nil && openWorld == nil }
    }

    public var name: String
    public var description: String
    public var annotations: Annotations
    /// Top-level input properties: name, and the schema of each.
    public var properties: [(name: String, schema: JSONValue)]
    public var required: [String]

    public init(
        name: String, description: String = "", annotations: Annotations = Annotations(),
        properties: [(name: String, schema: JSONValue)] = [], required: [String] = []
    ) {
        self.name = name
        self.description = description
        self.annotations = annotations
        self.properties = properties
        self.required = required
    }

    /// From one entry of a `tools/list` result; nil when it has no name.
    public init?(listed tool: JSONValue) {
        guard case .string(let name)? = tool["name"] else { return nil }
        self.name = name
        description = tool["description"]?.stringValue ?? ""
        let hints = tool["annotations"]
        func flag(_ key: String) -> Bool? {
            if case .bool(let value)? = hints?[key] { return value }
            return nil
        }
        annotations = Annotations(
            readOnly: flag("readOnlyHint"), destructive: flag("destructiveHint"), idempotent: flag("idempotentHint"),
            openWorld: flag("openWorldHint"))
        properties = tool["inputSchema"]?["properties"]?.objectValue?.members.map { ($0.key, $0.value) } ?? []
        required = tool["inputSchema"]?["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    public static func == (a: ToolDefinition, b: ToolDefinition) -> Bool {
        a.name == b.name && a.description == b.description && a.annotations == b.annotations
            && a.properties.map(\.name) == b.properties.map(\.name) && a.properties.map(\.schema) == b.properties.map(\.schema)
            && a.required == b.required
    }
}
