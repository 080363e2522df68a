/// Strings from outside (tool names, methods, keys, values) compare by their Unicode scalars, never by Swift's
/// canonical equivalence. Equivalence would make KELVIN SIGN (U+212A) equal `K`, so a rule would check one key
/// while the upstream reads another; and it costs time quadratic in the length of a long run of combining marks,
/// so one request could stall the sidecar. UTF-8 bytes are the scalars, so comparing and hashing them is exact and
/// linear.
extension String {
    /// Scalar-for-scalar equality.
    @inlinable
    public func isExactly(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else {
            WorkMeter.charge(1)
            return false
        }
        WorkMeter.charge(utf8.count + 1)
        return utf8.elementsEqual(other.utf8)
    }

    /// Whether `needle`'s scalars occur in order inside this string (an empty needle always does). Knuth–Morris–
    /// Pratt on the bytes: linear in both lengths, whatever they hold.
    public func containsExactly(_ needle: String) -> Bool {
        let n = Array(needle.utf8)
        WorkMeter.charge(n.count + utf8.count + 1)
        if n.isEmpty { return true }
        var failure = [Int](repeating: 0, count: n.count)
        var k = 0
        for i in 1..<n.count {
            while k > 0, n[i] != n[k] { k = failure[k - 1] }
            if n[i] == n[k] { k += 1 }
            failure[i] = k
        }
        var matched = 0
        for byte in utf8 {
            while matched > 0, byte != n[matched] { matched = failure[matched - 1] }
            if byte == n[matched] { matched += 1 }
            if matched == n.count { return true }
        }
        return false
    }
}

/// A dictionary or set key that hashes and compares a string by its UTF-8 bytes (see `isExactly`).
public struct ExactKey: Hashable, Sendable {
    public let text: String

    public init(_ text: String) { self.text = text }

    public static func == (a: ExactKey, b: ExactKey) -> Bool { a.text.isExactly(b.text) }

    public func hash(into hasher: inout Hasher) {
        var text = text
        WorkMeter.charge(text.utf8.count + 1)
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
