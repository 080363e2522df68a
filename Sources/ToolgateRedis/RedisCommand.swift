import CHiredis

/// A command's arguments, packed into one buffer by the calling task so the connection thread only hands
/// pointers to `redisAppendCommandArgv`.
///
/// Commands share pipelined connections with every other caller, so a command that changes the connection
/// itself or answers other than once per command would break the next caller's reply. Those are refused here.
struct RedisCommand: Sendable {
    /// All arguments back to back, plus one spare byte so the buffer always has a base address.
    private let bytes: [UInt8]
    private let lengths: [Int]

    /// Names compared in upper case. Transactions interleave with other callers' commands; the rest change the
    /// shared connection's database, user, protocol or reply mode, or end it.
    private static let refused: [String: String] = [
        "MULTI": "transactions would take in other callers' commands: use a Lua script (EVALSHA) instead",
        "EXEC": "transactions would take in other callers' commands: use a Lua script (EVALSHA) instead",
        "DISCARD": "transactions would take in other callers' commands: use a Lua script (EVALSHA) instead",
        "WATCH": "transactions would take in other callers' commands: use a Lua script (EVALSHA) instead",
        "UNWATCH": "transactions would take in other callers' commands: use a Lua script (EVALSHA) instead",
        "SELECT": "the database is chosen once in the Redis URL (redis://host:port/DB)",
        "AUTH": "credentials are given once in the Redis URL (redis://user:password@host)",
        "HELLO": "the client speaks RESP2 only",
        "RESET": "it would reset the login and database of a shared connection",
        "QUIT": "it would close a shared connection",
        "MONITOR": "it turns the connection into a stream of other clients' commands",
        "SUBSCRIBE": "pub/sub needs a connection of its own",
        "PSUBSCRIBE": "pub/sub needs a connection of its own",
        "SSUBSCRIBE": "pub/sub needs a connection of its own",
        "UNSUBSCRIBE": "pub/sub needs a connection of its own",
        "PUNSUBSCRIBE": "pub/sub needs a connection of its own",
        "SUNSUBSCRIBE": "pub/sub needs a connection of its own",
    ]

    /// Checks that the command can share a pipelined connection, then packs it.
    init(_ arguments: [[UInt8]]) throws(RedisError) {
        guard let first = arguments.first, !first.isEmpty else {
            // `*0` gets no reply at all, which would shift every later reply to the wrong caller.
            throw .protocolError("a command needs a name: the argument list is empty")
        }
        let name = String(decoding: first, as: UTF8.self).uppercased()
        if let why = Self.refused[name] {
            throw .protocolError("\(name) cannot run on a shared pipelined connection: \(why)")
        }
        if name == "CLIENT", arguments.count > 1, String(decoding: arguments[1], as: UTF8.self).uppercased() == "REPLY" {
            throw .protocolError("CLIENT REPLY cannot run on a shared pipelined connection: every command must get one reply")
        }
        self.init(packing: arguments)
    }

    /// The handshake (AUTH, SELECT) and health checks, which the connection writes itself.
    init(internal arguments: [String]) {
        self.init(packing: arguments.map { Array($0.utf8) })
    }

    private init(packing arguments: [[UInt8]]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(arguments.reduce(1) { $0 + $1.count })
        for argument in arguments { bytes += argument }
        bytes.append(0)
        self.bytes = bytes
        lengths = arguments.map(\.count)
        // RESP: `*<count>\r\n`, then `$<length>\r\n<bytes>\r\n` per argument, as hiredis formats it.
        encodedLength = lengths.reduce(Self.decimalDigits(lengths.count) + 3) { $0 + Self.decimalDigits($1) + 5 + $1 }
    }

    /// The arguments as text, for tests and diagnostics.
    var argumentTexts: [String] {
        var offset = 0
        return lengths.map { length in
            defer { offset += length }
            return String(decoding: bytes[offset..<(offset + length)], as: UTF8.self)
        }
    }

    /// Bytes this command takes in the output stream: what the reply queue counts to know when it was sent.
    let encodedLength: Int

    private static func decimalDigits(_ n: Int) -> Int {
        var digits = 1, rest = n
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        return digits
    }

    /// Formats the command into the context's output buffer; nothing is written to the socket yet.
    func append(to context: UnsafeMutablePointer<redisContext>) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var argv: [UnsafePointer<CChar>?] = []
            argv.reserveCapacity(lengths.count)
            var offset = 0
            for length in lengths {
                argv.append(base + offset)
                offset += length
            }
            return argv.withUnsafeMutableBufferPointer { argvBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    redisAppendCommandArgv(context, Int32(lengths.count), argvBuffer.baseAddress, lengthBuffer.baseAddress)
                        == REDIS_OK
                }
            }
        }
    }
}
