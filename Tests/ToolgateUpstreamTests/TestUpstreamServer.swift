import Foundation
import Testing
import ToolgateCore
import ToolgateUpstream

/// The Python upstream in `Support/upstream_test_server.py`, one process per test, on a free loopback port.
/// `@unchecked Sendable`: the process and pipe are only used to stop the server, once, after the test.
final class TestUpstreamServer: @unchecked Sendable {
    let port: Int
    /// A port whose listener never accepts: connecting there hangs until the connect timeout.
    let blackholePort: Int
    private let process: Process
    private let input: Pipe

    private init(port: Int, blackholePort: Int, process: Process, input: Pipe) {
        self.port = port
        self.blackholePort = blackholePort
        self.process = process
        self.input = input
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Starts a server, runs `body`, and stops the server even when `body` throws.
    static func with<T>(_ body: (TestUpstreamServer) async throws -> T) async throws -> T {
        let server = try await start()
        defer { server.stop() }
        return try await body(server)
    }

    static func start() async throws -> TestUpstreamServer {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Support/upstream_test_server.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path]
        let output = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        // The first line is {"port": P, "blackhole_port": B}; read it off the cooperative pool.
        let line = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var bytes: [UInt8] = []
                while true {
                    let byte = output.fileHandleForReading.readData(ofLength: 1)
                    guard let first = byte.first, first != UInt8(ascii: "\n") else { break }
                    bytes.append(first)
                }
                continuation.resume(returning: bytes)
            }
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
              let port = object["port"] as? Int, let blackhole = object["blackhole_port"] as? Int
        else {
            process.terminate()
            throw ServerError(message: "test server did not report its port: \(String(decoding: line, as: UTF8.self))")
        }
        return TestUpstreamServer(port: port, blackholePort: blackhole, process: process, input: input)
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.terminate()
        process.waitUntilExit()
    }

    /// A GET on a control route (`/progress`, `/release`, ...) through a separate short-lived transport.
    func control(_ path: String) async throws -> [String: Any] {
        let transport = CurlUpstreamTransport(configuration: .init(connectTimeout: .seconds(2), headersTimeout: .seconds(10)))
        let response = try await transport.send(UpstreamRequest(method: .get, url: url(path), headers: []))
        let bytes = try await readAll(response.body)
        return try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] ?? [:]
    }
}

struct ServerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

func readAll(_ body: any UpstreamBody) async throws -> [UInt8] {
    var bytes: [UInt8] = []
    while let chunk = try await body.next() { bytes += chunk }
    return bytes
}

/// Polls until `condition` holds; false if it did not within `limit` (a "does not hang" bound, not a timing claim).
func eventually(within limit: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
