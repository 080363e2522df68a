import ToolgateCore

/// Whether a POST's `Content-Type` says JSON. A body sent as `text/plain` or a form is refused (415) rather than
/// parsed anyway: a browser may send those cross-origin without a preflight, and an upstream that honours the type
/// would read something other than what toolgate checked.
enum RequestMediaType {
    /// `application/json`, any case, with or without parameters (`; charset=utf-8`).
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let essence = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return String(essence).trimmingWhitespace.lowercased().isExactly("application/json")
    }
}
