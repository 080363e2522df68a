/// What calling a tool does to the world (DESIGN.md section 11), from least to most severe. A tool has one: the most
/// severe that applies.
public enum ToolCategory: String, Sendable, CaseIterable, Comparable {
    case read, write, execute, destructive, financial

    var severity: Int { Self.allCases.firstIndex(of: self)! }

    public static func < (a: ToolCategory, b: ToolCategory) -> Bool { a.severity < b.severity }
}

public enum ToolRisk: String, Sendable, Comparable, CaseIterable {
    case low, medium, high

    public static func < (a: ToolRisk, b: ToolRisk) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

public enum ClassificationConfidence: String, Sendable, Comparable, CaseIterable {
    case low, medium, high

    public static func < (a: ClassificationConfidence, b: ClassificationConfidence) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    var lowered: ClassificationConfidence { self == .high ? .medium : .low }
}
