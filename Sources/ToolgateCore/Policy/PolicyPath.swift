/// A location inside a policy document, rendered the way errors print it:
/// `tools.imageBackgroundRemoval.limits[0].window`.
struct PolicyPath: Sendable, CustomStringConvertible {
    private enum Component: Sendable {
        case key(String)
        case index(Int)
    }

    private var components: [Component] = []

    static let root = PolicyPath()

    func key(_ key: String) -> PolicyPath {
        var copy = self
        copy.components.append(.key(key))
        return copy
    }

    func index(_ index: Int) -> PolicyPath {
        var copy = self
        copy.components.append(.index(index))
        return copy
    }

    var description: String {
        var out = ""
        for component in components {
            switch component {
            case .key(let key):
                if Self.needsQuoting(key) {
                    out += "[\"\(key)\"]"
                } else {
                    if !out.isEmpty { out += "." }
                    out += key
                }
            case .index(let i):
                out += "[\(i)]"
            }
        }
        return out
    }

    /// Keys that would make the dotted form ambiguous are bracketed instead.
    private static func needsQuoting(_ key: String) -> Bool {
        key.isEmpty || key.contains(where: { $0 == "." || $0 == "[" || $0 == "]" || $0 == "\"" || $0.isWhitespace })
    }
}
