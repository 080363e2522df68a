import Foundation
import ToolgateCore
import ToolgateServer
import ToolgateUpstream

/// A server of a servers file, reached the way `check --live` and `scan` reach it: over HTTP with its headers, or
/// its command started for the purpose and stopped again.
enum LiveServer {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func httpTransport() -> CurlUpstreamTransport {
        CurlUpstreamTransport(configuration: .init(connectTimeout: .seconds(5), headersTimeout: .seconds(30), idleTimeout: .seconds(30)))
    }

    static func inventory(
        of server: ServerDefinition, lists: [UpstreamToolCatalog.List] = UpstreamToolCatalog.List.allCases
    ) async -> Result<UpstreamToolCatalog.Inventory, Failure> {
        switch server.transport {
        case .http(let url, let headers):
            return await inventory(url: url, headers: headers, lists: lists)
        case .stdio(let command, let arguments, let environment, let workingDirectory):
            // The servers file's command is an argv, run without a shell; the transport runs `/bin/sh -c`, so each
            // word is quoted. Its environment: toolgate's, less its own settings (a Redis URL may hold a password),
            // then the server's `env`.
            let line = ShellQuoting.exec(command, arguments: arguments, workingDirectory: workingDirectory)
            var childEnvironment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TOOLGATE_") }
            childEnvironment.merge(environment) { $1 }
            return await inventory(
                command: line, environment: childEnvironment, startTimeout: server.settings.startTimeout ?? .seconds(30),
                name: server.name, lists: lists)
        }
    }

    static func inventory(
        url: String, headers: [HTTPHeader] = [], lists: [UpstreamToolCatalog.List] = UpstreamToolCatalog.List.allCases
    ) async -> Result<UpstreamToolCatalog.Inventory, Failure> {
        let transport = httpTransport()
        defer { transport.shutdown() }
        do {
            return .success(try await UpstreamToolCatalog.fetchInventory(transport: transport, url: url, headers: headers, lists: lists))
        } catch {
            return .failure(Failure(description: error.description))
        }
    }

    /// `command` runs under `/bin/sh -c`.
    static func inventory(
        command: String, environment: [String: String], startTimeout: Duration, name: String,
        lists: [UpstreamToolCatalog.List] = UpstreamToolCatalog.List.allCases
    ) async -> Result<UpstreamToolCatalog.Inventory, Failure> {
        let transport = StdioUpstreamTransport(
            configuration: .init(command: command, environment: environment, initializeTimeout: startTimeout))
        do throws(StdioUpstreamFailure) {
            try await transport.start()
        } catch {
            await transport.stop()
            return .failure(Failure(description: "its command did not start: \(error.message)"))
        }
        let result: Result<UpstreamToolCatalog.Inventory, Failure>
        do {
            result = .success(try await UpstreamToolCatalog.fetchInventory(transport: transport, url: "stdio:\(name)", lists: lists))
        } catch {
            result = .failure(Failure(description: error.description))
        }
        await transport.stop()
        return result
    }
}
