import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whole-file writes that a reader (a client reading its MCP config, a sidecar reloading its servers file) never sees
/// half done: the bytes go to a new file beside the target, reach the disk, then take its name in one rename.
enum AtomicFile {
    struct Failure: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "\(path): cannot write: \(reason)" }
    }

    /// Writes `bytes` to `path` with permission bits `mode` (not narrowed by the umask: a client's 0600 config stays
    /// 0600, and so does a 0644 one). A symbolic link at `path` is followed, so a config kept in a dotfiles
    /// repository stays a link to the rewritten file.
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws(Failure) {
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let directory = (target as NSString).deletingLastPathComponent
        let name = (target as NSString).lastPathComponent
        let temporary = (directory as NSString).appendingPathComponent(".\(name).toolgate-\(UInt64.random(in: 0...UInt64.max))")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(path: path, reason: Self.reason(errno)) }
        var failure: Int32?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = systemWrite(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += n
            }
        }
        if failure == nil, fchmod(fd, mode) != 0 { failure = errno }
        if failure == nil, fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == nil, rename(temporary, target) != 0 { failure = errno }
        if let failure {
            unlink(temporary)
            throw Failure(path: path, reason: Self.reason(failure))
        }
    }

    /// The permission bits of the file at `path` (following links), or nil when there is none.
    static func mode(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }

    static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    private static func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
            Glibc.write(fd, pointer, count)
        #else
            Darwin.write(fd, pointer, count)
        #endif
    }
}
