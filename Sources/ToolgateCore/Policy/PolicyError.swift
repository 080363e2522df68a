/// One problem in a policy file, located by file and JSON path.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    /// Dotted JSON path (`tools.x.limits[0].window`); empty when the problem is the whole document.
    public let path: String
    public let message: String

    public init(file: String, path: String, message: String) {
        self.file = file
        self.path = path
        self.message = message
    }

    public var description: String {
        path.isEmpty ? "\(file): \(message)" : "\(file): \(path): \(message)"
    }
}

/// Every problem found in one policy file. Validation never stops at the first.
public struct PolicyValidationError: Error, Sendable, CustomStringConvertible {
    public let errors: [PolicyError]

    public init(errors: [PolicyError]) { self.errors = errors }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
