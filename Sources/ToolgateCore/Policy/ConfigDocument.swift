/// The files toolgate reads (policy, grants, servers) are JSON, or YAML for `.yaml`/`.yml`: one reader, so a file
/// that is not a document fails alike in each, with the file (and for JSON the line and column) named.
enum ConfigDocument {
    static func parse(_ bytes: [UInt8], file: String) throws(PolicyValidationError) -> JSONValue {
        do {
            return try isYAML(file) ? parseYAML(bytes) : JSONParser.parse(bytes)
        } catch let error as JSONParseError {
            throw PolicyValidationError(errors: [PolicyError(file: file, path: "", message: error.description(in: bytes))])
        } catch {
            throw PolicyValidationError(errors: [PolicyError(file: file, path: "", message: "\(error)")])
        }
    }

    static func isYAML(_ file: String) -> Bool {
        let lower = file.lowercased()
        return lower.hasSuffix(".yaml") || lower.hasSuffix(".yml")
    }
}
