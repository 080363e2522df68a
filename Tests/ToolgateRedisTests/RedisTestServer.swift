import Foundation
import Synchronization
import ToolgateRedis

#if canImport(Glibc)
import Glibc
#endif

/// A redis-server of the test's own, on a free loopback port in a temporary directory, so a test may kill,
/// restart or SIGSTOP it without disturbing any other test.
///
/// `@unchecked Sendable`: `process` changes only in `start`/`kill`/`stop`, which one test calls in sequence;
/// the mutex makes the hand-over between those calls visible across threads.
final class RedisTestServer: @unchecked Sendable {
    let port: Int
    /// Extra `redis-server` arguments, such as `["--requirepass", "pw"]`.
    let arguments: [String]
    /// Passed to redis-cli with `-a`, when the server needs one.
    let cliPassword: String?
    private let directory: URL
    private let process = Mutex<Process?>(nil)

    private init(port: Int, arguments: [String], cliPassword: String?, directory: URL) {
        self.port = port
        self.arguments = arguments
        self.cliPassword = cliPassword
        self.directory = directory
    }

    /// Starts a server, runs `body`, and stops the server even when `body` throws.
    static func with<T>(
        _ arguments: [String] = [], cliPassword: String? = nil, _ body: (RedisTestServer) async throws -> T
    ) async throws -> T {
        let server = try await start(arguments, cliPassword: cliPassword)
        defer { server.stop() }
        return try await body(server)
    }

    static func start(_ arguments: [String] = [], cliPassword: String? = nil) async throws -> RedisTestServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("toolgate-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let server = RedisTestServer(port: try freePort(), arguments: arguments, cliPassword: cliPassword, directory: directory)
        try await server.launch()
        return server
    }

    var url: RedisURL { RedisURL(host: "127.0.0.1", port: port) }

    func url(_ suffix: String) throws -> RedisURL {
        try RedisURL(parsing: "redis://\(suffix.isEmpty ? "" : suffix)127.0.0.1:\(port)")
    }

    /// Starts redis-server again on the same port, after `kill()`.
    func restart() async throws {
        try await launch()
    }

    /// SIGKILL: the server vanishes as in a crash, and its clients see their connections reset.
    func kill() {
        guard let running = process.withLock({ process in defer { process = nil }; return process }) else { return }
        Glibc.kill(running.processIdentifier, SIGKILL)
        running.waitUntilExit()
    }

    /// SIGSTOP: the server keeps accepting TCP connections (the kernel does that) but answers nothing.
    func pause() {
        signal(SIGSTOP)
    }

    func resume() {
        signal(SIGCONT)
    }

    /// SIGKILL too: the server spawned from a Swift concurrency thread inherits that thread's signal mask, in
    /// which SIGTERM is blocked, and it keeps no data worth a clean shutdown.
    func stop() {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs redis-cli against the server (not usable while it is paused) and returns its trimmed output.
    @discardableResult
    func cli(_ command: String...) throws -> String {
        try cli(command)
    }

    @discardableResult
    func cli(_ command: [String]) throws -> String {
        let cli = Process()
        cli.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        var arguments = ["-h", "127.0.0.1", "-p", "\(port)"]
        if let cliPassword { arguments += ["-a", cliPassword, "--no-auth-warning"] }
        cli.arguments = arguments + command
        let output = Pipe()
        cli.standardOutput = output
        cli.standardError = FileHandle.nullDevice
        try cli.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        cli.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func signal(_ number: Int32) {
        if let running = process.withLock({ $0 }) { Glibc.kill(running.processIdentifier, number) }
    }

    private func launch() async throws {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        server.arguments = [
            "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", directory.path, "--daemonize", "no", "--loglevel", "warning",
        ] + arguments
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        process.withLock { $0 = server }
        // Ready once redis-cli gets an answer; with requirepass, NOAUTH is an answer too.
        // Generous: the suite runs many tests at once on two cores, some blocking threads of the shared pool.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            guard server.isRunning else { throw TestServerError(message: "redis-server exited at start: \(arguments)") }
            if let answer = try? cli("PING"), answer == "PONG" || answer.contains("NOAUTH") { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        stop()
        throw TestServerError(message: "redis-server did not answer PING on port \(port) within 30 s")
    }

    /// Binds port 0 on loopback and gives the port back; the kernel does not hand it out again right away.
    /// Nobody listens there, so it also serves as a port where connecting is refused.
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TestServerError(message: "socket() failed") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(socket, generic, length) == 0 && getsockname(socket, generic, &length) == 0
            }
        }
        guard bound else { throw TestServerError(message: "could not bind a loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

struct TestServerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
