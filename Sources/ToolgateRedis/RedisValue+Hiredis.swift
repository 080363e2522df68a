import CHiredis

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RedisValue {
    /// Copies a hiredis reply tree; the caller still frees it with `freeReplyObject`.
    init(reply: UnsafePointer<redisReply>) {
        let node = reply.pointee
        switch node.type {
        case REDIS_REPLY_STATUS:
            self = .simpleString(Self.text(node.str, node.len))
        case REDIS_REPLY_ERROR:
            self = .error(Self.text(node.str, node.len))
        case REDIS_REPLY_INTEGER:
            self = .integer(node.integer)
        case REDIS_REPLY_STRING:
            self = .bulkString(Self.bytes(node.str, node.len))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(node.elements)
            for index in 0..<node.elements {
                guard let element = node.element[index] else { continue }
                elements.append(RedisValue(reply: element))
            }
            self = .array(elements)
        case REDIS_REPLY_NIL:
            // `installNullKindMarker` records which null it was; hiredis alone gives both the same type.
            self = node.integer == Int64(REDIS_REPLY_ARRAY) ? .array(nil) : .bulkString(nil)
        default:
            self = .error("toolgate: unknown hiredis reply type \(node.type)")
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    private static func text(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> String {
        String(decoding: bytes(pointer, length), as: UTF8.self)
    }

    /// hiredis 0.14 builds `$-1` and `*-1` into the same `REDIS_REPLY_NIL` object. This swaps in a nil constructor
    /// that stores the RESP type the reader was parsing in the reply's unused `integer` field, so `.array(nil)` and
    /// `.bulkString(nil)` stay apart. The other constructors, and `freeReplyObject`, stay hiredis's own.
    ///
    /// `functions` must outlive the reader (hiredis calls `freeObject` through it in `redisFree`).
    static func installNullKindMarker(
        on context: UnsafeMutablePointer<redisContext>, functions: UnsafeMutablePointer<redisReplyObjectFunctions>
    ) {
        guard let reader = context.pointee.reader, let defaults = reader.pointee.fn else { return }
        functions.pointee = defaults.pointee
        functions.pointee.createNil = { task in
            guard let task, let raw = calloc(1, MemoryLayout<redisReply>.stride) else { return nil }
            let reply = raw.bindMemory(to: redisReply.self, capacity: 1)
            reply.pointee.type = REDIS_REPLY_NIL
            reply.pointee.integer = Int64(task.pointee.type)
            if let parent = task.pointee.parent, let parentObject = parent.pointee.obj {
                let parentReply = parentObject.assumingMemoryBound(to: redisReply.self)
                parentReply.pointee.element[Int(task.pointee.idx)] = reply
            }
            return raw
        }
        reader.pointee.fn = functions
    }
}
