/// Why a byte sequence is not the JSON document toolgate accepts.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset of the problem in the input.
    public let offset: Int
    public let message: String

    /// For a message on the wire (one line, written by a program): the byte offset.
    public var description: String { "invalid JSON at byte \(offset): \(message)" }

    /// For a file a person edits (a policy, a grants file): the line and column an editor shows.
    public func description(in input: [UInt8]) -> String {
        let (line, column) = location(in: input)
        return "invalid JSON at line \(line), column \(column): \(message)"
    }

    /// Where `offset` falls in `input`: line and column from 1, lines ended by LF, the column counted in Unicode
    /// scalars (UTF-8 lead bytes), as editors count.
    public func location(in input: [UInt8]) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for byte in input.prefix(max(0, offset)) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }
}
