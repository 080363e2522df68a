import ExampleUpstream
import Foundation
import Logging
import ServiceLifecycle

/// `example-upstream [PORT]`: the demo's MCP server on its own, for benchmarks and for trying toolgate by hand.
@main
struct ExampleUpstreamMain {
    static func main() async throws {
        let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 0
        var logger = Logger(label: "example-upstream")
        logger.logLevel = .warning
        let app = ExampleMCPServer.makeApplication(port: port, logger: logger) { port in
            FileHandle.standardOutput.write(Data("listening on 127.0.0.1:\(port)\n".utf8))
        }
        try await ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        ).run()
    }
}
