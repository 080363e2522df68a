/// Turns a raw document (JSON or YAML, already parsed) into a checked `Policy`,
/// collecting every error with its path rather than stopping at the first.
struct PolicyDecoder {
    let file: String
    private(set) var errors: [PolicyError] = []

    init(file: String) { self.file = file }

    private mutating func fail(_ path: PolicyPath, _ message: String) {
        errors.append(PolicyError(file: file, path: path.description, message: message))
    }

    mutating func decode(_ root: JSONValue, sha256: String) -> Policy? {
        let path = PolicyPath.root
        guard
            let object = object(
                root, path, allowed: ["version", "default", "description", "hide", "tools", "resources", "prompts", "servers"])
        else {
            return nil
        }
        switch object["version"] {
        case .string("1"): break
        // YAML's `version: 1` (unquoted) is the integer 1; JSON's `1` is accepted alike. Not `1.0`: a version is no measure.
        case .number(let n) where n.literal == "1": break
        case nil: fail(path.key("version"), "required; must be \"1\"")
        default: fail(path.key("version"), "must be \"1\"")
        }
        let description = object["description"].flatMap { string($0, path.key("description")) }
        var counters = CounterDefinitions()
        let top = body(object, path, sha256: sha256, description: description, counters: &counters)
        // DESIGN.md section 10: `servers.NAME` holds what the top holds, for that server alone; counter names are
        // one namespace across them, so a counter defined in two sections must be defined alike.
        var sections: [String: Policy] = [:]
        if let value = object["servers"], let servers = self.object(value, path.key("servers"), allowed: nil) {
            for member in servers.members {
                let sectionPath = path.key("servers").key(member.key)
                if !ServerName.isValid(member.key) {
                    fail(sectionPath, "server name \"\(String(member.key.unicodeScalars.prefix(64)))\" must match [a-z0-9][a-z0-9_-]{0,31}")
                    continue
                }
                guard
                    let section = self.object(
                        member.value, sectionPath, allowed: ["default", "description", "hide", "tools", "resources", "prompts"])
                else { continue }
                if let policy = body(section, sectionPath, sha256: sha256, description: nil, counters: &counters) {
                    sections[member.key] = policy
                }
            }
        }
        guard errors.isEmpty, let top else { return nil }
        return top.with(sections: sections)
    }

    /// The rules of one server (the top, or a `servers.NAME` section).
    private mutating func body(
        _ object: JSONObject, _ path: PolicyPath, sha256: String, description: String?, counters: inout CounterDefinitions
    ) -> Policy? {
        var defaultAction = DefaultAction.deny
        if let value = object["default"] {
            if let string = string(value, path.key("default")) {
                if let parsed = DefaultAction(rawValue: string) {
                    defaultAction = parsed
                } else {
                    fail(path.key("default"), "must be \"allow\" or \"deny\", got \"\(string)\"")
                }
            }
        }
        var hide: [String] = []
        if let value = object["hide"], let array = array(value, path.key("hide")) {
            for (i, element) in array.enumerated() {
                guard let pattern = string(element, path.key("hide").index(i)) else { continue }
                if pattern.isEmpty { fail(path.key("hide").index(i), "must not be empty") } else { hide.append(pattern) }
            }
        }
        var entries: [ToolEntry] = []
        var wildcard: ToolEntry?
        if let value = object["tools"], let tools = self.object(value, path.key("tools"), allowed: nil) {
            for member in tools.members {
                let entryPath = path.key("tools").key(member.key)
                if member.key.isEmpty {
                    fail(entryPath, "tool name must not be empty")
                    continue
                }
                guard let entry = toolEntry(member.value, key: member.key, entryPath) else { continue }
                if member.key == Policy.wildcardKey { wildcard = entry } else { entries.append(entry) }
            }
        }
        checkCounters(entries: entries, wildcard: wildcard, tools: path.key("tools"), definitions: &counters)
        let resources = object["resources"].flatMap { accessList($0, path.key("resources"), uriTemplates: true) }
        let prompts = object["prompts"].flatMap { accessList($0, path.key("prompts"), uriTemplates: false) }
        guard errors.isEmpty else { return nil }
        return Policy(
            defaultAction: defaultAction, description: description, hide: hide, entries: entries,
            wildcard: wildcard, sha256: sha256, resources: resources, prompts: prompts)
    }

    /// `{"default": "allow"|"deny", "allow": [...], "deny": [...], "hide": [...]}`; `default` is required, so a
    /// section never means something other than it says.
    private mutating func accessList(_ value: JSONValue, _ path: PolicyPath, uriTemplates: Bool) -> AccessList? {
        guard let object = object(value, path, allowed: ["default", "allow", "deny", "hide"]) else { return nil }
        var defaultAction: DefaultAction?
        switch object["default"] {
        case nil: fail(path.key("default"), "required; \"allow\" or \"deny\"")
        case let value?:
            if let text = string(value, path.key("default")) {
                defaultAction = DefaultAction(rawValue: text)
                if defaultAction == nil { fail(path.key("default"), "must be \"allow\" or \"deny\", got \"\(text)\"") }
            }
        }
        var lists: [String: [String]] = [:]
        for key in ["allow", "deny", "hide"] {
            guard let listValue = object[key], let array = array(listValue, path.key(key)) else { continue }
            var patterns: [String] = []
            for (i, element) in array.enumerated() {
                guard let pattern = string(element, path.key(key).index(i)) else { continue }
                if pattern.isEmpty { fail(path.key(key).index(i), "must not be empty") } else { patterns.append(pattern) }
            }
            lists[key] = patterns
        }
        guard let defaultAction else { return nil }
        return AccessList(
            defaultAction: defaultAction, allow: lists["allow"] ?? [], deny: lists["deny"] ?? [], hide: lists["hide"] ?? [],
            uriTemplates: uriTemplates)
    }

    // MARK: Entries

    private mutating func toolEntry(_ value: JSONValue, key: String, _ path: PolicyPath) -> ToolEntry? {
        let isWildcard = key == Policy.wildcardKey
        let allowed: Set<String> =
            isWildcard ? ["arguments", "limits"] : ["action", "reason", "arguments", "limits", "approval"]
        guard let object = object(value, path, allowed: allowed, note: isWildcard ? wildcardNote : nil) else {
            return nil
        }
        let errorCount = errors.count
        var action = ToolAction.allow
        if let value = object["action"], let string = string(value, path.key("action")) {
            if let parsed = ToolAction(rawValue: string) {
                action = parsed
            } else {
                fail(path.key("action"), "must be \"allow\", \"deny\" or \"approve\", got \"\(string)\"")
            }
        }
        let reason = object["reason"].flatMap { string($0, path.key("reason")) }
        var arguments: [ArgumentRule] = []
        if let value = object["arguments"], let array = array(value, path.key("arguments")) {
            for (i, element) in array.enumerated() {
                if let rule = argumentRule(element, path.key("arguments").index(i)) { arguments.append(rule) }
            }
        }
        var limits: [LimitRule] = []
        if let value = object["limits"], let array = array(value, path.key("limits")) {
            for (i, element) in array.enumerated() {
                if let rule = limitRule(element, path.key("limits").index(i)) { limits.append(rule) }
            }
        }
        var approval: ApprovalSettings?
        if let value = object["approval"] {
            if action != .approve {
                fail(path.key("approval"), "only allowed when action is \"approve\"")
            } else {
                approval = approvalSettings(value, path.key("approval"))
            }
        } else if action == .approve {
            approval = .default
        }
        guard errors.count == errorCount else { return nil }
        return ToolEntry(
            key: key, action: action, reason: reason, arguments: arguments, limits: limits, approval: approval,
            digest: ToolEntry.digestOfEntry(key: key, value: value))
    }

    private let wildcardNote = "the \"*\" entry may carry only arguments and limits"

    private mutating func approvalSettings(_ value: JSONValue, _ path: PolicyPath) -> ApprovalSettings? {
        guard let object = object(value, path, allowed: ["wait", "ttl", "maxPending", "maxArgumentBytes"]) else { return nil }
        var wait = ApprovalSettings.default.waitSeconds
        var ttl = ApprovalSettings.default.ttlSeconds
        if let value = object["wait"], let parsed = duration(value, path.key("wait"), allowZero: true) {
            wait = parsed.seconds
        }
        if let value = object["ttl"], let parsed = duration(value, path.key("ttl"), allowZero: false) {
            ttl = parsed.seconds
        }
        let maxPending = object["maxPending"].flatMap { positiveCount($0, path.key("maxPending"), upTo: 10_000) }
        let maxArgumentBytes = object["maxArgumentBytes"].flatMap { positiveCount($0, path.key("maxArgumentBytes"), upTo: 1 << 24) }
        return ApprovalSettings(
            waitSeconds: wait, ttlSeconds: ttl, maxPending: maxPending ?? ApprovalSettings.default.maxPending,
            maxArgumentBytes: maxArgumentBytes ?? ApprovalSettings.default.maxArgumentBytes)
    }

    /// A whole number from 1 to `upTo`, or an error at `path`.
    private mutating func positiveCount(_ value: JSONValue, _ path: PolicyPath, upTo limit: Int) -> Int? {
        if case .number(let n) = value, let m = n.int64Value, n.literal.allSatisfy({ $0 != "." && $0 != "e" && $0 != "E" }),
            m >= 1, m <= Int64(limit)
        {
            return Int(m)
        }
        fail(path, "must be a whole number from 1 to \(limit), got \(JSONWriter.string(value))")
        return nil
    }

    // MARK: Arguments

    private mutating func argumentRule(_ value: JSONValue, _ path: PolicyPath) -> ArgumentRule? {
        guard let object = object(value, path, allowed: ["path", "op", "value", "reason", "optional"]) else { return nil }
        let reason = object["reason"].flatMap { string($0, path.key("reason")) }
        var optional = false
        if let value = object["optional"] {
            if case .bool(let b) = value { optional = b } else {
                fail(path.key("optional"), "must be a boolean, got \(value.typeName)")
            }
        }
        var argumentPath: [String]?
        if let value = object["path"] {
            if let string = string(value, path.key("path")) {
                argumentPath = dottedPath(string, path.key("path"))
            }
        } else {
            fail(path.key("path"), "required")
        }
        guard let opValue = object["op"] else {
            fail(path.key("op"), "required")
            return nil
        }
        guard let opName = string(opValue, path.key("op")) else { return nil }
        let operand = object["value"]
        let valuePath = path.key("value")
        let op: ArgumentRule.Operator?
        switch opName {
        case "exists":
            if let operand {
                if case .bool(let b) = operand { op = .exists(b) } else {
                    fail(valuePath, "must be a boolean for op \"exists\", got \(operand.typeName)")
                    op = nil
                }
            } else {
                op = .exists(true)
            }
        case "eq", "neq", "contains":
            guard let operand else {
                fail(valuePath, "required for op \"\(opName)\"")
                return nil
            }
            op = opName == "eq" ? .eq(operand) : opName == "neq" ? .neq(operand) : .contains(operand)
        case "in", "not_in":
            guard let operand else {
                fail(valuePath, "required for op \"\(opName)\"")
                return nil
            }
            guard case .array(let options) = operand else {
                fail(valuePath, "must be an array for op \"\(opName)\", got \(operand.typeName)")
                return nil
            }
            op = opName == "in" ? .in(options) : .notIn(options)
        case "lt", "lte", "gt", "gte":
            guard let operand else {
                fail(valuePath, "required for op \"\(opName)\"")
                return nil
            }
            guard case .number(let n) = operand, n.doubleValue.isFinite else {
                fail(valuePath, "must be a number for op \"\(opName)\", got \(operand.typeName)")
                return nil
            }
            switch opName {
            case "lt": op = .lt(n)
            case "lte": op = .lte(n)
            case "gt": op = .gt(n)
            default: op = .gte(n)
            }
        case "regex":
            guard let operand else {
                fail(valuePath, "required for op \"regex\"")
                return nil
            }
            guard case .string(let pattern) = operand else {
                fail(valuePath, "must be a string for op \"regex\", got \(operand.typeName)")
                return nil
            }
            do {
                op = .regex(try CompiledRegex(pattern))
            } catch {
                fail(valuePath, "invalid regex \"\(pattern)\": \(error)")
                op = nil
            }
        case "max_length":
            guard let operand else {
                fail(valuePath, "required for op \"max_length\"")
                return nil
            }
            guard case .number(let n) = operand, let length = n.int64Value, length >= 0, length <= Int32.max else {
                fail(valuePath, "must be a non-negative integer for op \"max_length\", got \(JSONWriter.string(operand))")
                return nil
            }
            op = .maxLength(Int(length))
        default:
            fail(
                path.key("op"),
                "unknown operator \"\(opName)\" (expected one of: eq, neq, in, not_in, lt, lte, gt, gte, regex, contains, exists, max_length)"
            )
            op = nil
        }
        if optional, case .exists = op {
            // `exists` is about presence itself and keeps its meaning, so `optional` would change nothing: say so.
            fail(path.key("optional"), "does not apply to op \"exists\", which is about presence itself")
            return nil
        }
        guard let op, let argumentPath else { return nil }
        return ArgumentRule(path: argumentPath, op: op, reason: reason, optional: optional)
    }

    private mutating func dottedPath(_ string: String, _ path: PolicyPath) -> [String]? {
        let components = string.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !string.isEmpty, !components.contains(where: \.isEmpty) else {
            fail(path, "invalid path \"\(string)\": expected dotted names such as \"options.width\"")
            return nil
        }
        return components
    }

    // MARK: Limits

    private mutating func limitRule(_ value: JSONValue, _ path: PolicyPath) -> LimitRule? {
        let keys: Set<String> = ["counter", "window", "max", "scope", "algorithm", "cost", "shadow"]
        guard let object = object(value, path, allowed: keys) else { return nil }
        let errorCount = errors.count
        var counter: String?
        if let value = object["counter"] {
            if let name = string(value, path.key("counter")) {
                if Self.isValidCounterName(name) {
                    counter = name
                } else {
                    fail(path.key("counter"), "invalid counter name \"\(name)\": use only A-Z, a-z, 0-9, _, . and -")
                }
            }
        } else {
            fail(path.key("counter"), "required")
        }
        var window: Window?
        if let value = object["window"] {
            window = self.window(value, path.key("window"))
        } else {
            fail(path.key("window"), "required")
        }
        var max: Int?
        if let value = object["max"] {
            if case .number(let n) = value, let m = n.int64Value, n.literal.allSatisfy({ $0 != "." && $0 != "e" && $0 != "E" }) {
                if m >= 1 && m <= Int64(Int32.max) { max = Int(m) } else {
                    fail(path.key("max"), "must be an integer from 1 to \(Int32.max), got \(n.literal)")
                }
            } else {
                fail(path.key("max"), "must be an integer of 1 or more, got \(JSONWriter.string(value))")
            }
        } else {
            fail(path.key("max"), "required")
        }
        var scope = LimitScope.grant
        if let value = object["scope"], let string = string(value, path.key("scope")) {
            if let parsed = LimitScope(rawValue: string) { scope = parsed } else {
                fail(path.key("scope"), "unknown scope \"\(string)\" (expected grant, session, agent or global)")
            }
        }
        var algorithm = LimitAlgorithm.sliding
        if let value = object["algorithm"], let string = string(value, path.key("algorithm")) {
            if let parsed = LimitAlgorithm(rawValue: string) { algorithm = parsed } else {
                fail(
                    path.key("algorithm"),
                    "unknown algorithm \"\(string)\" (expected sliding, fixed or token_bucket)")
            }
        }
        var cost = LimitCost.constant(1)
        if let value = object["cost"] {
            switch value {
            case .number(let n):
                if let c = n.int64Value, !n.literal.contains("."), c >= 1 {
                    if let max, c > max {
                        fail(path.key("cost"), "\(c) is more than max \(max): no call could ever pass")
                    } else {
                        cost = .constant(Int(c))
                    }
                } else {
                    fail(path.key("cost"), "must be an integer of 1 or more, or \"args.<path>\", got \(n.literal)")
                }
            case .string(let s):
                if s.hasPrefix("args."), let argumentPath = dottedPath(String(s.dropFirst(5)), path.key("cost")) {
                    cost = .argument(path: argumentPath)
                } else if !s.hasPrefix("args.") {
                    fail(path.key("cost"), "must be an integer or \"args.<path>\", got \"\(s)\"")
                }
            default:
                fail(path.key("cost"), "must be an integer or \"args.<path>\", got \(value.typeName)")
            }
        }
        var shadow = false
        if let value = object["shadow"] {
            if case .bool(let b) = value { shadow = b } else {
                fail(path.key("shadow"), "must be a boolean, got \(value.typeName)")
            }
        }
        if algorithm == .tokenBucket, let window, let max, Int64(max) * Int64(window.seconds) >= Int64(1) << 53 {
            fail(path.key("max"), "max × window is too large for token_bucket (\(max) × \(window.seconds)s must stay below 2^53); use a shorter window")
        }
        guard errors.count == errorCount, let counter, let window, let max else { return nil }
        return LimitRule(
            counter: counter, window: window, max: max, scope: scope, algorithm: algorithm, cost: cost, shadow: shadow)
    }

    static func isValidCounterName(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                    true
                default: false
                }
            }
    }

    private mutating func window(_ value: JSONValue, _ path: PolicyPath) -> Window? {
        duration(value, path, allowZero: false, noun: "window")
    }

    private mutating func duration(
        _ value: JSONValue, _ path: PolicyPath, allowZero: Bool, noun: String = "duration"
    ) -> Window? {
        switch Window.parse(value, allowZero: allowZero) {
        case .success(let window): return window
        case .failure(.unknown(let text)):
            fail(
                path,
                "unknown \(noun) \"\(text)\" (expected second, minute, hour, day, a number of seconds, or a duration such as 90s, 15m, 2h, 1d)"
            )
        case .failure(.notPositive): fail(path, "\(noun) must be \(allowZero ? "0 or more" : "at least 1 second")")
        case .failure(.tooLong): fail(path, "\(noun) must be at most \(Window.maximumSeconds / 86_400)d")
        case .failure(.wrongType(let type)): fail(path, "\(noun) must be a string or a number, got \(type)")
        }
        return nil
    }

    /// A counter is (scope, name). Its definitions must agree, and one call may not charge it twice.
    private mutating func checkCounters(
        entries: [ToolEntry], wildcard: ToolEntry?, tools: PolicyPath, definitions: inout CounterDefinitions
    ) {
        typealias CounterID = CounterDefinitions.CounterID
        let wildcardIDs = Set((wildcard?.limits ?? []).map { CounterID(scope: $0.scope, name: $0.counter) })
        for entry in (wildcard.map { [$0] } ?? []) + entries {
            var inThisCall: Set<CounterID> = []
            for (i, limit) in entry.limits.enumerated() {
                let path = tools.key(entry.key).key("limits").index(i)
                let id = CounterID(scope: limit.scope, name: limit.counter)
                if !inThisCall.insert(id).inserted {
                    fail(path.key("counter"), "counter \"\(limit.counter)\" (scope \(limit.scope.rawValue)) is charged twice by one call")
                } else if entry.key != Policy.wildcardKey, wildcardIDs.contains(id) {
                    fail(
                        path.key("counter"),
                        "counter \"\(limit.counter)\" (scope \(limit.scope.rawValue)) is also charged by the \"*\" entry; one call may not charge a counter twice"
                    )
                }
                if let first = definitions.byID[id] {
                    if first.window.seconds != limit.window.seconds || first.max != limit.max || first.algorithm != limit.algorithm {
                        fail(
                            path,
                            "counter \"\(limit.counter)\" (scope \(limit.scope.rawValue)) is defined differently at \(first.path): window \(first.window.text), max \(first.max), algorithm \(first.algorithm.rawValue) there; window \(limit.window.text), max \(limit.max), algorithm \(limit.algorithm.rawValue) here"
                        )
                    }
                } else {
                    definitions.byID[id] = CounterDefinitions.Definition(
                        window: limit.window, max: limit.max, algorithm: limit.algorithm, path: path)
                }
            }
        }
    }

    // MARK: Shapes

    private mutating func object(
        _ value: JSONValue, _ path: PolicyPath, allowed: Set<String>?, note: String? = nil
    ) -> JSONObject? {
        guard case .object(let object) = value else {
            fail(path, "must be an object, got \(value.typeName)")
            return nil
        }
        if let allowed {
            for key in object.keys where !allowed.contains(key) {
                fail(path.key(key), NameSuggestion.unknownKeyMessage(key, allowed: Array(allowed)) + (note.map { "; \($0)" } ?? ""))
            }
        }
        return object
    }

    private mutating func array(_ value: JSONValue, _ path: PolicyPath) -> [JSONValue]? {
        guard case .array(let array) = value else {
            fail(path, "must be an array, got \(value.typeName)")
            return nil
        }
        return array
    }

    private mutating func string(_ value: JSONValue, _ path: PolicyPath) -> String? {
        guard case .string(let string) = value else {
            fail(path, "must be a string, got \(value.typeName)")
            return nil
        }
        return string
    }
}

/// Every counter defined so far in one policy file, across its server sections: one name and scope is one counter.
struct CounterDefinitions {
    struct CounterID: Hashable {
        let scope: LimitScope
        let name: String
    }

    struct Definition {
        let window: Window
        let max: Int
        let algorithm: LimitAlgorithm
        let path: PolicyPath
    }

    var byID: [CounterID: Definition] = [:]
}
