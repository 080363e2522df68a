import Crypto
import Yams

extension Policy {
    /// Parses and checks a policy. The format follows the file name: `.yaml`/`.yml` is YAML, anything else JSON.
    /// `file` is also what every error message starts with.
    public static func parse(_ bytes: [UInt8], file: String) throws(PolicyValidationError) -> Policy {
        let sha256 = SHA256.hash(data: bytes).hexString
        let document = try ConfigDocument.parse(bytes, file: file)
        var decoder = PolicyDecoder(file: file)
        guard let policy = decoder.decode(document, sha256: sha256) else {
            throw PolicyValidationError(errors: decoder.errors)
        }
        return policy
    }

    public static func parse(_ text: String, file: String) throws(PolicyValidationError) -> Policy {
        try parse(Array(text.utf8), file: file)
    }
}

/// Why a YAML policy could not even be read as a document.
struct YAMLDocumentError: Error, CustomStringConvertible {
    let description: String
}

func parseYAML(_ bytes: [UInt8]) throws -> JSONValue {
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw YAMLDocumentError(description: "invalid YAML: not valid UTF-8")
    }
    if let (line, column) = YAMLAliasScan.firstAlias(in: text) {
        throw YAMLDocumentError(description: "invalid YAML: line \(line), column \(column): aliases are not supported")
    }
    let node: Node?
    do {
        node = try Yams.compose(yaml: text)
    } catch let error as YamlError {
        throw YAMLDocumentError(description: "invalid YAML: \(oneLine(error))")
    }
    guard let node else { throw YAMLDocumentError(description: "the document is empty") }
    return try jsonValue(node)
}

/// YAML's richer model narrowed to JSON's: what the policy format can express.
private func jsonValue(_ node: Node) throws -> JSONValue {
    switch node {
    case .scalar(let scalar):
        switch Resolver.default.resolveTag(of: node) {
        case .null: return .null
        case .bool: return Bool.construct(from: scalar).map(JSONValue.bool) ?? .string(scalar.string)
        case .int:
            if let n = Int64.construct(from: scalar) { return .number(JSONNumber(n)) }
            return .string(scalar.string)
        case .float:
            guard let d = Double.construct(from: scalar), d.isFinite else {
                throw YAMLDocumentError(description: "invalid YAML: \(scalar.string) is not a finite number")
            }
            return .number(JSONNumber(literal: "\(d)"))
        default: return .string(scalar.string)
        }
    case .sequence(let sequence):
        return .array(try sequence.map(jsonValue))
    case .mapping(let mapping):
        var members: [JSONObject.Member] = []
        for (key, value) in mapping {
            guard case .scalar(let keyScalar) = key else {
                throw YAMLDocumentError(description: "invalid YAML: mapping keys must be strings")
            }
            members.append(JSONObject.Member(key: keyScalar.string, value: try jsonValue(value)))
        }
        return .object(JSONObject(members))
    case .alias:
        throw YAMLDocumentError(description: "invalid YAML: aliases are not supported")
    }
}

/// Yams describes errors over several lines with a source excerpt; `check` prints one line per error.
private func oneLine(_ error: YamlError) -> String {
    switch error {
    case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
        .composer(let context, let problem, let mark, _):
        let while_ = context.map { " (\($0.text))" } ?? ""
        return "line \(mark.line), column \(mark.column): \(problem)\(while_)"
    case .duplicatedKeysInMapping(let duplicates, let context):
        return "line \(context.mark.line), column \(context.mark.column): duplicate keys \(duplicates.joined(separator: ", "))"
    default:
        return String(describing: error).split(separator: "\n").first.map(String.init) ?? "unreadable document"
    }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hex, two digits a byte: how digests are written everywhere toolgate shows or stores one.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension SHA256.Digest {
    public var hexString: String { Array(self).hexString }
}
