/// Sorts a tool into a category with a risk, a confidence and the evidence for it (DESIGN.md section 11), from
/// what its server publishes: annotations, the name's words, the description and the input schema. Every signal is
/// a row of `ToolClassifier.signals` with a weight; a category applies when its signals reach 1. Two rules stand
/// above the weights: a tool whose annotation or name says destructive is never classified below destructive, and
/// an annotation that contradicts the name is reported as a conflict (with low confidence), not settled quietly.
public enum ToolClassifier {
    /// One row of the table: where it is looked for, what is matched, what it points to, how strongly.
    public struct Rule: Sendable {
        public enum Source: String, Sendable { case annotation, name, description, schema }
        let source: Source
        let match: String
        let category: ToolCategory
        let weight: Double
    }

    static let threshold = 1.0

    /// Name words: exact tokens of the name (`delete_file` and `deleteFile` are `delete`, `file`), base forms only,
    /// so `list_deleted` is not a deletion.
    static let nameWords: [(ToolCategory, Double, [String])] = [
        (.destructive, 1.5, ["delete", "remove", "rm", "drop", "destroy", "purge", "erase", "wipe", "truncate",
                             "terminate", "kill", "revoke", "uninstall", "unlink", "rmdir", "reset", "overwrite",
                             "shred", "nuke", "clear", "flush", "deprovision", "detach"]),
        (.execute, 1.5, ["exec", "execute", "run", "shell", "bash", "sh", "cmd", "command", "eval", "evaluate",
                         "spawn", "script", "terminal", "invoke", "deploy", "python", "node", "sql"]),
        (.financial, 1.5, ["pay", "payment", "payments", "charge", "refund", "payout", "payouts", "invoice", "purchase",
                           "buy", "withdraw", "deposit", "transfer", "billing", "remit", "donate", "subscription"]),
        (.write, 1.0, ["create", "add", "update", "edit", "write", "set", "put", "post", "send", "upload", "insert",
                       "modify", "rename", "move", "push", "commit", "merge", "publish", "comment", "label", "assign",
                       "save", "patch", "append", "mkdir", "fork", "star", "close", "approve", "reply",
                       "submit", "register", "enable", "disable", "schedule", "book", "cancel", "archive", "tag",
                       "upsert", "store", "remember", "generate", "replace", "apply", "import", "sync"]),
        (.read, 1.0, ["get", "list", "read", "search", "find", "fetch", "query", "show", "describe", "view", "lookup",
                      "retrieve", "browse", "count", "check", "stat", "inspect", "status", "diff", "tree", "log",
                      "logs", "download", "explain", "summarize", "resolve", "validate", "preview", "recall",
                      "directory", "info", "whoami", "ping", "analyze", "compare", "lint"]),
    ]

    /// Description phrases (lower case, matched anywhere): weaker than the name, since descriptions also say what a
    /// tool does not do.
    static let descriptionPhrases: [(ToolCategory, Double, [String])] = [
        (.destructive, 1.0, ["permanently", "irreversib", "cannot be undone", "can't be undone", "can not be undone",
                             "destroys", "wipes", "erases"]),
        (.destructive, 0.5, ["delete", "remove", "drop"]),
        (.execute, 1.0, ["execute", "runs a command", "run a command", "shell command", "arbitrary code", "in a shell",
                         "terminal command", "run a script", "runs a script", "evaluate code"]),
        (.financial, 1.0, ["charges the", "charge a", "refund", "transfer money", "transfers money", "send money",
                           "invoice", "purchase", "payout"]),
        (.financial, 0.5, ["payment", "subscription", "billing", "funds"]),
        (.write, 0.5, ["create", "update", "modif", "writes", "write to", "send", "upload", "overwrit", "post a",
                       "posts a", "adds", "add a", "edit"]),
        (.read, 0.5, ["read-only", "read only", "retriev", "returns", "lists", "list of", "search", "get ", "gets ",
                      "fetch", "look up", "looks up", "reads", "read the", "read a", "shows"]),
    ]

    /// Input properties: a `command` says execute, an `amount` with a `currency` says financial.
    static let schemaProperties: [(ToolCategory, Double, [String])] = [
        (.execute, 1.0, ["command", "cmd", "script", "shell", "code", "program", "expression", "commandline", "args_line"]),
        (.financial, 1.0, ["card_number", "cardnumber", "iban", "account_number", "payment_method", "paymentmethod"]),
        (.financial, 0.6, ["amount", "price", "cost", "total"]),
        (.financial, 0.6, ["currency"]),
    ]

    public static func classify(_ tool: ToolDefinition) -> ToolClassification {
        var signals: [ClassificationSignal] = []
        let hints = tool.annotations
        if hints.readOnly == true { signals.append(.init(source: .annotation, seen: "readOnlyHint: true", category: .read, weight: 3)) }
        if hints.destructive == true, hints.readOnly != true {
            signals.append(.init(source: .annotation, seen: "destructiveHint: true", category: .destructive, weight: 3))
        }
        if hints.readOnly == false, hints.destructive != true {
            signals.append(.init(source: .annotation, seen: "readOnlyHint: false", category: .write, weight: 1))
        }
        let words = tokens(of: tool.name)
        // The first word any list knows is the name's verb (`github_create_issue`: `create`); later ones
        // (`get_command_history`) count for less, and alone do not decide.
        var verbSeen = false
        for word in words {
            let matches = nameWords.filter { $0.2.contains(word) }
            for (category, weight, _) in matches {
                signals.append(.init(
                    source: .name, seen: "name word \"\(word)\"", category: category, weight: verbSeen ? weight * 0.6 : weight))
            }
            if !matches.isEmpty { verbSeen = true }
        }
        let description = tool.description.lowercased()
        for (category, weight, phrases) in descriptionPhrases {
            if let phrase = phrases.first(where: { description.contains($0) }) {
                signals.append(.init(source: .description, seen: "description \"\(phrase)\"", category: category, weight: weight))
            }
        }
        let properties = Set(tool.properties.map { $0.name.lowercased() })
        for (category, weight, names) in schemaProperties {
            if let name = names.first(where: properties.contains) {
                signals.append(.init(source: .schema, seen: "property \"\(name)\"", category: category, weight: weight))
            }
        }
        return decide(tool, signals: signals, nameWords: words)
    }

    private static func decide(_ tool: ToolDefinition, signals all: [ClassificationSignal], nameWords: [String]) -> ToolClassification {
        let hints = tool.annotations
        var conflicts: [String] = []
        var notes: [String] = []
        // An annotation saying read-only outweighs what the description and schema suggest; only the name can
        // contradict it, and that is a conflict. A name whose verb reads (`list_payment_intents`) likewise is not
        // made a write by the nouns after it or by its description, unless an annotation says so.
        let readVerb = all.first { $0.source == .name }.map { $0.category == .read && $0.weight >= threshold } ?? false
        let counted: [ClassificationSignal]
        if hints.readOnly == true {
            counted = all.filter { $0.category == .read || $0.source == .name || $0.source == .annotation }
        } else if readVerb {
            counted = all.filter { $0.category == .read || $0.source == .annotation || $0.source == .schema && $0.category == .execute }
        } else {
            counted = all
        }
        let nameCategories = Set(all.filter { $0.source == .name }.map(\.category))
        if hints.readOnly == true, let contrary = nameCategories.filter({ $0 != .read }).max() {
            conflicts.append("readOnlyHint says read-only, but the name says \(contrary.rawValue)")
        }
        if hints.readOnly == true, hints.destructive == true {
            conflicts.append("readOnlyHint and destructiveHint are both true")
        }
        if hints.destructive == false, nameCategories.contains(.destructive) {
            conflicts.append("destructiveHint is false, but the name says destructive")
        }
        var scores: [ToolCategory: Double] = [:]
        for signal in counted { scores[signal.category, default: 0] += signal.weight }
        let category = ToolCategory.allCases.reversed().first { scores[$0, default: 0] >= threshold }
        var chosen = category ?? .write
        if category == nil {
            notes.append(scores.isEmpty ? "no signal: classified write, to be safe" : "only weak signals: classified write, to be safe")
        }
        // Never below destructive when an annotation or the name says so (financial still ranks above).
        if hints.destructive == true || nameCategories.contains(.destructive), chosen < .destructive { chosen = .destructive }
        let supporting = counted.filter { $0.category == chosen }
        var confidence: ClassificationConfidence =
            if !supporting.filter({ $0.source == .annotation }).isEmpty || Set(supporting.map(\.source)).count >= 2 {
                .high
            } else if !supporting.isEmpty, category != nil {
                .medium
            } else {
                .low
            }
        if tool.description.trimmingWhitespace.isEmpty {
            confidence = confidence.lowered
            notes.append("no description: confidence reduced")
        }
        if !conflicts.isEmpty { confidence = .low }
        return ToolClassification(
            category: chosen, risk: risk(chosen, hints: hints), confidence: confidence,
            evidence: supporting.isEmpty ? counted : supporting, conflicts: conflicts, notes: notes)
    }

    static func risk(_ category: ToolCategory, hints: ToolDefinition.Annotations) -> ToolRisk {
        switch category {
        case .read: hints.openWorld == true ? .medium : .low
        case .write: hints.idempotent == true && hints.openWorld == false ? .low : .medium
        case .execute, .destructive, .financial: .high
        }
    }

    /// `deleteFile`, `delete_file`, `delete-file` and `files.delete` are all `delete` and `file`: words split at
    /// case changes, digits and separators, lower-cased, plural `s` kept (the tables list the forms they mean).
    static func tokens(of name: String) -> [String] {
        var words: [String] = []
        var current = ""
        var previous: Character?
        for character in name {
            if !(character.isLetter || character.isNumber) {
                if !current.isEmpty { words.append(current) }
                current = ""
            } else if character.isUppercase, let previous, previous.isLowercase || previous.isNumber {
                if !current.isEmpty { words.append(current) }
                current = String(character)
            } else {
                current.append(character)
            }
            previous = character
        }
        if !current.isEmpty { words.append(current) }
        return words.map { $0.lowercased() }
    }
}

/// A signal seen in a tool, as evidence.
public struct ClassificationSignal: Sendable, Equatable {
    public let source: ToolClassifier.Rule.Source
    /// What was seen: `readOnlyHint: true`, `name word "delete"`, `description "cannot be undone"`, `property "amount"`.
    public let seen: String
    public let category: ToolCategory
    public let weight: Double
}

public struct ToolClassification: Sendable, Equatable {
    public let category: ToolCategory
    public let risk: ToolRisk
    public let confidence: ClassificationConfidence
    /// The signals behind the category.
    public let evidence: [ClassificationSignal]
    /// Where the server's own hints and the name disagree.
    public let conflicts: [String]
    /// Why confidence is what it is ("no description: confidence reduced").
    public let notes: [String]
}
