extension StringProtocol {
    /// Without leading and trailing whitespace. Header values and tokens arrive padded; the core has no Foundation.
    public var trimmingWhitespace: String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return String(s)
    }
}
