extension Collection<UInt8> {
    /// Whether `needle`'s UTF-8 bytes occur in order, in one pass: how raw answers are screened before the cost of
    /// a parse. Correct for needles whose first byte occurs in them only at the start and the end, like `"key"`.
    func containsBytes(of needle: StaticString) -> Bool {
        let pattern = UnsafeBufferPointer(start: needle.utf8Start, count: needle.utf8CodeUnitCount)
        var matched = 0
        for byte in self {
            if byte == pattern[matched] {
                matched += 1
                if matched == pattern.count { return true }
            } else {
                matched = byte == pattern[0] ? 1 : 0
            }
        }
        return false
    }
}
