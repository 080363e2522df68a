/// How a request about a resource or prompt the policy keeps out is answered (DESIGN.md section 4): it goes
/// upstream about a name that cannot exist instead (a random token, in the same URI scheme for a URI), and
/// wherever the answer echoes that name the agent's own name is put back. So the agent gets exactly what the
/// upstream answers for something it does not have, and cannot tell hidden from absent; the upstream never sees
/// the hidden name.
///
/// A success for the stand-in where only "not found" makes sense (`resources/read` or `prompts/get` of a name that
/// matched one of the upstream's templates) never reaches the agent: the MCP-defined "not found" error does.
public struct AbsentNameProbe: Sendable, Equatable {
    /// The request's id: its answer is the one whose success is replaced.
    public let id: JSONValue
    /// Whether a success answer must be replaced by `notFound`.
    public let successIsNotFound: Bool
    public let notFound: JSONValue
    public let replacements: [Replacement]

    public struct Replacement: Sendable, Equatable {
        /// What the agent sent.
        public let original: String
        /// What the upstream is sent instead.
        public let standIn: String
        /// The random part of `standIn`, and what it stands for when echoed on its own.
        public let token: String
        public let originalRest: String
        /// Where it sits in `params`.
        public let path: [String]
    }

    /// The request to send instead of `message`, which names what `keptOut` lists, and the probe that restores
    /// the answer. `tokens` supplies one unguessable token (letters and digits) per kept-out name.
    public static func probe(
        _ message: JSONRPCMessage, method: String, keptOut: [ResourceAndPromptGate.Named], tokens: () -> String
    ) -> (request: JSONValue, probe: AbsentNameProbe) {
        var raw = message.raw
        var replacements: [Replacement] = []
        for named in keptOut {
            let token = tokens()
            let prefix = named.kind == .resource ? Self.schemePrefix(of: named.name) : ""
            let standIn = prefix + token
            raw = Self.setting(raw, at: ["params"] + named.path, to: .string(standIn))
            replacements.append(
                Replacement(
                    original: named.name, standIn: standIn, token: token,
                    originalRest: String(named.name.unicodeScalars.dropFirst(prefix.unicodeScalars.count)), path: named.path))
        }
        let id = message.id ?? .null
        let first = keptOut[0]
        let notFound: JSONValue
        if first.kind == .resource {
            notFound = JSONRPCResponse.error(
                id: id, code: .resourceNotFound, message: "Resource not found", data: ["uri": .string(first.name)])
        } else {
            notFound = JSONRPCResponse.error(id: id, code: .invalidParams, message: "Unknown prompt: \(first.name)")
        }
        let successIsNotFound = method.isExactly("resources/read") || method.isExactly("prompts/get")
        return (raw, AbsentNameProbe(id: id, successIsNotFound: successIsNotFound, notFound: notFound, replacements: replacements))
    }

    /// `scheme://` or `scheme:` (RFC 3986 scheme syntax) of a URI, kept so the upstream judges the stand-in as it
    /// would any URI of that scheme; empty when there is none.
    static func schemePrefix(of uri: String) -> String {
        let scalars = Array(uri.unicodeScalars)
        guard let first = scalars.first, ("a"..."z").contains(first) || ("A"..."Z").contains(first) else { return "" }
        var i = 1
        while i < scalars.count,
            ("a"..."z").contains(scalars[i]) || ("A"..."Z").contains(scalars[i]) || ("0"..."9").contains(scalars[i])
                || scalars[i] == "+" || scalars[i] == "-" || scalars[i] == "."
        {
            i += 1
        }
        guard i < scalars.count, scalars[i] == ":" else { return "" }
        var end = i + 1
        if end + 1 < scalars.count, scalars[end] == "/", scalars[end + 1] == "/" { end += 2 }
        return String(String.UnicodeScalarView(scalars[..<end]))
    }

    private static func setting(_ value: JSONValue, at path: [String], to newValue: JSONValue) -> JSONValue {
        guard let key = path.first, case .object(var object) = value else { return value }
        if path.count == 1 {
            object[key] = newValue
        } else if let inner = object[key] {
            object[key] = setting(inner, at: Array(path.dropFirst()), to: newValue)
        }
        return .object(object)
    }

    /// The `Mcp-Name` header to send upstream: the stand-in when the agent's header named what was replaced at the
    /// top of `params` (`resources/read`'s `uri`, `prompts/get`'s `name`); nil to send the agent's header as is (a
    /// header naming something else is the upstream's to refuse, as it would for any name).
    public func nameHeader(replacing header: String?) -> String? {
        guard let header, let decoded = MCPHeaderCheck.decodeName(header) else { return nil }
        for r in replacements where r.path.count == 1 && decoded.isExactly(r.original) { return r.standIn }
        return nil
    }

    /// One upstream message with the agent's names put back; nil when it needs no change.
    public func restore(_ message: JSONValue) -> JSONValue? {
        if successIsNotFound, case .object(let object) = message, object["method"] == nil, object["result"] != nil,
            object["id"] == id
        {
            return notFound
        }
        let restored = restoringStrings(message)
        // Not a ternary: `nil` there would be JSONValue's own nil literal, `.null`.
        if restored == message { return nil }
        return restored
    }

    /// A body (one message or a batch) with every probe's names put back; nil when it needs no change.
    public static func restore(body: JSONValue, probes: [AbsentNameProbe]) -> JSONValue? {
        guard !probes.isEmpty else { return nil }
        func one(_ message: JSONValue) -> JSONValue {
            var out = message
            for probe in probes { out = probe.restore(out) ?? out }
            return out
        }
        let restored: JSONValue
        if case .array(let elements) = body { restored = .array(elements.map(one)) } else { restored = one(body) }
        if restored == body { return nil }
        return restored
    }

    private func restoringStrings(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(restoring(s))
        case .array(let elements): return .array(elements.map(restoringStrings))
        case .object(var object):
            for i in object.members.indices {
                object.members[i].key = restoring(object.members[i].key)
                object.members[i].value = restoringStrings(object.members[i].value)
            }
            return .object(object)
        default: return value
        }
    }

    private func restoring(_ text: String) -> String {
        var bytes = Array(text.utf8)
        var changed = false
        for r in replacements {
            for (needle, replacement) in [(r.standIn, r.original), (r.token, r.originalRest)] {
                if let replaced = Self.replacingAll(Array(needle.utf8), with: Array(replacement.utf8), in: bytes) {
                    bytes = replaced
                    changed = true
                }
            }
        }
        return changed ? String(decoding: bytes, as: UTF8.self) : text
    }

    /// Every occurrence of `needle` (short, ASCII) replaced, left to right; nil when there is none.
    static func replacingAll(_ needle: [UInt8], with replacement: [UInt8], in bytes: [UInt8]) -> [UInt8]? {
        guard !needle.isEmpty, bytes.count >= needle.count else { return nil }
        var out: [UInt8] = []
        var i = 0
        var found = false
        while i < bytes.count {
            WorkMeter.charge(1)
            if bytes[i] == needle[0], i + needle.count <= bytes.count, bytes[i..<(i + needle.count)].elementsEqual(needle) {
                if !found {
                    out.reserveCapacity(bytes.count)
                    out += bytes[..<i]
                    found = true
                }
                out += replacement
                i += needle.count
            } else {
                if found { out.append(bytes[i]) }
                i += 1
            }
        }
        return found ? out : nil
    }
}
