extension StringProtocol {
    /// Equality ignoring ASCII case, without allocating: header names and media types are compared on every request,
    /// and `lowercased()` makes a new string each time.
    public func equalsIgnoringASCIICase(_ other: some StringProtocol) -> Bool {
        var a = utf8.makeIterator()
        var b = other.utf8.makeIterator()
        while true {
            switch (a.next(), b.next()) {
            case (nil, nil): return true
            case (let x?, let y?) where Self.fold(x) == Self.fold(y): continue
            default: return false
            }
        }
    }

    /// Whether it starts with `prefix`, ignoring ASCII case, without allocating.
    public func hasPrefixIgnoringASCIICase(_ prefix: some StringProtocol) -> Bool {
        var a = utf8.makeIterator()
        for y in prefix.utf8 {
            guard let x = a.next(), Self.fold(x) == Self.fold(y) else { return false }
        }
        return true
    }

    @inline(__always)
    static func fold(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }
}
