/// Decides when a watched file has changed and settled, from what each poll saw: no I/O, no clock of its own, so
/// it is tested directly. A change is acted on once the file has looked the same on two polls in a row (a writer
/// still busy keeps changing size or mtime); editors that replace the file by rename and Kubernetes' ConfigMap
/// symlink swaps show as a new inode, in-place writes as a new size or mtime.
struct FileChangeDebouncer: Sendable {
    /// What `stat` (following symlinks) says of a file; nil when it is missing.
    struct Signature: Sendable, Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedNanos: Int64
        var changedNanos: Int64
    }

    /// What the file looked like when last acted on (or at start).
    private var applied: Signature?
    /// What the previous poll saw.
    private var lastSeen: Signature?

    init(initial: Signature?) {
        applied = initial
        lastSeen = initial
    }

    /// One poll's observation; true when the file changed since it was last acted on and has settled: act now.
    mutating func observe(_ signature: Signature?) -> Bool {
        defer { lastSeen = signature }
        guard signature == lastSeen, signature != applied else { return false }
        applied = signature
        return true
    }
}
