#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServiceLifecycle

/// Reloads the policy (and grants) when either file changes, as SIGHUP does: polls `stat` (which follows symlinks,
/// so a ConfigMap's swapped `..data` link counts) every `interval`, and acts once a change has settled
/// (`FileChangeDebouncer`). Polling rather than inotify: inotify watches an inode, so a file replaced by rename or
/// a swapped symlink is lost to it unless whole directories are watched, and a stat per file per half second
/// costs nothing.
public struct PolicyFileWatcher: Service {
    let reloader: PolicyReloader
    let paths: [String]
    let interval: Duration
    let logger: Logger

    public init(reloader: PolicyReloader, interval: Duration = .milliseconds(500), logger: Logger) {
        self.reloader = reloader
        paths = [reloader.path] + (reloader.grantsPath.map { [$0] } ?? []) + (reloader.servers.map { [$0.path] } ?? [])
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        var debouncers = paths.map { FileChangeDebouncer(initial: Self.signature(of: $0)) }
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            var changed: [String] = []
            for index in paths.indices where debouncers[index].observe(Self.signature(of: paths[index])) {
                changed.append(paths[index])
            }
            guard !changed.isEmpty else { continue }
            logger.info("policy files changed on disk; reloading", metadata: ["changed": "\(changed)"])
            await reloader.reloadAll(onlyIfChanged: true)
        }
    }

    static func signature(of path: String) -> FileChangeDebouncer.Signature? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileChangeDebouncer.Signature(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedNanos: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
            changedNanos: Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec))
    }
}
