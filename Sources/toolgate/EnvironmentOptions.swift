import Foundation

/// Every flag also reads from `TOOLGATE_<FLAG_IN_UPPER_SNAKE>`; a flag on the command line wins.
/// A repeatable flag's variable holds one value per line.
struct EnvironmentOptions {
    let environment: [String: String]

    init(_ environment: [String: String] = ProcessInfo.processInfo.environment) { self.environment = environment }

    static func variable(forFlag flag: String) -> String {
        "TOOLGATE_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    func value(_ commandLine: String?, flag: String) -> String? {
        if let commandLine { return commandLine }
        guard let value = environment[Self.variable(forFlag: flag)], !value.isEmpty else { return nil }
        return value
    }

    func values(_ commandLine: [String], flag: String) -> [String] {
        if !commandLine.isEmpty { return commandLine }
        guard let value = environment[Self.variable(forFlag: flag)] else { return [] }
        return value.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
    }

    /// `${NAME}` in an `--upstream-header` value, from the environment. A missing variable is an error, not "".
    func expand(_ text: String) throws -> String {
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw ExpansionError(message: "unterminated ${ in \"\(text)\"")
            }
            let name = String(rest[start.upperBound..<end])
            guard let value = environment[name] else {
                throw ExpansionError(message: "environment variable \(name) is not set (used in \"\(text)\")")
            }
            out += value
            rest = rest[rest.index(after: end)...]
        }
        return out + rest
    }

    struct ExpansionError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
