import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Certificates made by `openssl` for one test: a CA, a server certificate for 127.0.0.1 and localhost signed by
/// it, a client certificate signed by it, and another CA that signed nothing the server shows (the wrong CA).
struct TestCertificates {
    let directory: URL
    var ca: String { path("ca.crt") }
    var otherCA: String { path("otherca.crt") }
    var serverCertificate: String { path("server.crt") }
    var serverKey: String { path("server.key") }
    var clientCertificate: String { path("client.crt") }
    var clientKey: String { path("client.key") }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func make(in directory: URL) throws -> TestCertificates {
        let script = """
            set -e
            ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days 2 -subj "/CN=toolgate test $1"; }
            ca ca
            ca otherca
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
            openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=toolgate"
            openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2
            """
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", script]
        shell.currentDirectoryURL = directory
        shell.standardOutput = FileHandle.nullDevice
        shell.standardError = FileHandle.nullDevice
        try shell.run()
        shell.waitUntilExit()
        guard shell.terminationStatus == 0 else {
            throw TestTLSRedis.Failure(description: "openssl could not make the test certificates")
        }
        return TestCertificates(directory: directory)
    }
}

/// A redis-server of one test's own, TLS only (`--port 0 --tls-port P`) or plaintext only, with certificates of its
/// own, in a temporary directory. Call `stop()` from a `defer` right after `start`.
final class TestTLSRedis: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let port: Int
    let certificates: TestCertificates
    let tls: Bool
    private let process: Process
    private let stopped = Mutex(false)

    private init(port: Int, certificates: TestCertificates, tls: Bool, process: Process) {
        self.port = port
        self.certificates = certificates
        self.tls = tls
        self.process = process
    }

    deinit { stop() }

    /// `requireClientCertificate`: `--tls-auth-clients yes`. `tls: false` starts a plaintext Redis (for rediss://
    /// to a plaintext port). `extra` is appended (such as `--requirepass pw`).
    static func start(tls: Bool = true, requireClientCertificate: Bool = false, extra: [String] = []) async throws -> TestTLSRedis {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("toolgate-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificates = try TestCertificates.make(in: directory)
        let port = try TestRedisCluster.freePortPairs(1)[0]
        var arguments = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory.path, "--daemonize", "no"]
        if tls {
            arguments += [
                "--port", "0", "--tls-port", "\(port)", "--tls-cert-file", certificates.serverCertificate,
                "--tls-key-file", certificates.serverKey, "--tls-ca-cert-file", certificates.ca,
                "--tls-auth-clients", requireClientCertificate ? "yes" : "no",
            ]
        } else {
            arguments += ["--port", "\(port)"]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = arguments + ["--logfile", directory.appendingPathComponent("redis.log").path] + extra
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let server = TestTLSRedis(port: port, certificates: certificates, tls: tls, process: process)
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw Failure(description: "redis-server exited at start: \(arguments)") }
            if let answer = try? server.cli("PING"), answer == "PONG" || answer.contains("NOAUTH") { return server }
            try await Task.sleep(for: .milliseconds(20))
        }
        server.stop()
        throw Failure(description: "redis-server did not answer PING on port \(port) within 30 s")
    }

    /// redis-cli with the CA and the client certificate (over TLS when the server is TLS-only).
    @discardableResult
    func cli(_ command: String...) throws -> String {
        let cli = Process()
        cli.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        var arguments = ["-h", "127.0.0.1", "-p", "\(port)"]
        if tls {
            arguments += [
                "--tls", "--cacert", certificates.ca, "--cert", certificates.clientCertificate, "--key", certificates.clientKey,
            ]
        }
        cli.arguments = arguments + command
        let output = Pipe()
        cli.standardOutput = output
        cli.standardError = FileHandle.nullDevice
        try cli.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        cli.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: certificates.directory)
    }
}
