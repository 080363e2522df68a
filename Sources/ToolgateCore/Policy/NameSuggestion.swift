/// "Did you mean …?" for a name that is close to one toolgate knows: a misspelled policy key (`acton`), or a policy
/// entry naming a tool the upstream spells differently. Pure and bounded: names over 256 scalars get no suggestion.
public enum NameSuggestion {
    /// The name within edit distance 2 (or a third of its length), if one is that close; never one that shares
    /// nothing with `name` (a distance as large as `name` itself: `id` is not a misspelling of `op`).
    public static func closest(to name: String, among names: [String]) -> String? {
        let target = Array(name.unicodeScalars)
        guard target.count <= 256 else { return nil }
        var best: (String, Int)?
        for candidate in names {
            let other = Array(candidate.unicodeScalars)
            guard other.count <= 256 else { continue }
            let distance = editDistance(target, other)
            if distance <= max(2, target.count / 3), distance < target.count, distance < (best?.1 ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.0
    }

    /// What validation says about a key it does not know: the closest allowed key, then every allowed one.
    public static func unknownKeyMessage(_ key: String, allowed: [String]) -> String {
        let sorted = allowed.sorted()
        let hint = closest(to: key, among: sorted).map { " (did you mean \"\($0)\"?)" } ?? ""
        return "unknown key \"\(String(key.unicodeScalars.prefix(64)))\"\(hint); expected one of: \(sorted.joined(separator: ", "))"
    }

    /// Levenshtein distance over Unicode scalars.
    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}
