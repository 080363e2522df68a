#if canImport(Glibc)
import Glibc
#endif
import CChildProcess
import Foundation
import Synchronization

/// A program toolgate runs and talks to over pipes: the stdio upstream (`--upstream-command`). It runs in a process
/// group of its own; a guardian process ends that whole group when toolgate ends it, or when toolgate dies in any
/// way (SIGKILL included), so no server and none of its children (an `npx` and its `node`) outlives toolgate. The
/// server itself also gets PR_SET_PDEATHSIG.
public final class ChildProcess: Sendable {
    public struct LaunchError: Error, Sendable, CustomStringConvertible {
        public let command: [String]
        public let errno: Int32
        public var description: String {
            "cannot start \(command.first ?? "the upstream command"): \(String(cString: strerror(errno)))"
        }
    }

    public let pid: Int32
    private let guardianPID: Int32
    private let input: Mutex<Int32>
    private let guardian: Mutex<Int32>
    private let exit: ExitStatus
    /// Lines the program writes on stdout (without the newline), and on stderr.
    public let outputLines: AsyncStream<[UInt8]>
    public let errorLines: AsyncStream<[UInt8]>

    /// Starts `command` (`command[0]` searched in PATH) with exactly `environment`. `maximumLineBytes` bounds a
    /// line: a longer one is cut there (the rest of it dropped), so a program cannot make toolgate buffer without end.
    public static func launch(
        _ command: [String], environment: [String: String], maximumLineBytes: Int = 32 << 20
    ) throws(LaunchError) -> ChildProcess {
        guard !command.isEmpty else { throw LaunchError(command: command, errno: EINVAL) }
        // Writing to a program that has exited must be an EPIPE error to handle, not a signal that ends toolgate.
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
        let result = ProcessSpawner.shared.spawn(command, environment: environment)
        switch result {
        case .failure(let failure): throw LaunchError(command: command, errno: failure.errno)
        case .success(let child): return ChildProcess(child, maximumLineBytes: maximumLineBytes)
        }
    }

    private init(_ child: toolgate_child, maximumLineBytes: Int) {
        pid = child.pid
        guardianPID = child.guardian_pid
        input = Mutex(child.stdin_fd)
        guardian = Mutex(child.guardian_fd)
        exit = ExitStatus()
        outputLines = LineReader.lines(from: child.stdout_fd, name: "toolgate-upstream-stdout", maximumLineBytes: maximumLineBytes)
        errorLines = LineReader.lines(from: child.stderr_fd, name: "toolgate-upstream-stderr", maximumLineBytes: 64 << 10)
        let pid = child.pid
        let guardianPID = child.guardian_pid
        let thread = Thread { [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            exit.record(status)
            // The program is gone: its guardian ends what is left of its group (children it left behind) and exits.
            releaseGuardian()
            if guardianPID > 0 {
                while waitpid(guardianPID, &status, 0) < 0, errno == EINTR {}
            }
        }
        thread.name = "toolgate-upstream-wait"
        thread.start()
    }

    /// Writes one line (a newline is added). Throws when the program no longer reads its stdin.
    public func write(line: [UInt8]) throws(LaunchError) {
        let bytes = line + [0x0A]
        try input.withLock { (fd: inout Int32) throws(LaunchError) in
            guard fd >= 0 else { throw LaunchError(command: [], errno: EPIPE) }
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw LaunchError(command: [], errno: errno)
                }
                offset += written
            }
        }
    }

    /// Closes the program's stdin: the MCP stdio transport's first step of a shutdown.
    public func closeInput() {
        input.withLock { fd in
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    /// Signals the program's whole process group.
    public func signal(_ signal: Int32) {
        if !exit.hasExited { kill(-pid, signal) }
    }

    public var hasExited: Bool { exit.hasExited }

    /// The wait status once the program has exited (`waitpid`), nil before.
    public var exitStatus: Int32? { exit.status }

    /// Waits until the program exits or `timeout` passes; true when it exited.
    public func waitForExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !exit.hasExited {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// The MCP stdio shutdown: stdin closed, then SIGTERM to the group after `grace`, then SIGKILL after another
    /// `grace`. Then the guardian is released, which ends whatever of the group is left (children of the program).
    public func stop(grace: Duration) async {
        closeInput()
        if await !waitForExit(timeout: grace) {
            signal(SIGTERM)
            if await !waitForExit(timeout: grace) {
                signal(SIGKILL)
                _ = await waitForExit(timeout: .seconds(5))
            }
        }
        releaseGuardian()
    }

    /// Closes the guardian's pipe: it then ends the program's process group (what is left of it) and exits.
    public func releaseGuardian() {
        guardian.withLock { fd in
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    /// Human words for a wait status: "exited with status 3", "killed by signal 9".
    public static func describe(status: Int32) -> String {
        let signal = status & 0x7F
        if signal == 0 { return "exited with status \((status >> 8) & 0xFF)" }
        return "killed by signal \(signal)"
    }
}

/// The exit status, set once by the waiting thread.
private final class ExitStatus: Sendable {
    private let value = Mutex<Int32?>(nil)
    func record(_ status: Int32) { value.withLock { $0 = status } }
    var status: Int32? { value.withLock { $0 } }
    var hasExited: Bool { status != nil }
}

/// Spawns on one thread that lives as long as the process: PR_SET_PDEATHSIG fires when the *thread* that forked a
/// child exits, and the threads of Swift's cooperative pool may come and go.
final class ProcessSpawner: @unchecked Sendable {
    // @unchecked: `pending` and `results` are guarded by `condition`.
    static let shared = ProcessSpawner()

    private let condition = NSCondition()
    private var pending: [(id: Int, command: [String], environment: [String: String])] = []
    private var results: [Int: Result<toolgate_child, SpawnFailure>] = [:]
    private var nextID = 0

    struct SpawnFailure: Error { let errno: Int32 }

    private init() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "toolgate-spawner"
        thread.start()
    }

    func spawn(_ command: [String], environment: [String: String]) -> Result<toolgate_child, SpawnFailure> {
        condition.lock()
        nextID += 1
        let id = nextID
        pending.append((id, command, environment))
        condition.broadcast()
        while results[id] == nil { condition.wait() }
        let result = results.removeValue(forKey: id)!
        condition.unlock()
        return result
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty { condition.wait() }
            let job = pending.removeFirst()
            condition.unlock()
            let result = Self.spawnNow(job.command, environment: job.environment)
            condition.lock()
            results[job.id] = result
            condition.broadcast()
            condition.unlock()
        }
    }

    private static func spawnNow(_ command: [String], environment: [String: String]) -> Result<toolgate_child, SpawnFailure> {
        // Every C string is made before the fork: the child may only make async-signal-safe calls.
        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var child = toolgate_child()
        let status = argv.withUnsafeBufferPointer { args in
            envp.withUnsafeBufferPointer { env in
                toolgate_spawn(command[0], args.baseAddress, env.baseAddress, &child)
            }
        }
        return status == 0 ? .success(child) : .failure(SpawnFailure(errno: status))
    }
}

/// Lines of a pipe, read on a thread of their own (a blocking read must not hold a cooperative thread).
enum LineReader {
    static func lines(from descriptor: Int32, name: String, maximumLineBytes: Int) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .unbounded)
        let thread = Thread {
            defer {
                Glibc.close(descriptor)
                continuation.finish()
            }
            var pending: [UInt8] = []
            var cut = false
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                var start = 0
                for i in 0..<count where buffer[i] == 0x0A {
                    if !cut { pending += buffer[start..<i].prefix(max(0, maximumLineBytes - pending.count)) }
                    if pending.last == 0x0D { pending.removeLast() }
                    continuation.yield(pending)
                    pending = []
                    cut = false
                    start = i + 1
                }
                if !cut {
                    pending += buffer[start..<count].prefix(max(0, maximumLineBytes - pending.count))
                    if pending.count >= maximumLineBytes { cut = true }
                }
            }
            if !pending.isEmpty { continuation.yield(pending) }
        }
        thread.name = name
        thread.start()
        return stream
    }
}
