import ArgumentParser
import DemoPolicy
import ExampleUpstream
import Foundation
import Logging
import ServiceLifecycle
import ToolgateCore
import ToolgateServer
import ToolgateUpstream

/// `toolgate demo`: an example upstream, toolgate in front of it with `examples/policy.json`, and a
/// scripted agent walking through an allowed call, refused calls and a rate limit.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run an example upstream and toolgate in front of it, and walk through allow, deny and rate limit."
    )

    @Option(help: "Policy for the demo (default: examples/policy.json, built in).") var policy: String?

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = EscapingLogHandler(StreamLogHandler.standardError(label: label))
            handler.logLevel = .warning
            return handler
        }
        let logger = Logger(label: "toolgate-demo")
        let loaded: Policy
        let result: Result<Policy, PolicyValidationError> =
            if let policy { PolicyFile.load(policy) } else {
                Result { () throws(PolicyValidationError) in try Policy.parse(DemoPolicy.bytes, file: DemoPolicy.fileName) }
            }
        switch result {
        case .success(let p): loaded = p
        case .failure(let error):
            for problem in error.errors { printError(problem.description) }
            throw ExitCode.failure
        }
        let policyName = policy ?? DemoPolicy.fileName + " (built in)"
        let upstreamPort = PortPromise()
        let toolgatePort = PortPromise()
        let upstreamApp = ExampleMCPServer.makeApplication(logger: logger) { port in upstreamPort.fulfill(port) }
        let upstreamGroup = ServiceGroup(services: [upstreamApp], logger: logger)
        async let upstreamRun: Void = upstreamGroup.run()
        let upstreamURL = "http://127.0.0.1:\(await upstreamPort.value)/mcp"

        let settings = ServeSettings(
            policyPath: policy ?? DemoPolicy.fileName, policy: loaded,
            server: ServerConfiguration(listenHost: "127.0.0.1", listenPort: 0, upstreamURL: upstreamURL, agentID: "demo-host"),
            upstream: .init(), logLevel: .warning)
        let toolgateGroup = ToolgateProcess.serviceGroup(settings, logger: logger) { _, port in toolgatePort.fulfill(port) }
        async let toolgateRun: Void = toolgateGroup.run()
        let base = "http://127.0.0.1:\(await toolgatePort.value)"
        print("example upstream MCP server: \(upstreamURL)")
        print("toolgate:                    \(base)/mcp   (policy \(policyName), sha256 \(loaded.sha256.prefix(12))…)\n")

        var agent = DemoAgent(base: base)
        do {
            try await agent.walkThrough()
        } catch {
            printError("demo failed: \(error)")
        }
        await toolgateGroup.triggerGracefulShutdown()
        await upstreamGroup.triggerGracefulShutdown()
        _ = try? await (upstreamRun, toolgateRun)
    }
}

/// A port reported from a server's startup callback.
final class PortPromise: Sendable {
    private let stream: AsyncStream<Int>
    private let continuation: AsyncStream<Int>.Continuation

    init() { (stream, continuation) = AsyncStream.makeStream() }

    func fulfill(_ port: Int) {
        continuation.yield(port)
        continuation.finish()
    }

    var value: Int {
        get async {
            for await port in stream { return port }
            return 0
        }
    }
}
