/// Random choices read from the fuzzer's bytes, so the generators the property tests use (random rules, random
/// arguments) become coverage-guided: libFuzzer mutates the bytes and each byte steers one choice. A byte is
/// repeated across the word, so `Int.random(in:using:)`, which reads the high bits, picks in proportion to it.
/// When the bytes run out every choice is the largest: all zeros would never end, since `random(in:using:)`
/// rejects a zero draw for most ranges and draws again.
struct FuzzInputGenerator: RandomNumberGenerator {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func next() -> UInt64 {
        guard offset < bytes.count else { return .max }
        defer { offset += 1 }
        return UInt64(bytes[offset]) &* 0x0101_0101_0101_0101
    }
}
