import ExampleUpstream
import Foundation
import Logging
import ServiceLifecycle

/// `example-upstream [PORT [HOST]]`: the demo's MCP server on its own, for benchmarks and for trying toolgate by hand.
/// It binds 127.0.0.1 unless HOST (or `EXAMPLE_UPSTREAM_HOST`; the argument wins) names another address, such as
/// `0.0.0.0` in a container that other containers must reach (docker/compose.yaml).
@main
struct ExampleUpstreamMain {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        let port = arguments.first.flatMap(Int.init) ?? 0
        let environmentHost = ProcessInfo.processInfo.environment["EXAMPLE_UPSTREAM_HOST"].flatMap { $0.isEmpty ? nil : $0 }
        let host = arguments.dropFirst().first ?? environmentHost ?? "127.0.0.1"
        var logger = Logger(label: "example-upstream")
        logger.logLevel = .warning
        let app = ExampleMCPServer.makeApplication(host: host, port: port, logger: logger) { port in
            FileHandle.standardOutput.write(Data("listening on \(host):\(port)\n".utf8))
        }
        try await ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        ).run()
    }
}
