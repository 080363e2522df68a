/// `${NAME}` in a configured value, from the environment toolgate was started with. VS Code's `${env:NAME}` means the
/// same, so a client's file works as written; its `${input:…}` prompts a person, which a sidecar cannot. A missing
/// variable is an error, never "": a header or a path that silently lost its secret fails later and far away.
public struct EnvironmentExpansion: Sendable {
    public let environment: [String: String]

    public init(environment: [String: String]) { self.environment = environment }

    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public func expand(_ text: String) throws(Failure) -> String {
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw Failure(message: "unterminated ${ in \"\(text)\"")
            }
            var name = String(rest[start.upperBound..<end])
            if name.hasPrefix("env:") { name.removeFirst(4) }
            if name.hasPrefix("input:") {
                throw Failure(
                    message: "${\(name)} asks a person for a value (VS Code input), which toolgate cannot; use ${NAME} of an environment variable")
            }
            guard let value = environment[name] else {
                throw Failure(message: "environment variable \(name) is not set (used in \"\(text)\")")
            }
            out += value
            rest = rest[rest.index(after: end)...]
        }
        return out + rest
    }
}
