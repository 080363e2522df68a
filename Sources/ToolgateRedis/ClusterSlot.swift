/// Redis Cluster's key → slot function: CRC16 (XMODEM) of the key, or of its hash tag (the text between the first
/// `{` and the next `}`, when not empty), modulo 16384. toolgate's keys carry `{scope:subject}`, so one subject's
/// counters share a slot.
public enum ClusterSlot {
    public static let count = 16_384

    public static func of(_ key: some Collection<UInt8>) -> Int {
        let bytes = Array(key)
        var hashed = bytes[...]
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
            let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            hashed = bytes[(open + 1)..<close]
        }
        var crc: UInt16 = 0
        for byte in hashed { crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)] }
        return Int(crc) & (count - 1)
    }

    public static func of(_ key: String) -> Int { of(Array(key.utf8)) }

    /// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as the Redis Cluster specification gives it.
    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
